import type { Logger } from "pino";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import { BountyProcessor } from "../intake/bounty-processor.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { RedisAnswerLedger } from "./answer-ledger.js";
import { quitRedis, redisConnection } from "./redis-connections.js";
import type { RedisSeal } from "./redis-seal.js";

/**
 * A bounty processor that answers through the Redis answer ledger (queue mode: serve's
 * deadline watcher and backstop, and every worker), and how to close the ledger's connection.
 */
export function ledgeredProcessor(
  queueUrl: string,
  seal: RedisSeal,
  config: EngineConfig,
  backends: EngineBackends,
  metrics: EngineMetrics,
  logger: Logger,
) {
  const redis = redisConnection(queueUrl, "ledger", logger);
  const ledger = new RedisAnswerLedger(redis, config.QUEUE_NAME, seal);
  const processor = new BountyProcessor({
    scanner: backends.scanner,
    config,
    logger,
    metrics,
    ledger,
  });
  return {
    processor,
    ledger,
    close: async (): Promise<void> => {
      await quitRedis(redis);
    },
  };
}
