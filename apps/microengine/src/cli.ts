#!/usr/bin/env node
import { availableParallelism } from "node:os";

/**
 * libuv's thread pool runs file reads, DNS lookups, crypto, and our native calls: clamd FILDES
 * scans (at most the clamd client's 4 connections) and native YARA scans (at most one per
 * core). Its default of 4 threads would let those starve the rest, so it is sized for all of
 * them, before anything uses it: UV_THREADPOOL_SIZE, when set, wins.
 */
export function threadPoolSize(): number {
  const clamdConnections = 4;
  const yaraScans = availableParallelism();
  const everythingElse = 4;
  return clamdConnections + yaraScans + everythingElse;
}

process.env.UV_THREADPOOL_SIZE ||= String(threadPoolSize());
await import("./cli-commands.js");
