// Bundles src/*.js into dist/ as GitHub runs JavaScript actions: one file per entry point,
// dependencies included (dist/ is committed). `npm ci && npm run build`.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const outdir = process.env.CACHER_ACTION_OUTDIR || "dist";
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  legalComments: "none",
  minify: true,
  logLevel: "warning",
};
// The code and @actions/core once, in dist/common.js; each entry point is a few lines that
// require it, so the four entry points do not carry four copies.
await build({ ...common, entryPoints: ["src/common.js"], outfile: `${outdir}/common.js` });
await build({
  ...common,
  entryPoints: ["main", "post", "restore", "save"].map((name) => `src/${name}.js`),
  outdir,
  external: ["./common.js"],
  minify: false,
});

// The sources the bundle was made from, hashed: tests/action/test_github_action.py checks that dist/
// was rebuilt after every change to them, without the network.
const sources = ["build.mjs", "package.json", "package-lock.json",
  ...readdirSync("src").sort().map((f) => `src/${f}`)];
const hash = createHash("sha256");
for (const f of sources) hash.update(`${f}\0`).update(readFileSync(f)).update("\0");
writeFileSync(`${outdir}/SOURCES.sha256`, `${hash.digest("hex")}\n`);
