import { type ClamavScanner, checkClamdAlerts } from "@engine/clamav";
import type { Logger } from "pino";
import { ConfigError, type EngineConfig } from "../../config/config.js";

/**
 * Probes every daemon the scanner talks to (one, or each of a CLAMD_HOSTS pool: each answers
 * some scans) with an encrypted zip of EICAR and a nest past its limits, within 30 s.
 */
async function probeAlerts(scanner: ClamavScanner) {
  const clients = "clients" in scanner.client ? scanner.client.clients : [scanner.client];
  const probes = await Promise.all(
    clients.map((client) => checkClamdAlerts(client, { deadline: Date.now() + 30_000 })),
  );
  return probes.flat();
}

/**
 * Refuses a clamd that answers OK for what it could not inspect (encrypted archives, nests past
 * its limits): with it, such files would come back benign. INSECURE_CLAMD_WITHOUT_ALERTS turns
 * the refusal into a warning at every start.
 */
export async function verifyAlerts(
  scanner: ClamavScanner,
  where: string,
  config: Pick<EngineConfig, "INSECURE_CLAMD_WITHOUT_ALERTS">,
  logger: Logger,
): Promise<void> {
  const probes = await probeAlerts(scanner);
  // A daemon that cannot be reached now is skipped (a pool keeps working without it); one that
  // answers without the alerts is refused.
  const unreachable = probes.filter((probe) => probe.answer.startsWith("could not scan"));
  if (unreachable.length > 0)
    logger.warn(
      { daemons: unreachable.length / 2 },
      `${where}: some daemons could not be probed for the alert settings now (unreachable)`,
    );
  const failing = probes.filter(
    (probe) => !probe.passed && !probe.answer.startsWith("could not scan"),
  );
  if (failing.length === 0) return;
  const problems = failing.map(
    (probe) => `${where} answers ${probe.answer} for the ${probe.probe} probe: ${probe.fix}`,
  );
  if (!config.INSECURE_CLAMD_WITHOUT_ALERTS) {
    await scanner.close?.();
    throw new ConfigError([
      ...problems.map((problem) => `CLAMD_*: ${problem}`),
      "INSECURE_CLAMD_WITHOUT_ALERTS=true starts anyway (encrypted or too-deep archives may then be answered benign)",
    ]);
  }
  for (const problem of problems)
    logger.warn(
      `INSECURE (INSECURE_CLAMD_WITHOUT_ALERTS): ${problem}; such files may be answered benign`,
    );
}

/** `check`'s probes: what clamd cannot look inside must not come back OK (a clamd of yours may lack the settings). */
export async function clamdAlertSelfCheck(
  clamav: ClamavScanner,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const probes = await probeAlerts(clamav);
  let passed = true;
  for (const probe of probes) {
    passed &&= probe.passed;
    const what =
      probe.probe === "encrypted-archive"
        ? "a password-protected zip of EICAR"
        : "EICAR nested 40 zips deep";
    out.write(
      probe.passed
        ? `PASS ${clamav.name} reports ${what}: ${probe.answer}\n`
        : `FAIL ${clamav.name} answers ${probe.answer} for ${what}, so such files would pass as clean: ${probe.fix}\n`,
    );
  }
  return passed;
}
