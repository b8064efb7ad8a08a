import { readFileSync } from "node:fs";
import { join } from "node:path";
import AjvDraft04 from "ajv-draft-04";
import ajvFormats from "ajv-formats";

/** A validator for the official SARIF 2.1.0 schema (draft-04; vendored, see fixtures/README.md). */
export function sarifValidator() {
  const schema = JSON.parse(
    readFileSync(join(import.meta.dirname, "../fixtures/sarif-schema-2.1.0.json"), "utf8"),
  );
  // CommonJS modules: their classes are `.default` under NodeNext's typing (and at run time).
  const ajv = new AjvDraft04.default({ allErrors: true, strict: false });
  ajvFormats.default(ajv);
  return ajv.compile(schema);
}
