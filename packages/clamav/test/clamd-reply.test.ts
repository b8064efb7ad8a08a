import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseClamdCommands,
  parseClamdReply,
  parseClamdStats,
  parseClamdVersion,
} from "../src/clamd-reply.js";

describe("parseClamdReply", () => {
  it.each([
    ["stream: OK", { kind: "ok", subject: "stream" }],
    ["stream: OK\0", { kind: "ok", subject: "stream" }],
    ["3: stream: OK", { kind: "ok", subject: "stream", sessionId: 3 }],
    [
      "stream: Eicar-Test-Signature.UNOFFICIAL FOUND",
      {
        kind: "found",
        subject: "stream",
        signature: "Eicar-Test-Signature.UNOFFICIAL",
        heuristic: false,
        limitsExceeded: false,
        encrypted: false,
      },
    ],
    [
      "stream: Win.Trojan.Agent-1:0:12 FOUND",
      {
        kind: "found",
        subject: "stream",
        signature: "Win.Trojan.Agent-1:0:12",
        heuristic: false,
        limitsExceeded: false,
        encrypted: false,
      },
    ],
    [
      "12: stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND",
      {
        kind: "found",
        subject: "stream",
        signature: "Heuristics.Limits.Exceeded.MaxFileSize",
        heuristic: true,
        limitsExceeded: true,
        encrypted: false,
        sessionId: 12,
      },
    ],
    [
      "stream: Heuristics.Encrypted.Zip FOUND",
      {
        kind: "found",
        subject: "stream",
        signature: "Heuristics.Encrypted.Zip",
        heuristic: true,
        limitsExceeded: false,
        encrypted: true,
      },
    ],
    [
      "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND",
      {
        kind: "found",
        subject: "stream",
        signature: "Heuristics.Phishing.Email.SpoofedDomain",
        heuristic: true,
        limitsExceeded: false,
        encrypted: false,
      },
    ],
    [
      "INSTREAM size limit exceeded. ERROR",
      { kind: "error", message: "INSTREAM size limit exceeded.", sizeLimitExceeded: true },
    ],
    [
      "5: INSTREAM size limit exceeded. ERROR",
      {
        kind: "error",
        message: "INSTREAM size limit exceeded.",
        sizeLimitExceeded: true,
        sessionId: 5,
      },
    ],
    [
      "/tmp/x: File path check failure: No such file or directory. ERROR",
      {
        kind: "error",
        subject: "/tmp/x",
        message: "File path check failure: No such file or directory.",
        sizeLimitExceeded: false,
      },
    ],
    ["COMMAND READ TIMED OUT", { kind: "command-read-timed-out" }],
    ["COMMAND READ TIMED OUT\n", { kind: "command-read-timed-out" }],
    ["UNKNOWN COMMAND", { kind: "unknown-command" }],
    ["PONG", { kind: "text", text: "PONG" }],
    ["", { kind: "text", text: "" }],
    ["stream: FOUND", { kind: "text", text: "stream: FOUND" }],
    ["stream: two words FOUND", { kind: "text", text: "stream: two words FOUND" }],
  ])("parses %j", (reply, expected) => {
    expect(parseClamdReply(reply)).toEqual(expected);
  });

  it("splits at the subject we asked about when a path contains ': '", () => {
    expect(parseClamdReply("/tmp/a: b.txt: Engine.Test FOUND", "/tmp/a: b.txt")).toMatchObject({
      kind: "found",
      subject: "/tmp/a: b.txt",
      signature: "Engine.Test",
    });
  });

  it("never throws, whatever the bytes (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.option(fc.string()), (reply, subject) => {
        const parsed = parseClamdReply(reply, subject ?? undefined);
        expect([
          "ok",
          "found",
          "error",
          "command-read-timed-out",
          "unknown-command",
          "text",
        ]).toContain(parsed.kind);
      }),
      { numRuns: 1000 },
    );
  });

  it("reads back any signature name clamd can print, with any session id (property)", () => {
    const signature = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.:_\-/]{0,80}$/);
    fc.assert(
      fc.property(signature, fc.option(fc.nat({ max: 1_000_000 })), (name, id) => {
        const prefix = id === null ? "" : `${id}: `;
        const parsed = parseClamdReply(`${prefix}stream: ${name} FOUND\0`);
        expect(parsed).toMatchObject({ kind: "found", subject: "stream", signature: name });
        expect(parsed.sessionId).toBe(id === null ? undefined : id);
        if (parsed.kind === "found") expect(parsed.heuristic).toBe(name.startsWith("Heuristics."));
      }),
    );
  });

  it("recognises any ERROR reply as an error (property)", () => {
    fc.assert(
      fc.property(fc.string(), (message) => {
        expect(parseClamdReply(`${message} ERROR`).kind).toBe("error");
      }),
    );
  });
});

describe("parseClamdVersion", () => {
  it("parses the official-database form", () => {
    expect(parseClamdVersion("ClamAV 1.4.6/27000/Thu Nov 20 08:00:00 2026\0")).toEqual({
      engineVersion: "1.4.6",
      databaseVersion: "27000",
      databaseDate: "Thu Nov 20 08:00:00 2026",
      raw: "ClamAV 1.4.6/27000/Thu Nov 20 08:00:00 2026",
    });
  });

  it("parses the custom-signatures form, without a database part", () => {
    expect(parseClamdVersion("ClamAV 1.4.6")).toEqual({
      engineVersion: "1.4.6",
      raw: "ClamAV 1.4.6",
    });
  });

  it.each([["PONG"], ["ClamAV"], [""], ["UNKNOWN COMMAND"]])("rejects %j", (reply) => {
    expect(parseClamdVersion(reply)).toBeUndefined();
  });
});

describe("parseClamdCommands and parseClamdStats", () => {
  it("lists VERSIONCOMMANDS", () => {
    expect(
      parseClamdCommands("ClamAV 1.4.6| COMMANDS: SCAN QUIT INSTREAM FILDES IDSESSION"),
    ).toEqual(["SCAN", "QUIT", "INSTREAM", "FILDES", "IDSESSION"]);
    expect(parseClamdCommands("PONG")).toBeUndefined();
  });

  it("reads threads, queue and state from STATS", () => {
    const raw =
      "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max 10 idle-timeout 30\nQUEUE: 0 items\n\tSTATS 0.000004 \n\nMEMSTATS: heap N/A\nEND";
    expect(parseClamdStats(raw)).toEqual({
      threads: { live: 1, idle: 0, max: 10 },
      queueLength: 0,
      state: "VALID PRIMARY",
      raw,
    });
  });
});
