import ipaddr from "ipaddr.js";
import { describe, expect, it } from "vitest";
import { isAllowedHost, isPrivateAddress } from "../../src/net/address-policy.js";
import { redactUrls } from "../../src/operations/redact.js";

/** One address inside each range the policy must refuse, by the range's name. */
const refused: Array<[string, string]> = [
  ["this network 0.0.0.0/8", "0.1.2.3"],
  ["private 10/8", "10.1.2.3"],
  ["carrier-grade NAT 100.64/10", "100.64.0.1"],
  ["loopback 127/8", "127.0.0.1"],
  ["link-local / cloud metadata 169.254/16", "169.254.169.254"],
  ["private 172.16/12", "172.20.0.1"],
  ["IETF protocol 192.0.0/24", "192.0.0.8"],
  ["documentation 192.0.2/24", "192.0.2.10"],
  ["6to4 relay anycast 192.88.99/24", "192.88.99.1"],
  ["private 192.168/16", "192.168.1.1"],
  ["benchmarking 198.18/15", "198.19.0.1"],
  ["documentation 198.51.100/24", "198.51.100.7"],
  ["documentation 203.0.113/24", "203.0.113.9"],
  ["multicast 224/4", "239.1.1.1"],
  ["reserved 240/4", "240.0.0.1"],
  ["broadcast", "255.255.255.255"],
  ["unspecified ::", "::"],
  ["loopback ::1", "::1"],
  ["IPv4-mapped loopback", "::ffff:127.0.0.1"],
  ["IPv4-mapped metadata", "::ffff:169.254.169.254"],
  ["IPv4-compatible ::/96", "::7f00:1"],
  ["IPv4-compatible, dotted", "::127.0.0.1"],
  ["IPv4-compatible public-looking", "::8.8.8.8"],
  ["NAT64 64:ff9b::/96", "64:ff9b::7f00:1"],
  ["local-use NAT64 64:ff9b:1::/48", "64:ff9b:1::7f00:1"],
  ["discard 100::/64", "100::1"],
  ["Teredo 2001::/32", "2001::1"],
  ["benchmarking 2001:2::/48", "2001:2::1"],
  ["ORCHID 2001:10::/28", "2001:10::1"],
  ["documentation 2001:db8::/32", "2001:db8::1"],
  ["6to4 2002::/16", "2002:7f00:1::"],
  ["documentation 3fff::/20", "3fff::1"],
  ["unique local fc00::/7", "fd00::1"],
  ["link-local fe80::/10", "fe80::1"],
  ["site-local fec0::/10", "fec0::1"],
  ["multicast ff00::/8", "ff02::1"],
  ["not an address", "not-an-ip"],
  ["empty", ""],
];

describe("address policy", () => {
  it.each(refused)("refuses %s (%s)", (_range, address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each([["93.184.216.34"], ["8.8.8.8"], ["1.1.1.1"], ["2606:4700::1111"], ["2a00:1450::1"]])(
    "allows the public address %s",
    (address) => {
      expect(isPrivateAddress(address)).toBe(false);
    },
  );

  it("agrees with ipaddr.js on every address it calls non-unicast (sampled table)", () => {
    // Every special range ipaddr.js knows, first and last address: all refused.
    // ipaddr.js keeps its tables on the prototypes (not in its type declarations).
    type Tables = { SpecialRanges: Record<string, unknown[]> };
    const ranges = [
      ...Object.values((ipaddr.IPv4.prototype as unknown as Tables).SpecialRanges),
      ...Object.values((ipaddr.IPv6.prototype as unknown as Tables).SpecialRanges),
    ].flatMap((entry) => (Array.isArray(entry[0]) ? entry : [entry])) as unknown[];
    let checked = 0;
    for (const entry of ranges) {
      if (!Array.isArray(entry) || entry.length !== 2) continue;
      const [network, prefix] = entry as [ipaddr.IPv4 | ipaddr.IPv6, number];
      const cidr = `${network.toString()}/${prefix}`;
      const first =
        network.kind() === "ipv4"
          ? ipaddr.IPv4.networkAddressFromCIDR(cidr)
          : ipaddr.IPv6.networkAddressFromCIDR(cidr);
      const last =
        network.kind() === "ipv4"
          ? ipaddr.IPv4.broadcastAddressFromCIDR(cidr)
          : ipaddr.IPv6.broadcastAddressFromCIDR(cidr);
      for (const address of [first, last]) {
        expect(isPrivateAddress(address.toString()), `${address} in ${cidr}`).toBe(true);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it("matches allowed hosts exactly or by subdomain wildcard", () => {
    expect(isAllowedHost("files.example.com", ["*.example.com"])).toBe(true);
    expect(isAllowedHost("example.com", ["*.example.com"])).toBe(false);
    expect(isAllowedHost("evil-example.com", ["example.com"])).toBe(false);
    expect(isAllowedHost("EXAMPLE.com", ["example.com"])).toBe(true);
    expect(isAllowedHost("anything", [])).toBe(false);
  });
});

describe("redaction", () => {
  it("removes credentials from every URL in a text", () => {
    expect(
      redactUrls("cannot reach redis://:s3cret@10.0.0.5:6379/0 or https://user:pw@x.example/a"),
    ).toBe("cannot reach redis://***@10.0.0.5:6379/0 or https://***@x.example/a");
    expect(redactUrls("no url here")).toBe("no url here");
    expect(redactUrls("redis://default:p@ssw0rd@10.0.0.5:6379 down")).toBe(
      "redis://***@10.0.0.5:6379 down",
    );
  });
});
