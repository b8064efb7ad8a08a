import { afterEach, describe, expect, it, vi } from "vitest";
import { configFrom } from "../../src/commands/command-flags.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("command flags", () => {
  it("--no-unpack turns UNPACK off; without it, UNPACK stays what the variable says", () => {
    vi.stubEnv("UNPACK", "");
    // commander sets a --no-* flag true when it is absent.
    expect(configFrom({ unpack: true }).UNPACK).toBe(true);
    expect(configFrom({ unpack: false }).UNPACK).toBe(false);
    vi.stubEnv("UNPACK", "false");
    expect(configFrom({ unpack: true }).UNPACK).toBe(false);
    expect(configFrom({}).UNPACK).toBe(false);
  });
});
