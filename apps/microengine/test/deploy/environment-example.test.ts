import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { environmentExample } from "../../scripts/environment-example.js";
import { engineConfigSchema, loadConfig } from "../../src/config/config.js";

// deploy/microengine.env.example is generated from the config schema; this keeps them in step.
// ENGINE_WRITE_ENV_EXAMPLE=1 (pnpm --filter @engine/microengine env:example) rewrites it.
const root = join(import.meta.dirname, "../../../..");
const examplePath = join(root, "deploy/microengine.env.example");
const generated = environmentExample(join(root, "apps/microengine/src/config"));
if (process.env.ENGINE_WRITE_ENV_EXAMPLE === "1") await writeFile(examplePath, generated);

/** The `KEY=value` lines of an environment file, uncommented. */
function assignments(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of text.matchAll(/^#?([A-Z][A-Z0-9_]*)=(.*)$/gm))
    found.set(match[1] as string, match[2] as string);
  return found;
}

describe("deploy/microengine.env.example", () => {
  it("is what the config schema generates (run pnpm --filter @engine/microengine env:example)", async () => {
    expect(await readFile(examplePath, "utf8")).toBe(generated);
  });

  it("lists every variable of the schema once, each with its description", () => {
    const listed = assignments(generated);
    expect([...listed.keys()].sort()).toEqual(Object.keys(engineConfigSchema.shape).sort());
    for (const name of listed.keys())
      expect(generated, `${name} has no description`).toMatch(new RegExp(`# [^\\n]+\\n#${name}=`));
  });

  it("shows defaults the engine reads back as its defaults", () => {
    const defaults = loadConfig({});
    const fromExample = loadConfig(Object.fromEntries(assignments(generated)));
    expect(fromExample).toEqual(defaults);
    expect(assignments(generated).get("PORT")).toBe("8080");
  });

  it("leaves what follows ARTIFACT_MAX_BYTES following it when every line is uncommented", () => {
    const uncommented = { ...Object.fromEntries(assignments(generated)), ARTIFACT_MAX_BYTES: "1G" };
    expect(loadConfig(uncommented)).toMatchObject({
      UNPACK_MAX_MEMBER_BYTES: 2 ** 30,
      UNPACK_MAX_TOTAL_BYTES: 2 ** 30,
    });
  });
});
