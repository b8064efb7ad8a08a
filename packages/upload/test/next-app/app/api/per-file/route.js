import { accepted, guards } from "../../../lib/guards.js";

export const POST = guards.perFile()(accepted);
