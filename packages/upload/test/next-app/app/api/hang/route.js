import { accepted, guards, hangingScans } from "../../../lib/guards.js";

export const POST = guards.hang()(accepted);

export function GET() {
  return Response.json(hangingScans);
}
