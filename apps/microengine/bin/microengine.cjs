#!/usr/bin/env -S node --initial-old-space-size=64
"use strict";
// The command starts Node with a 64 MiB old generation (a setting only the command line can
// give, hence `env -S` above, the root `microengine` script and the launcher
// scripts/install-cli.sh writes): V8 otherwise starts it small and, with a scan's short-lived
// objects promoted into it, ran a full garbage collection every few hundred milliseconds.
// Measured on a scan of a copy of /usr/share/doc with unpacking: 8.3-8.6 s of user CPU without
// it, 6.4-6.8 s with it, for ~10 MB more at peak. It applies to every thread's heap. The
// services (scripts/start.sh, the systemd units) start without it, as does
// `node apps/microengine/bin/microengine.cjs`: the same, only slower for a scan.
// The `microengine` command. libuv's thread pool takes its size from UV_THREADPOOL_SIZE when it
// starts, at the first asynchronous file, DNS or crypto call, and Node's ES module loader makes
// such calls before any module code runs. So the size is set here, in a CommonJS entry that
// Node loads with synchronous reads, before anything else.
//
// The pool runs file reads (unpacking's, and the opens of files passed to clamd by FILDES: at
// most the clamd client's 4 connections at once), DNS lookups and crypto, plus native YARA scans
// (at most one per core). `scan`'s directory walk has a thread of its own. With libuv's default of 4 threads those would starve the rest (a file open
// on a slow mount holds its thread). UV_THREADPOOL_SIZE, when set, wins.
const { availableParallelism } = require("node:os");

if (!process.env.UV_THREADPOOL_SIZE) {
  const clamdConnections = 4;
  const everythingElse = 4;
  process.env.UV_THREADPOOL_SIZE = String(
    clamdConnections + availableParallelism() + everythingElse,
  );
}
// serve and worker reload on SIGHUP. Until their handler is installed (start-up takes a moment),
// a SIGHUP is counted here instead of ending the process; cli.ts takes the count over.
if (process.argv[2] === "serve" || process.argv[2] === "worker") {
  globalThis.__microengineEarlyHangups = 0;
  globalThis.__microengineEarlyHangupListener = () => {
    globalThis.__microengineEarlyHangups += 1;
  };
  process.on("SIGHUP", globalThis.__microengineEarlyHangupListener);
}
import(process.env.MICROENGINE_ENTRY_FOR_TESTS ?? "../dist/cli.js");
