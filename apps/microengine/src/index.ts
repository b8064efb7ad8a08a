export { fetchArtifact } from "./artifact-fetcher.js";
export { computeBid, matchesFilter, stringifyWithBigInt } from "./bid.js";
export { type Bounty, BountyBodyError, parseBountyBody } from "./bounty.js";
export { BountyProcessor } from "./bounty-processor.js";
export { ConfigError, type EngineConfig, engineConfigSchema, loadConfig } from "./config.js";
export { buildBackends, type EngineBackends, policyFromConfig } from "./engine-backends.js";
export { type RunningEngine, startEngine } from "./serve.js";
export { simulate } from "./simulate.js";
export { signBody, verifySignature } from "./webhook-signature.js";
