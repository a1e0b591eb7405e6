// What the entry points share: inputs, the environment cacher runs in, running cacher, and
// the restore and save flows with actions/cache's semantics.
import * as core from "@actions/core";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SetupError, installCacher } from "./install.js";

export const State = {
  primaryKey: "CACHE_KEY",
  matchedKey: "CACHE_RESULT",
  cacher: "CACHER_PATH",
};

/** What the store answered or failed to answer: ends the step only when soft failure is off.
 * A broken set-up (`SetupError`: install, inputs, configuration) always ends it. */
export class CacheError extends Error {}

/** Text made safe for one log line: control characters (CR and LF above all, which would
 * start a new line) shown as `\xNN`, and nothing the runner reads as a workflow command: no
 * `##[` anywhere and no `::` at the start of the line (the runner trims leading blanks first).
 * Keys, paths and cacher's own output are user text: none of it may issue `::warning::`,
 * `::add-mask::` or `::stop-commands::` on the action's behalf. */
export function safeLine(text) {
  return String(text)
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/##\[/g, "#\\x23[")
    .replace(/^(\s*):/, "$1\\x3a");
}

/** `core.info` of a line that may hold user text (core.warning and core.error escape their own). */
export function info(message) {
  core.info(safeLine(message));
}

export function getList(name) {
  return core
    .getInput(name)
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function getBool(name, fallback) {
  const value = core.getInput(name);
  if (!value) return fallback;
  if (/^(true|yes|1|on)$/i.test(value)) return true;
  if (/^(false|no|0|off)$/i.test(value)) return false;
  throw new Error(`Input ${name} must be true or false, not '${value}'`);
}

/** The patterns of `path:`, one per line, as cacher's paths kind reads them. */
export function getPaths() {
  const paths = getList("path");
  if (paths.length === 0) throw new Error("Input required and not supplied: path");
  return paths;
}

/** `_paths/<16 hex>`: where cacher keeps the objects of this pattern list (docs/paths.md). */
export function namespaceOf(patterns) {
  return `_paths/${createHash("sha256").update(patterns.join("\n")).digest("hex").slice(0, 16)}`;
}

function eventPayload() {
  const file = process.env.GITHUB_EVENT_PATH;
  if (!file || !existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return {};
  }
}

/** The job's scope: `scope`, else the ref name with its type: the branch as it is (`main`;
 * `123/merge` for a pull request, as actions/cache scopes it), a tag as `tag:NAME`, so a tag
 * named `main` is not the branch `main` (git forbids `:` in branch names). cacher maps the
 * name to its own prefix (`cacher scope NAME` prints it). */
export function scopeOf() {
  const given = core.getInput("scope");
  if (given) return given;
  const name = process.env.GITHUB_REF_NAME || "";
  if (name && process.env.GITHUB_REF_TYPE === "tag") return `tag:${name}`;
  return name;
}

/** `fallback-scopes`, else a pull request's base branch and the repository's default branch. */
export function fallbackScopesOf() {
  const given = getList("fallback-scopes").flatMap((s) => s.split(",").map((t) => t.trim()));
  if (given.length) return given.filter(Boolean);
  const out = [];
  if (process.env.GITHUB_BASE_REF) out.push(process.env.GITHUB_BASE_REF);
  const def = eventPayload()?.repository?.default_branch;
  if (def) out.push(def);
  return [...new Set(out)];
}

// The key id too: with it, a leaked secret is usable, and the docs promise credentials masked.
const SECRET_VARIABLES = [
  "CACHER_S3_KEY_ID",
  "CACHER_S3_SECRET",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "CACHER_SESSION_TOKEN",
];

/** The environment cacher runs in: the store settings from the inputs as CACHER_* variables
 * (inputs win over the environment), every secret masked in the log. */
export function cacherEnv() {
  const env = { ...process.env };
  delete env.GITHUB_OUTPUT; // the action sets the outputs, not cacher
  for (const name of Object.keys(env)) if (name.startsWith("INPUT_")) delete env[name];
  const settings = {
    backend: "CACHER_BACKEND",
    endpoint: "CACHER_ENDPOINT",
    region: "CACHER_REGION",
    bucket: "CACHER_BUCKET",
    prefix: "CACHER_PREFIX",
  };
  for (const [input, variable] of Object.entries(settings)) {
    const value = core.getInput(input);
    if (value) env[variable] = value;
  }
  const keyId = core.getInput("access-key-id");
  const secret = core.getInput("secret-access-key");
  if (keyId) env.CACHER_S3_KEY_ID = keyId;
  if (secret) env.CACHER_S3_SECRET = secret;
  for (const name of SECRET_VARIABLES) if (env[name]) core.setSecret(env[name]);
  const scope = scopeOf();
  if (scope) env.CACHER_SCOPE = scope;
  const fallbacks = fallbackScopesOf();
  if (fallbacks.length) env.CACHER_FALLBACK_SCOPES = fallbacks.join(",");
  if (getBool("read-only", false)) env.CACHER_READ_ONLY = "1";
  if (getBool("soft-fail", true)) env.CACHER_SOFT_FAIL = "1";
  if (!env.TMPDIR && env.RUNNER_TEMP) env.TMPDIR = env.RUNNER_TEMP; // restores stage there
  return env;
}

/** Run a program; stderr goes to the log line by line as it comes, each line made safe
 * (`safeLine`: it may echo keys and paths), and is kept for errors. */
export function run(program, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let pending = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      err += d;
      const lines = (pending + d).split("\n");
      pending = lines.pop();
      for (const line of lines) process.stderr.write(`${safeLine(line.replace(/\r$/, ""))}\n`);
    });
    child.on("error", (e) => reject(new SetupError(`cannot run ${program}: ${e.message}`)));
    child.on("close", (code, signal) => {
      if (pending) process.stderr.write(`${safeLine(pending)}\n`);
      resolve({ code: code ?? 128, signal, out, err });
    });
  });
}

