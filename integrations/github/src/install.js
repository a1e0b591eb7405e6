// Finding cacher, or installing it once per runner: PATH, then `cacher-url` (a wheel or the
// one-directory bundle), then `cacher-version` from PyPI, then the ci-cacher project the
// action was checked out with. Installs go to RUNNER_TOOL_CACHE/cacher/<version>-<arch>-<source>,
// built in a temporary sibling and renamed into place, so a half-made install is never used.
import * as core from "@actions/core";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, readdirSync,
  renameSync, rmSync, statSync, utimesSync, writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";

/** A broken set-up: the step fails whatever `soft-fail` says, with what to do. */
export class SetupError extends Error {}

/** The program's path when it is an executable file in a PATH directory. */
export function onPath(name) {
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function quiet(program, args, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(program, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stdout.on("data", () => {});
    child.stderr.on("data", (d) => (err += d));
    child.on("error", (e) => resolve({ code: 127, err: `cannot run ${program}: ${e.message}` }));
    child.on("close", (code) => resolve({ code: code ?? 128, err }));
  });
}

function lastLine(text) {
  const lines = String(text).split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^ERROR:|error:/i.test(l)) || lines.pop() || "no output";
}

/** The directory of the ci-cacher project above `start` (the action's checkout), or null. */
export function findCheckout(start) {
  let dir = path.resolve(start);
  for (;;) {
    const file = path.join(dir, "pyproject.toml");
    if (existsSync(file) && /^\s*name\s*=\s*["']ci-cacher["']\s*$/m.test(readFileSync(file, "utf8"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** 16 hex of the sha256 of what goes into the package: pyproject.toml, README.md and every
 * file of the cacher package but bytecode, so each commit gets its own install. */
export function sourceHash(root) {
  const files = ["pyproject.toml", "README.md"].filter((f) => existsSync(path.join(root, f)));
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const name = `${rel}/${entry.name}`;
      if (entry.isDirectory() && entry.name !== "__pycache__") walk(name);
      else if (entry.isFile() && !entry.name.endsWith(".pyc")) files.push(name);
    }
  };
  walk("cacher");
  files.sort();
  const hash = createHash("sha256");
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(path.join(root, f))).update("\0");
  return hash.digest("hex").slice(0, 16);
}

function checkoutVersion(root) {
  const init = path.join(root, "cacher", "__init__.py");
  const found = existsSync(init) && /^__version__\s*=\s*["']([^"']+)["']/m.exec(readFileSync(init, "utf8"));
  return found ? found[1] : "0";
}

// The console script pip writes names the interpreter by its absolute path, which the rename
// would break; this one finds the venv's python next to itself.
const WRAPPER = '#!/bin/sh\nexec "${0%/*}/python" -m cacher "$@"\n';

/** A virtual environment at `dir`, with one pip (or uv pip) install per argument list. */
async function makeVenv(dir, ...installs) {
  const bin = path.join(dir, "bin");
  const uv = onPath("uv");
  const python = onPath("python3") || onPath("python");
  if (!uv && !python) throw new SetupError("installing cacher failed: neither uv nor python3 is on PATH (add actions/setup-python, or set cacher-url to the bundle)");
  const steps = uv
    ? [[uv, ["venv", "--quiet", dir]], ...installs.map((a) => [uv, ["pip", "install", "--quiet", "--python", path.join(bin, "python"), ...a]])]
    : [[python, ["-m", "venv", dir]], ...installs.map((a) => [path.join(bin, "python"), ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", ...a]])];
  for (const [program, args] of steps) {
    const result = await quiet(program, args);
    if (result.code !== 0) {
      throw new SetupError(
        `installing cacher failed: ${lastLine(result.err)} (it needs Python 3.11+ and the package index: add actions/setup-python, or set cacher-url to the bundle)`,
      );
    }
  }
  const cacher = path.join(bin, "cacher");
  writeFileSync(cacher, WRAPPER);
  chmodSync(cacher, 0o755);
  return "bin/cacher";
}

/** The bytes at `url` (http, https or file) written to `file`, checked against `sha`. */
async function fetchTo(url, file, sha) {
  let data;
  if (url.startsWith("file://")) {
    try {
      data = readFileSync(new URL(url));
    } catch (e) {
      throw new SetupError(`installing cacher failed: cannot read ${url}: ${e.message}`);
    }
  } else {
    let response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new SetupError(`installing cacher failed: cannot download ${url}: ${e.message}`);
    }
    if (!response.ok) throw new SetupError(`installing cacher failed: ${url} answered HTTP ${response.status}`);
    data = Buffer.from(await response.arrayBuffer());
  }
  const actual = createHash("sha256").update(data).digest("hex");
  if (sha && actual !== sha.toLowerCase()) {
    throw new SetupError(`installing cacher failed: ${url} has sha256 ${actual}, not the cacher-sha256 given (${sha}): fix cacher-sha256 or cacher-url`);
  }
  writeFileSync(file, data);
}

/** Whether `dir` holds a whole install; a use touches it, so the sweep keeps it. */
function installed(dir, program) {
  if (!existsSync(path.join(dir, program))) return false;
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // read-only tool cache: it is kept anyway
  }
  return true;
}

const BUNDLE = /^cacher-([^/]+)-linux-(x86_64|aarch64)\.tar\.gz$/;

/** `dir` made by `build(tmp)`, which returns the program's path inside it; nothing appears at
 * `dir` until the build is whole, and a build another job finished first is used as it is. */
async function installOnce(dir, program, build) {
  if (installed(dir, program)) return path.join(dir, program);
  const parent = path.dirname(dir);
  mkdirSync(parent, { recursive: true });
  const base = path.basename(dir);
  for (const name of readdirSync(parent)) {
    // What killed jobs left (partial builds a day old), and installs nobody used for a week:
    // one checkout install per commit would fill a self-hosted runner's disk (about 120 MB
    // each). Every use touches its install, and GitHub ends a job after 5 days at most.
    const partial = name.includes(".partial-");
    if (!partial && !/-[0-9a-f]{16}$/.test(name)) continue;
    try {
      const age = Date.now() - statSync(path.join(parent, name)).mtimeMs;
      if (age > (partial ? 1 : 7) * 86400e3) rmSync(path.join(parent, name), { recursive: true, force: true });
    } catch {
      // another job's, or gone
    }
  }
  const tmp = path.join(parent, `${base}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await build(tmp);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(path.join(dir, program))) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return path.join(dir, program);
}

/** cacher's path: on PATH, else installed (once per runner) from the inputs or the checkout. */
export async function installCacher({ url, sha, version, actionPath }) {
  const found = onPath("cacher");
  if (found) return found;
  const tools = path.join(process.env.RUNNER_TOOL_CACHE || process.env.RUNNER_TEMP || os.tmpdir(), "cacher");
  if (url) {
    let name;
    try {
      name = decodeURIComponent(new URL(url).pathname.split("/").pop() || "");
    } catch {
      throw new SetupError(`cacher-url is not a URL: ${url}`);
    }
    if (!sha) core.warning("cacher-url is given without cacher-sha256: what it downloads is not checked");
    const tag = createHash("sha256").update(`${url}\0${sha}`).digest("hex").slice(0, 16);
    const bundle = BUNDLE.exec(name);
    if (bundle) {
      const want = { x64: "x86_64", arm64: "aarch64" }[process.arch];
      if (bundle[2] !== want) throw new SetupError(`installing cacher failed: ${name} is for ${bundle[2]}, this runner is ${process.arch}`);
      const dir = path.join(tools, `${bundle[1]}-${process.arch}-${tag}`);
      if (installed(dir, "cacher/cacher")) return path.join(dir, "cacher", "cacher");
      core.info(`cacher is not on PATH: installing the bundle ${name} into ${dir}`);
      return installOnce(dir, "cacher/cacher", async (tmp) => {
        mkdirSync(tmp);
        const file = path.join(tmp, name);
        await fetchTo(url, file, sha);
        const result = await quiet("tar", ["-xzf", file, "-C", tmp]);
        if (result.code !== 0) throw new SetupError(`installing cacher failed: cannot unpack ${name}: ${lastLine(result.err)}`);
        rmSync(file);
      });
    }
    if (!name.endsWith(".whl")) throw new SetupError(`cacher-url must name a wheel (.whl) or the bundle cacher-VERSION-linux-ARCH.tar.gz, not ${name}`);
    const dir = path.join(tools, `${name.split("-")[1] || "0"}-${process.arch}-${tag}`);
    if (installed(dir, "bin/cacher")) return path.join(dir, "bin", "cacher");
    core.info(`cacher is not on PATH: installing the wheel ${name} into ${dir}`);
    return installOnce(dir, "bin/cacher", async (tmp) => {
      const download = path.join(`${tmp}.download`);
      mkdirSync(download, { recursive: true });
      try {
        await fetchTo(url, path.join(download, name), sha);
        await makeVenv(tmp, [path.join(download, name)]);
      } finally {
        rmSync(download, { recursive: true, force: true });
      }
    });
  }
  if (version) {
    const dir = path.join(tools, `${version}-${process.arch}-pypi`);
    if (installed(dir, "bin/cacher")) return path.join(dir, "bin", "cacher");
    core.info(`cacher is not on PATH: installing ci-cacher==${version} from PyPI into ${dir}`);
    return installOnce(dir, "bin/cacher", (tmp) => makeVenv(tmp, [`ci-cacher==${version}`]));
  }
  const root = findCheckout(actionPath);
  if (!root) {
    throw new SetupError(`cacher is not on PATH and no ci-cacher project is above the action (${actionPath}): put cacher on PATH, or set cacher-url or cacher-version`);
  }
  const dir = path.join(tools, `${checkoutVersion(root)}-${process.arch}-${sourceHash(root)}`);
  if (installed(dir, "bin/cacher")) return path.join(dir, "bin", "cacher");
  core.info(`cacher is not on PATH: installing ci-cacher from the action's checkout ${root} into ${dir}`);
  const lock = path.join(root, "requirements-runtime.lock");
  return installOnce(dir, "bin/cacher", async (tmp) => {
    // The locked runtime dependencies (hashes checked), then the project without its own.
    if (existsSync(lock)) await makeVenv(tmp, ["--require-hashes", "-r", lock], ["--no-deps", root]);
    else await makeVenv(tmp, [root]);
  });
}
