import { lookup } from "node:dns";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent } from "undici";

/**
 * IPv4-compatible IPv6 addresses (`::a.b.c.d`, `::/96`, deprecated by RFC 4291): ipaddr.js
 * calls them unicast, but they embed an IPv4 address (`::127.0.0.1`), so they are refused too.
 */
const ipv4Compatible = ipaddr.parseCIDR("::/96");

/**
 * True for addresses an outbound request (artifact download, answer delivery) must not reach by
 * default: anything ipaddr.js does not classify as global `unicast` (private, loopback,
 * link-local and cloud metadata at 169.254.169.254, carrier-grade NAT, multicast, broadcast,
 * reserved and documentation ranges, 6to4, Teredo, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`,
 * site-local `fec0::/10`, ...), IPv4-mapped forms judged as their IPv4 address, plus
 * IPv4-compatible `::/96`. Anything that is not an address is refused too.
 */
export function isPrivateAddress(address: string): boolean {
  const literal = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(literal);
  if (family === 0) return true;
  try {
    // The WHATWG URL parser writes IPv6 as the socket layer reads it (`::8.8.8.8` is the
    // IPv4-compatible `::808:808`; ipaddr.js would read it as IPv4-mapped).
    const canonical =
      family === 6 ? new URL(`http://[${literal}]/`).hostname.slice(1, -1) : literal;
    const raw = ipaddr.parse(canonical);
    if (raw.kind() === "ipv6" && (raw as ipaddr.IPv6).match(ipv4Compatible)) return true;
    return ipaddr.process(canonical).range() !== "unicast";
  } catch {
    return true;
  }
}

/** True when `host` is allowed by the list (`example.com`, or `*.example.com` for subdomains). */
export function isAllowedHost(host: string, allowed: readonly string[]): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, "");
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase();
    if (pattern === "*") return true;
    if (pattern.startsWith("*."))
      return name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1;
    return name === pattern;
  });
}

/** Which addresses an outbound connection may reach. */
export interface AddressPolicy {
  /** Reach private, loopback and link-local addresses too (ARTIFACT_ALLOW_PRIVATE_ADDRESSES). */
  allowPrivateAddresses: boolean;
  /** Which addresses count as private; default {@link isPrivateAddress}. (Tests stage "private" hosts with it.) */
  isBlockedAddress?: (address: string) => boolean;
}

/** Why a URL's host is refused by the address policy before any DNS lookup (an address literal), if it is. */
export function literalAddressRefusal(url: URL, policy: AddressPolicy): string | undefined {
  const literal = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(literal) === 0 || policy.allowPrivateAddresses) return undefined;
  return (policy.isBlockedAddress ?? isPrivateAddress)(literal)
    ? "the host is a private, loopback, link-local or reserved address"
    : undefined;
}

/**
 * An undici agent whose DNS lookups refuse private addresses: the check happens on the
 * address actually connected to, so DNS rebinding cannot slip past it. A refused lookup fails
 * with code `EPRIVATEADDRESS`. At most `connectionsPerOrigin` (32) sockets per origin.
 */
export function createGuardedAgent(
  policy: AddressPolicy,
  options: { connectionsPerOrigin?: number } = {},
): Agent {
  return new Agent({
    // Bounded sockets per origin: requests beyond them wait in undici's queue.
    connections: options.connectionsPerOrigin ?? 32,
    connect: {
      lookup: (hostname, options, callback) => {
        lookup(hostname, { ...options, all: true }, (error, addresses) => {
          if (error) return callback(error, "", 4);
          const list = addresses as unknown as Array<{ address: string; family: number }>;
          const blocked = policy.isBlockedAddress ?? isPrivateAddress;
          const usable = policy.allowPrivateAddresses
            ? list
            : list.filter((entry) => !blocked(entry.address));
          const chosen = usable[0];
          if (!chosen) {
            return callback(
              Object.assign(
                new Error(
                  `${hostname} resolves only to private addresses (${list.map((entry) => entry.address).join(", ")})`,
                ),
                { code: "EPRIVATEADDRESS" },
              ),
              "",
              4,
            );
          }
          if ((options as { all?: boolean }).all)
            return (callback as unknown as (e: null, a: typeof usable) => void)(null, usable);
          return callback(null, chosen.address, chosen.family);
        });
      },
    },
  });
}
