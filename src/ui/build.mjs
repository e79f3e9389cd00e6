// Bundles src/main.ts into src/labtrack/static/ui/ (git-ignored; hatch-jupyter-builder runs this on `pip install .`).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, "../labtrack/static/ui");
const watch = process.argv.includes("--watch");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
copyFileSync(resolve(here, "index.html"), resolve(out, "index.html"));
copyFileSync(resolve(here, "favicon.svg"), resolve(out, "favicon.svg"));

const options = {
  entryPoints: { app: resolve(here, "src/main.ts"), style: resolve(here, "src/style.css") },
  outdir: out,
  bundle: true,
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  target: ["es2020"],
  format: "iife",
  legalComments: "none",
  logLevel: "info",
};
if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
