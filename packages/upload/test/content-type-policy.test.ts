import { describe, expect, it } from "vitest";
import { decideType, looksLikeText } from "../src/index.js";

const png = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
const pdf = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "latin1");
const exe = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(200, 0x90)]);
const text = (value: string) => Buffer.from(value);

describe("decideType: the type by content, against the allow-list", () => {
  it("takes magic bytes over the declared type", async () => {
    expect(await decideType(png, "application/pdf", undefined)).toEqual({
      type: "image/png",
      allowed: true,
    });
    expect(await decideType(exe, "image/png", ["image/png"])).toEqual({
      type: "application/x-msdownload",
      allowed: false,
    });
    expect(await decideType(pdf, "text/plain", ["application/pdf"])).toEqual({
      type: "application/pdf",
      allowed: true,
    });
  });

  it("lets text through only as a text type the list names, and only in that type's shape", async () => {
    const csv = text("name,amount\nalice,3\n");
    expect(await decideType(csv, "text/csv", ["image/png"])).toMatchObject({ allowed: false });
    expect(await decideType(csv, "text/csv", ["text/csv"])).toEqual({
      type: "text/csv",
      allowed: true,
    });
    expect(await decideType(csv, "application/json", ["application/json"])).toMatchObject({
      allowed: false,
    });
    expect(await decideType(text('{"a":1}'), "text/plain", ["application/json"])).toEqual({
      type: "application/json",
      allowed: true,
    });
    const svg = text('<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>');
    expect(await decideType(svg, "image/svg+xml", ["image/svg+xml"])).toEqual({
      type: "image/svg+xml",
      allowed: true,
    });
    const page = text("<!doctype html><html><script>alert(1)</script></html>");
    expect(await decideType(page, "image/svg+xml", ["image/svg+xml"])).toMatchObject({
      allowed: false,
    });
  });

  it("calls binary with no magic octet-stream, allowed only when listed or with no list", async () => {
    const blob = Buffer.from([0, 1, 2, 3, 250, 251, 0, 0, 9]);
    expect(await decideType(blob, "image/png", undefined)).toEqual({
      type: "application/octet-stream",
      allowed: true,
    });
    expect(await decideType(blob, "image/png", ["image/png"])).toMatchObject({ allowed: false });
  });
});

describe("looksLikeText", () => {
  it("takes UTF-8 (a sequence cut at the end too) and refuses NUL and controls", () => {
    expect(looksLikeText(text("héllo\tworld\r\n"))).toBe(true);
    expect(looksLikeText(text("h\u00e9").subarray(0, 2))).toBe(true);
    expect(looksLikeText(Buffer.from([0x68, 0x00, 0x69]))).toBe(false);
    expect(looksLikeText(Buffer.from([0x68, 0x1b, 0x69]))).toBe(false);
    expect(looksLikeText(Buffer.from([0xff, 0xfe, 0x41]))).toBe(false);
  });
});
