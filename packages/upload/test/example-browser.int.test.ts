// The example app (example/server.mjs) driven in a real browser: Debian's chromium through
// playwright-core. Uploading EICAR shows the refusal and keeps nothing; a benign file is
// accepted and lands in storage. Screenshots are written to a temp directory (their paths are
// printed). The example runs from the build: run `pnpm build` in this package first.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eicarBytes } from "@engine/core";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error the example is plain JavaScript, as a user would write it
import { startExample } from "../example/server.mjs";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const directory = mkdtempSync(join(tmpdir(), "engine-upload-example-"));
const shots = mkdtempSync(join(tmpdir(), "engine-upload-screenshots-"));
let example: { url: string; close(): Promise<void> };
let browser: Browser;
beforeAll(async () => {
  example = await startExample({ port: 0, directory });
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await example?.close();
  rmSync(directory, { recursive: true, force: true });
});

async function upload(name: string, content: Buffer, shot: string): Promise<string> {
  const page = await browser.newPage();
  try {
    await page.goto(example.url);
    await page.setInputFiles('input[type="file"]', {
      name,
      mimeType: "text/plain",
      buffer: content,
    });
    await page.click('button[type="submit"]');
    await page.locator("#result", { hasText: /^(Accepted|Refused)/ }).waitFor();
    const path = join(shots, shot);
    await page.screenshot({ path });
    console.log(`screenshot: ${path}`);
    return (await page.textContent("#result")) ?? "";
  } finally {
    await page.close();
  }
}

describe("the upload example in chromium", () => {
  it("shows the refusal for EICAR and keeps nothing", async () => {
    const shown = await upload("eicar.com.txt", eicarBytes(), "refused.png");
    expect(shown).toBe("Refused (422 malicious): The upload contains malware");
    expect(readdirSync(directory)).toEqual([]);
  });

  it("accepts a benign file, which lands in storage", async () => {
    const content = Buffer.from("quarterly report\n".repeat(100));
    const shown = await upload("report.txt", content, "accepted.png");
    expect(shown).toBe("Accepted: report.txt");
    const stored = readdirSync(directory);
    expect(stored).toHaveLength(1);
    expect(readFileSync(join(directory, stored[0] ?? "")).equals(content)).toBe(true);
  });
});
