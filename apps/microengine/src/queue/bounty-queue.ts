// Kept while commands/ moves to the new files (removed right after): the receiver and the
// worker live in bounty-receiver.ts and queue-worker.ts.
export { BullBountyQueue } from "./bounty-receiver.js";
export { bountyJobId, toJobData } from "./job-data.js";
export { queueTiming } from "./queue-timing.js";
export { type QueueWorker, startQueueWorker } from "./queue-worker.js";
