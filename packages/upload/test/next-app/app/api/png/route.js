import { accepted, guards } from "../../../lib/guards.js";

export const POST = guards.png()(accepted);
