#!/usr/bin/env node
// Lists the longest functions of a source tree, by folder: the measure behind "wiring only
// wires" (no function of the app past about 80 lines). A function's length is the lines from
// its first to its last, closures inside it included (a 300-line function made of closures is
// still 300 lines to read).
//
//   node scripts/function-lengths.mjs [directory] [--over N] [--all]
//
// directory: default apps/microengine/src. Prints, per folder, its longest function; with
// --over N, every function longer than N lines (and exits 1 when there is one); with --all,
// every function, longest first.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";

const require = createRequire(import.meta.url);
const ts = require("typescript");

const args = process.argv.slice(2);
const overIndex = args.indexOf("--over");
const over = overIndex === -1 ? undefined : Number(args[overIndex + 1]);
const all = args.includes("--all");
const root =
  args.find(
    (arg, index) => !arg.startsWith("--") && (overIndex === -1 || index !== overIndex + 1),
  ) ?? "apps/microengine/src";

function sourceFiles(directory) {
  const files = [];
  for (const name of readdirSync(directory).sort()) {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith(".d.ts")) files.push(path);
  }
  return files;
}

/** The name a reader would search for: the declaration, the variable or the property. */
function nameOf(node) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (node.name && ts.isPrivateIdentifier(node.name)) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name))
    return parent.name.text;
  if (parent && ts.isPropertyAssignment(parent) && parent.name) return parent.name.getText();
  if (parent && ts.isPropertyDeclaration(parent) && parent.name) return parent.name.getText();
  if (parent && ts.isCallExpression(parent)) {
    const callee = parent.expression.getText().split("\n")[0].slice(0, 40);
    return `(callback of ${callee})`;
  }
  return "(anonymous)";
}

/** The class or function a node sits in, for the report (`BountyProcessor.#answer`). */
function ownerOf(node) {
  for (let parent = node.parent; parent; parent = parent.parent)
    if (ts.isClassDeclaration(parent) && parent.name) return `${parent.name.text}.`;
  return "";
}

const functions = [];
for (const path of sourceFiles(root)) {
  const text = readFileSync(path, "utf8");
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      functions.push({
        file: relative(root, path),
        folder: relative(root, path).includes("/")
          ? relative(root, path).split("/").slice(0, -1).join("/")
          : ".",
        name: `${ownerOf(node)}${nameOf(node)}`,
        line: start + 1,
        lines: end - start + 1,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}

functions.sort((left, right) => right.lines - left.lines);
const show = (entry) =>
  `${String(entry.lines).padStart(4)}  ${entry.file}:${entry.line}  ${entry.name}`;
if (all) {
  for (const entry of functions) console.log(show(entry));
} else if (over !== undefined) {
  const long = functions.filter((entry) => entry.lines > over);
  for (const entry of long) console.log(show(entry));
  console.log(`${long.length} function(s) over ${over} lines in ${root}`);
  process.exitCode = long.length > 0 ? 1 : 0;
} else {
  const folders = new Map();
  for (const entry of functions) if (!folders.has(entry.folder)) folders.set(entry.folder, entry);
  console.log(`longest function per folder of ${root} (lines, closures included)`);
  for (const [folder, entry] of [...folders].sort(([left], [right]) => left.localeCompare(right)))
    console.log(`${folder.padEnd(14)} ${show(entry)}`);
}
