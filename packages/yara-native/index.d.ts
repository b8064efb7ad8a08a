// The types live in index.d.cts (one copy for both entries); an ES module may re-export them.
export * from "./index.cjs";
