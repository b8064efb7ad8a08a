import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import type { z } from "zod";
import { engineConfigSchema, settingsFollowingArtifactMaxBytes } from "../src/config/config.js";

/** The settings files in the order `engineConfigSchema` composes them (config.ts). */
export const settingsFiles = [
  "http-settings.ts",
  "backend-settings.ts",
  "unpack-settings.ts",
  "artifact-settings.ts",
  "bounty-settings.ts",
  "queue-settings.ts",
  "logging-settings.ts",
] as const;

/** One documented setting: its variable, its JSDoc lines, its default as a variable's text. */
interface DocumentedSetting {
  name: string;
  comment: string[];
  defaultText: string;
}

/** The text of a JSDoc block, one entry per line, without the comment markers. */
function commentLines(node: ts.Node, source: ts.SourceFile): string[] {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? [];
  const block = ranges.map((range) => source.text.slice(range.pos, range.end)).pop() ?? "";
  return block
    .replace(/^\/\*\*\s?/, "")
    .replace(/\s*\*\/$/, "")
    .split("\n")
    .map((line) => line.replace(/^\s*\* ?/, "").trimEnd())
    .filter((line, index, lines) => line.length > 0 || (index > 0 && index < lines.length - 1));
}

/**
 * The default of a setting, written as its variable would be: empty when it has none, or when
 * it depends on another setting (written out, it would no longer follow it).
 */
function defaultText(name: string): string {
  if ((settingsFollowingArtifactMaxBytes as readonly string[]).includes(name)) return "";
  const field = (engineConfigSchema.shape as Record<string, z.ZodType>)[name];
  const parsed = field?.safeParse(undefined);
  if (!parsed?.success || parsed.data === undefined) return "";
  const value: unknown = parsed.data;
  if (Array.isArray(value)) return value.join(",");
  if (typeof value === "object" && value !== null) return "";
  return String(value);
}

/** The group's comment and its settings, in source order, from one settings file. */
function settingsOf(path: string): { group: string[]; settings: DocumentedSetting[] } {
  const source = ts.createSourceFile(
    path,
    readFileSync(path, "utf8"),
    ts.ScriptTarget.ES2022,
    true,
  );
  let result: { group: string[]; settings: DocumentedSetting[] } | undefined;
  const visit = (node: ts.Node): void => {
    if (
      !result &&
      ts.isVariableStatement(node) &&
      node.declarationList.declarations.some((declaration) =>
        /Settings$/.test(declaration.name.getText(source)),
      )
    ) {
      const settings: DocumentedSetting[] = [];
      const findObject = (inner: ts.Node): void => {
        if (ts.isObjectLiteralExpression(inner) && settings.length === 0) {
          for (const property of inner.properties)
            if (ts.isPropertyAssignment(property)) {
              const name = property.name.getText(source);
              settings.push({
                name,
                comment: commentLines(property, source),
                defaultText: defaultText(name),
              });
            }
          return;
        }
        ts.forEachChild(inner, findObject);
      };
      findObject(node);
      result = { group: commentLines(node, source), settings };
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (!result) throw new Error(`${path}: no exported z.object of settings found`);
  return result;
}

/**
 * deploy/microengine.env.example, generated from the settings' schema and JSDoc in
 * `configDirectory` (apps/microengine/src/config): every variable, commented out with its
 * default, under its group's description.
 */
export function environmentExample(configDirectory: string): string {
  const lines = [
    "# Every setting of microengine (serve, worker, scan, check), by environment variable, with",
    "# its default. Generated from apps/microengine/src/config/ by",
    "#   pnpm --filter @engine/microengine env:example",
    "# (a test keeps the two in step). Uncomment what you change; flags override variables;",
    "# empty counts as unset. For systemd: EnvironmentFile= (see deploy/systemd/).",
  ];
  for (const file of settingsFiles) {
    const { group, settings } = settingsOf(join(configDirectory, file));
    lines.push("", `## ${file.replace(/-settings\.ts$/, "")}`);
    for (const line of group) lines.push(`# ${line}`.trimEnd());
    for (const setting of settings) {
      lines.push("");
      for (const line of setting.comment) lines.push(`# ${line}`.trimEnd());
      lines.push(`#${setting.name}=${setting.defaultText}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
