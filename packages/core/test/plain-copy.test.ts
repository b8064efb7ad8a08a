import { describe, expect, it } from "vitest";
import { plainCopy } from "../src/plain-copy.js";

describe("plainCopy", () => {
  it("copies plain data deeply, equal to structuredClone's copy and sharing nothing with it", () => {
    const value = {
      malware_family: "Eicar",
      scanner: { version: "1.0", environment: { operating_system: "linux" } },
      comments: ["a", "b"],
      nested: [{ x: 1 }, [2, [3]]],
      flags: { yes: true, no: false, none: null, missing: undefined },
      count: 3.5,
    };
    const copy = plainCopy(value);
    expect(copy).toEqual(structuredClone(value));
    expect(copy).not.toBe(value);
    expect(copy.scanner.environment).not.toBe(value.scanner.environment);
    expect(copy.nested[0]).not.toBe(value.nested[0]);
    copy.comments.push("c");
    (copy.nested[1] as unknown[]).push(4);
    expect(value.comments).toEqual(["a", "b"]);
    expect(value.nested[1]).toEqual([2, [3]]);
  });

  it("keeps shared references and cycles as structuredClone does", () => {
    const shared = { id: 1 };
    const value: Record<string, unknown> = { first: shared, second: shared };
    value.self = value;
    const copy = plainCopy(value);
    expect(copy.first).toBe(copy.second);
    expect(copy.first).not.toBe(shared);
    expect(copy.self).toBe(copy);
  });

  it("hands what is not plain data to structuredClone: copies a Date, a Map or bytes, throws for a function", () => {
    const when = new Date(0);
    const value = { when, map: new Map([["k", 1]]), bytes: new Uint8Array([1, 2]) };
    const copy = plainCopy(value);
    expect(copy.when).toEqual(when);
    expect(copy.when).not.toBe(when);
    expect(copy.map.get("k")).toBe(1);
    expect(copy.bytes).toEqual(new Uint8Array([1, 2]));
    expect(() => plainCopy({ call: () => 1 })).toThrow(/could not be cloned/);
    expect(() => structuredClone({ call: () => 1 })).toThrow(/could not be cloned/);
  });

  it("copies an object without a prototype into a plain object, as structuredClone does", () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    const copy = plainCopy(bare);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(structuredClone(bare))).toBe(Object.prototype);
    expect(copy).toEqual({ a: 1 });
  });

  it("keeps a __proto__ key an own property, never the copy's prototype (as structuredClone)", () => {
    const value = JSON.parse('{"malware_family":"","__proto__":{"heuristic":true}}');
    const copy = plainCopy(value);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(copy.heuristic).toBeUndefined();
    expect(Object.keys(copy)).toEqual(Object.keys(structuredClone(value)));
    expect(Object.getOwnPropertyDescriptor(copy, "__proto__")?.value).toEqual({ heuristic: true });
  });

  it("hands sparse arrays, arrays with extra keys and proxies to structuredClone", () => {
    // biome-ignore lint/suspicious/noSparseArray: the case under test
    const sparse = [1, , 3];
    expect(1 in plainCopy(sparse)).toBe(1 in structuredClone(sparse));
    const extra = Object.assign([1, 2], { note: "x" });
    expect(plainCopy(extra)).toEqual(structuredClone(extra));
    const proxy = new Proxy({ a: 1 }, {});
    expect(() => plainCopy({ proxy })).toThrow();
    expect(() => structuredClone({ proxy })).toThrow();
  });
});
