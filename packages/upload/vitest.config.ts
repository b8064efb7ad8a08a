import { defineConfig } from "vitest/config";
import { engineVitestConfig } from "../../vitest.shared.js";

export default defineConfig(engineVitestConfig(import.meta.dirname));
