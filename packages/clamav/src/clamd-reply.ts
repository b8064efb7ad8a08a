/**
 * One reply from clamd, parsed. The parser is total: any text gives one of these kinds,
 * and the caller decides whether that kind was expected.
 */
export type ClamdReply =
  | { kind: "ok"; subject: string; sessionId?: number }
  | {
      kind: "found";
      subject: string;
      /** The signature name as clamd prints it, e.g. `Eicar-Test-Signature.UNOFFICIAL`. */
      signature: string;
      /** True for `Heuristics.*` names (heuristic detections, not exact signatures). */
      heuristic: boolean;
      /** True for `Heuristics.Limits.Exceeded.*`: a scan limit was hit, content not fully inspected. */
      limitsExceeded: boolean;
      /** True for `Heuristics.Encrypted.*`: encrypted content that could not be inspected. */
      encrypted: boolean;
      sessionId?: number;
    }
  | {
      kind: "error";
      /** What the error is about (`stream`, a path), when clamd said. */
      subject?: string;
      /** clamd's message without the trailing ` ERROR`. */
      message: string;
      /** True for `INSTREAM size limit exceeded`: the stream passed clamd's StreamMaxLength. */
      sizeLimitExceeded: boolean;
      sessionId?: number;
    }
  | { kind: "command-read-timed-out"; sessionId?: number }
  | { kind: "unknown-command"; sessionId?: number }
  | { kind: "text"; text: string; sessionId?: number };

const sessionPrefix = /^(\d{1,10}): /;

/**
 * Parses one reply (without its `\0` or `\n` terminator). Handles `IDSESSION` prefixes
 * (`"3: stream: OK"`), `stream: OK`, `stream: <Name> FOUND` (names may contain dots, dashes,
 * colons), `... ERROR`, `INSTREAM size limit exceeded. ERROR`, `COMMAND READ TIMED OUT`,
 * `UNKNOWN COMMAND`, and heuristics. Never throws.
 * @param reply the reply text
 * @param subject the subject we asked about (`"stream"` or the scanned path), so that a path
 *   containing `": "` is not split in the wrong place. Default: up to the first `": "`.
 */
export function parseClamdReply(reply: string, subject?: string): ClamdReply {
  let text = reply.replace(/[\0\r\n]+$/, "");
  let sessionId: number | undefined;
  const prefix = sessionPrefix.exec(text);
  if (prefix?.[1] !== undefined) {
    sessionId = Number(prefix[1]);
    text = text.slice(prefix[0].length);
  }
  const withSession = <T extends object>(value: T): T & { sessionId?: number } =>
    sessionId === undefined ? value : { ...value, sessionId };

  if (text === "COMMAND READ TIMED OUT")
    return withSession({ kind: "command-read-timed-out" as const });
  if (text === "UNKNOWN COMMAND") return withSession({ kind: "unknown-command" as const });

  let replySubject: string | undefined;
  let rest = text;
  if (subject !== undefined && text.startsWith(`${subject}: `)) {
    replySubject = subject;
    rest = text.slice(subject.length + 2);
  } else {
    const separator = text.indexOf(": ");
    if (separator > 0) {
      replySubject = text.slice(0, separator);
      rest = text.slice(separator + 2);
    }
  }

  if (text.endsWith(" ERROR") || text === "ERROR") {
    const message = (replySubject === undefined ? text : rest).replace(/ ?ERROR$/, "").trim();
    return withSession({
      kind: "error" as const,
      ...(replySubject === undefined ? {} : { subject: replySubject }),
      message,
      sizeLimitExceeded: /size limit exceeded/i.test(text),
    });
  }
  if (replySubject !== undefined && rest === "OK")
    return withSession({ kind: "ok" as const, subject: replySubject });
  if (replySubject !== undefined && rest.endsWith(" FOUND") && rest.length > " FOUND".length) {
    const signature = rest.slice(0, -" FOUND".length);
    if (signature.trim().length > 0 && !/\s/.test(signature)) {
      return withSession({
        kind: "found" as const,
        subject: replySubject,
        signature,
        heuristic: signature.startsWith("Heuristics."),
        limitsExceeded: signature.startsWith("Heuristics.Limits.Exceeded"),
        encrypted: signature.startsWith("Heuristics.Encrypted"),
      });
    }
  }
  return withSession({ kind: "text" as const, text });
}

/** clamd's `VERSION`, parsed. */
export interface ClamdVersion {
  /** The ClamAV engine version, e.g. `"1.4.6"`. */
  engineVersion: string;
  /** The official database version (`daily` number), absent with custom signatures only. */
  databaseVersion?: string;
  /** The database build date as clamd prints it, absent with custom signatures only. */
  databaseDate?: string;
  /** The reply as received. */
  raw: string;
}

/**
 * Parses `ClamAV 1.4.6/27000/Thu Nov 20 08:00:00 2026` (or `ClamAV 1.4.6` when only custom
 * signatures are loaded). Returns `undefined` for anything else.
 */
export function parseClamdVersion(reply: string): ClamdVersion | undefined {
  const raw = reply.replace(/[\0\r\n]+$/, "");
  const match = /^ClamAV ([0-9][^/\s]*)(?:\/([0-9]+)(?:\/(.+))?)?$/.exec(raw);
  if (!match?.[1]) return undefined;
  return {
    engineVersion: match[1],
    ...(match[2] === undefined ? {} : { databaseVersion: match[2] }),
    ...(match[3] === undefined ? {} : { databaseDate: match[3] }),
    raw,
  };
}

/** Parses `VERSIONCOMMANDS` (`ClamAV 1.4.6| COMMANDS: SCAN QUIT ...`) into the command list. */
export function parseClamdCommands(reply: string): string[] | undefined {
  const match = /\|\s*COMMANDS:\s*(.*)$/.exec(reply.replace(/[\0\r\n]+$/, ""));
  return match?.[1] === undefined
    ? undefined
    : match[1].split(/\s+/).filter((name) => name.length > 0);
}

/** clamd's `STATS`, with the figures an operator watches parsed out. */
export interface ClamdStats {
  /** Live, idle and maximum scanning threads. */
  threads?: { live: number; idle: number; max: number };
  /** Requests waiting in clamd's queue. */
  queueLength?: number;
  /** `STATE:` line, e.g. `VALID PRIMARY`. */
  state?: string;
  /** The reply as received. */
  raw: string;
}

/** Parses the multi-line `STATS` reply. Unknown lines are kept in `raw` only. */
export function parseClamdStats(reply: string): ClamdStats {
  const raw = reply.replace(/\0+$/, "");
  const threads = /THREADS: live (\d+)\s+idle (\d+) max (\d+)/.exec(raw);
  const queue = /QUEUE: (\d+) items/.exec(raw);
  const state = /STATE: ([^\n]+)/.exec(raw);
  return {
    ...(threads
      ? { threads: { live: Number(threads[1]), idle: Number(threads[2]), max: Number(threads[3]) } }
      : {}),
    ...(queue ? { queueLength: Number(queue[1]) } : {}),
    ...(state?.[1] ? { state: state[1].trim() } : {}),
    raw,
  };
}
