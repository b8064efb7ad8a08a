import type { AddressInfo } from "node:net";

/** An HTTP app that listens (a Fastify instance). */
export interface ListenableApp {
  listen(options: { port: number; host: string }): PromiseLike<unknown>;
  server: { address(): string | AddressInfo | null };
}

/** Listens on `host`:`port`; resolves with `http://host:port` (the port it got when 0 was asked for). */
export async function listen(app: ListenableApp, host: string, port: number): Promise<string> {
  await app.listen({ port, host });
  const address = app.server.address();
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return `http://${bracketed}:${typeof address === "object" && address ? address.port : port}`;
}