function lastError(result) {
  const lines = result.err.split("\n").filter((l) => l.trim());
  const error = lines.reverse().find((l) => l.startsWith("cacher: error:"));
  return (error || lines[0] || `exit ${result.code}`).replace(/^cacher: error: /, "");
}

/** Fails the step before anything runs on a runner cacher does not support (Windows). */
export function checkRunner() {
  if (process.platform === "win32" || process.env.RUNNER_OS === "Windows") {
    throw new SetupError("cacher does not support Windows runners yet: run this job on Linux or macOS (runs-on: ubuntu-latest)");
  }
}

/** Fails the step when nothing names a store: cacher would cache into the runner's own HOME,
 * which a hosted runner throws away. A store is named by the backend, endpoint or bucket input,
 * a CACHER_BACKEND, CACHER_ENDPOINT or CACHER_BUCKET variable, or a cacher config file. */
export function checkStore(env) {
  if (env.CACHER_BACKEND || env.CACHER_ENDPOINT || env.CACHER_BUCKET) return;
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), ".config");
  const file = env.CACHER_CONFIG || path.join(base, "cacher", "config.toml");
  if (existsSync(file)) return;
  throw new SetupError(
    "No store configured: set the bucket input (and endpoint for a store other than AWS S3), " +
      "or CACHER_BUCKET in the job's env; backend: file with a bucket directory caches on a self-hosted runner's disk",
  );
}

/** cacher: the one the main step found (its state), else on PATH, else installed once per
 * runner from `cacher-url`, `cacher-version` or the ci-cacher checkout above the action. */
export async function findCacher() {
  const remembered = core.getState(State.cacher);
  if (remembered && existsSync(remembered)) return remembered;
  return installCacher({
    url: core.getInput("cacher-url"),
    sha: core.getInput("cacher-sha256"),
    version: core.getInput("cacher-version"),
    actionPath: process.env.GITHUB_ACTION_PATH || path.join(__dirname, ".."),
  });
}

// What cacher's JSON error document says failed (error.kind, docs/json.md) and what to do
// about it: these are the job's set-up, which no retry fixes; any other kind (storage,
// integrity, artifact, refused, interrupted) is the store's or the moment's, soft under soft-fail.
const SETUP_KINDS = {
  usage: "check the action's inputs",
  config: "check the store settings: the inputs, CACHER_* variables and both halves of the credentials",
  plugin: "check the cacher plugins installed on the runner",
  error: "check the action's inputs and the plugins installed",
  internal: "a bug in cacher: please report it with the log",
};

/** The error for a cacher run that failed: a `SetupError` for a broken set-up, else a
 * `CacheError` (soft under soft-fail). */
function failure(result) {
  const message = `cacher exited ${result.code}: ${lastError(result)}`;
  if (result.signal) return new CacheError(message);
  const kind = result.doc?.error?.kind;
  if (!kind) return new SetupError(`${message} (no JSON error document: is the cacher on PATH too old?)`);
  if (Object.hasOwn(SETUP_KINDS, kind)) return new SetupError(`${message} (${SETUP_KINDS[kind]})`);
  return new CacheError(message);
}

async function cacherJson(cacher, args, env) {
  const result = await run(cacher, args, env);
  // A store that failed under soft failure: cacher carried on (a miss, nothing stored); the
  // job's summary shows it as a warning, as actions/cache shows its own.
  for (const line of result.err.split("\n")) {
    if (/soft failure/.test(line)) core.warning(line.replace(/^cacher: (error|warning): /, ""));
  }
  let doc = null;
  try {
    doc = result.out.trim() ? JSON.parse(result.out.trim().split("\n").pop()) : null;
  } catch {
    doc = null;
  }
  return { ...result, doc };
}

/** The key restored (exact or a restore key's match) or undefined on a miss. */
async function download(cacher, env, key, paths, restoreKeys) {
  const args = ["paths", "download", "--json"];
  for (const r of restoreKeys) args.push("--restore-key", r);
  const r = await cacherJson(cacher, [...args, "--", key, ...paths], env);
  if (r.code === 0 && r.doc) return r.doc.matched_key || key;
  if (r.code === 3) return undefined;
  throw failure(r);
}

/** lookup-only: whether the key, or an object under a restore key, is stored; nothing is
 * downloaded. Looks in the job's scope, then each fallback scope, as a restore would. */
async function lookUp(cacher, env, key, paths, restoreKeys) {
  const ns = namespaceOf(paths);
  const scopes = [env.CACHER_SCOPE || ""];
  for (const s of (env.CACHER_FALLBACK_SCOPES || "").split(",")) if (s && !scopes.includes(s)) scopes.push(s);
  for (const scope of scopes) {
    const scoped = { ...env };
    if (scope) scoped.CACHER_SCOPE = scope;
    const exists = await cacherJson(cacher, ["exists", "--json", "--", `${ns}/${key}`], scoped);
    if (exists.code === 0) return key;
    if (exists.code !== 1) throw failure(exists);
    for (const prefix of restoreKeys) {
      const listed = await cacherJson(cacher, ["list", "--json", "--", `${ns}/${prefix}`], scoped);
      if (listed.code !== 0 || !listed.doc) throw failure(listed);
      const objects = listed.doc.objects.filter((o) => o.key.startsWith(`${ns}/${prefix}`));
      objects.sort((a, b) => (b.modified || "").localeCompare(a.modified || "") || b.key.localeCompare(a.key));
      if (objects.length) return objects[0].key.slice(ns.length + 1);
    }
  }
  return undefined;
}

function fail(error, soft) {
  if (error instanceof CacheError && soft) {
    core.warning(`Failed to restore: ${error.message}`);
    return;
  }
  throw error;
}

/** The restore step (the action's main, and restore/). */
export async function restore({ keepState }) {
  try {
    const key = core.getInput("key", { required: true });
    const paths = getPaths();
    const restoreKeys = getList("restore-keys");
    const lookupOnly = getBool("lookup-only", false);
    const failOnMiss = getBool("fail-on-cache-miss", false);
    const soft = getBool("soft-fail", true);
    checkRunner();
    const env = cacherEnv();
    checkStore(env);
    if (keepState) core.saveState(State.primaryKey, key);
    core.setOutput("cache-primary-key", key);
    let matched;
    try {
      const cacher = await findCacher();
      if (keepState) core.saveState(State.cacher, cacher);
      matched = lookupOnly
        ? await lookUp(cacher, env, key, paths, restoreKeys)
        : await download(cacher, env, key, paths, restoreKeys);
    } catch (error) {
      fail(error, soft);
    }
    if (!matched) {
      core.setOutput("cache-hit", "false");
      if (failOnMiss) {
        throw new Error(`Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: ${key}`);
      }
      info(`Cache not found for input keys: ${[key, ...restoreKeys].join(", ")}`);
      return;
    }
    if (keepState) core.saveState(State.matchedKey, matched);
    core.setOutput("cache-matched-key", matched);
    core.setOutput("cache-hit", String(matched === key));
    info(lookupOnly ? `Cache found and can be restored from key: ${matched}` : `Cache restored from key: ${matched}`);
  } catch (error) {
    core.setFailed(error.message);
  }
}

/** The save step (the action's post, and save/). ``fromState``: the post step, which skips
 * the save after an exact hit and saves under the key the restore step used. */
export async function save({ fromState }) {
  try {
    const key = (fromState && core.getState(State.primaryKey)) || core.getInput("key", { required: true });
    const paths = getPaths();
    const soft = getBool("soft-fail", true);
    if (fromState) {
      const matched = core.getState(State.matchedKey);
      if (matched && matched === key) {
        info(`Cache hit occurred on the primary key ${key}, not saving cache.`);
        return;
      }
    }
    checkRunner();
    const env = cacherEnv();
    checkStore(env);
    try {
      const cacher = await findCacher();
      const r = await cacherJson(cacher, ["paths", "upload", "--json", "--", key, ...paths], env);
      if (r.code !== 0) throw failure(r);
      const outcome = r.doc?.outcome;
      if (outcome === "uploaded") info(`Cache saved with key: ${key}`);
      else if (outcome === "skipped") info(`Cache with key ${key} is already stored, not saving cache.`);
      else if (outcome === "read-only") info(`Read-only: cache not saved with key: ${key}`);
      // "failed": a soft failure, already a warning
    } catch (error) {
      if (error instanceof CacheError && soft) core.warning(`Failed to save: ${error.message}`);
      else throw error;
    }
  } catch (error) {
    core.setFailed(error.message);
  }
}
