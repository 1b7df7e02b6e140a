#!/usr/bin/env node
// Conformance with real third-party ComfyUI clients, pinned in package.json / package-lock.json:
//   @stable-canvas/comfyui-client  Client.enqueue (WebSocket), Client.enqueue_polling, with its LoginAuthPlugin
//   @saintno/comfyui-sdk          ComfyApi + PromptBuilder + CallWrapper.run, with bearer-token credentials
// Each flow queues a variant of examples/tiny_txt2img.json (its own seed and filename prefix) on a real
// `netdist serve --port 0 --auth-token T`, fetches the PNGs back through /view and compares them byte for byte
// with what `netdist run` writes for the same workflow. The StableCanvas WebSocket flow also checks the exact
// message order of a fresh job and of an identical (fully cached) resubmission.
//
//   node tests/clients/run.mjs --netdist build/release/netdist --work build/release/clients
//
// The packages are installed with `npm ci` into <work>/ (git-ignored), reused while the lock file is unchanged.
// If npm cannot install them the run fails, naming the cause; with NETDIST_OFFLINE=1 it installs from the npm
// cache only and, when that is not possible, skips (exit 77, ctest SKIP_RETURN_CODE).
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const kSkip = 77;
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const netdist = path.resolve(arg("--netdist", path.join(repo, "build/release/netdist")));
const work = path.resolve(arg("--work", path.join(repo, "build/release/clients")));
const offline = process.env.NETDIST_OFFLINE === "1";
const useAuth = !process.argv.includes("--no-auth");  // --no-auth: a server without --auth-token (older builds)
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

function fail(message) {
  console.error(`npm_clients: FAILED: ${message}`);
  process.exit(1);
}
function check(cond, message) {
  if (!cond) throw new Error(message);
}

// ---- 1. install the pinned clients -------------------------------------------------------------------------------
function install() {
  const files = ["package.json", "package-lock.json", ".npmrc"];
  const hash = createHash("sha256");
  for (const f of files) hash.update(fs.readFileSync(path.join(here, f)));
  const stamp = hash.digest("hex");
  const stampFile = path.join(work, "node_modules", ".netdist-stamp");
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === stamp) return;
  fs.mkdirSync(work, { recursive: true });
  for (const f of files) fs.copyFileSync(path.join(here, f), path.join(work, f));
  const npmArgs = ["ci", "--no-audit", "--no-fund", "--prefer-offline"];
  if (offline) npmArgs.push("--offline");
  log(`npm ${npmArgs.join(" ")} in ${work}`);
  const r = spawnSync("npm", npmArgs, { cwd: work, encoding: "utf8", timeout: 150_000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || r.stdout || "").trim().split("\n").slice(-6).join("\n");
    if (offline) {
      // The tag is what make test's report counts (src/core/skip_test_util.h, tests/report/report.h).
      console.log(`npm_clients: netdist-skip(offline): NETDIST_OFFLINE=1 and the pinned packages are not in ` +
                  `the npm cache`);
      console.log(why);
      process.exit(kSkip);
    }
    fail(`cannot install the pinned npm clients with 'npm ci' (is the npm registry reachable? ` +
         `set NETDIST_OFFLINE=1 to skip this test offline):\n${why}`);
  }
  fs.writeFileSync(stampFile, stamp);
}

// ---- 2. helpers ----------------------------------------------------------------------------------------------------
const workflow = JSON.parse(fs.readFileSync(path.join(repo, "examples/tiny_txt2img.json"), "utf8"));
function variant(seed, prefix) {
  const p = structuredClone(workflow);
  p["3"].inputs.seed = seed;
  p["3"].inputs.steps = 8;
  p["5"].inputs.batch_size = 2;
  p["9"].inputs.filename_prefix = prefix;
  return p;
}

function runProcess(cmd, args, options) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

// `netdist run` of one workflow: {basename: bytes}.
async function reference(name, prompt) {
  const dir = path.join(work, "run", name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "workflow.json");
  fs.writeFileSync(file, JSON.stringify(prompt));
  const r = await runProcess(netdist, ["run", file, "--output-directory", path.join(dir, "output"),
                                       "--temp-directory", path.join(dir, "temp"), "--input-directory", path.join(dir, "input")],
                             { cwd: repo });
  if (r.code !== 0) throw new Error(`netdist run ${name} exited ${r.code}: ${r.err.slice(-2000)}`);
  const images = {};
  for (const line of r.out.split("\n").filter(Boolean)) images[path.basename(line)] = fs.readFileSync(path.resolve(repo, line));
  check(Object.keys(images).length === 2, `netdist run ${name} wrote ${Object.keys(images).length} images, expected 2`);
  return images;
}

function startServer(token) {
  const dir = path.join(work, "serve");
  fs.rmSync(dir, { recursive: true, force: true });
  const child = spawn(netdist, ["serve", "--port", "0", ...(token ? ["--auth-token", token] : []),
                                "--output-directory", path.join(dir, "output"), "--input-directory", path.join(dir, "input"),
                                "--temp-directory", path.join(dir, "temp")],
                      { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`netdist serve did not report its port in 30 s: ${stderr}`)), 30_000);
    child.on("exit", (code) => reject(new Error(`netdist serve exited ${code} before listening: ${stderr}`)));
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^\s]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), stderr: () => stderr });
      }
    });
  });
}

async function fetchBytes(url, token) {
  const r = await fetch(url, { headers: authHeaders(token) });
  check(r.status === 200, `GET ${url} -> ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function compare(flow, got, expected) {
  const names = Object.keys(got).sort();
  check(JSON.stringify(names) === JSON.stringify(Object.keys(expected).sort()),
        `${flow}: server files ${names} differ from netdist run's ${Object.keys(expected).sort()}`);
  for (const n of names) check(Buffer.compare(got[n], expected[n]) === 0, `${flow}: ${n} differs from netdist run's bytes`);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms / 1000} s`)), ms)))])
    .finally(() => clearTimeout(timer));
}

function waitFor(pred, ms, what) {
  return withTimeout(new Promise((resolve) => {
    const tick = () => (pred() ? resolve() : setTimeout(tick, 20));
    tick();
  }), ms, what);
}

// ---- 3. the flows --------------------------------------------------------------------------------------------------
async function stableCanvasWebSocket(SC, WebSocket, port, token, prompt, expected) {
  const messages = [];
  const client = new SC.Client({ api_host: `127.0.0.1:${port}`, clientId: "sc-ws-client", WebSocket });
  if (token) client.use(new SC.plugins.LoginAuthPlugin({ token }));
  client.on("message", (ev) => { if (typeof ev.data === "string") messages.push(JSON.parse(ev.data)); });
  try {
    await client.connect({ timeout_ms: 10_000 });
    const out = await client.enqueue(prompt, { timeout_ms: 90_000 });
    const got = {};
    for (const img of out.images) got[new URL(img.data).searchParams.get("filename")] = await fetchBytes(img.data, token);
    compare("stable-canvas enqueue (WebSocket)", got, expected);
    const id = out.prompt_id;
    const done = (pid) => messages.some((m) => m.type === "executing" && m.data.node === null && m.data.prompt_id === pid);
    await waitFor(() => done(id), 30_000, "executing {node: null}");

    // Message order of the fresh job, as ComfyUI sends it (comfy-api.md §4.3).
    check(messages[0].type === "status" && messages[0].data.sid === "sc-ws-client", "first message is status with sid");
    const mine = messages.filter((m) => m.type !== "status");
    const types = mine.map((m) => m.type);
    check(types[0] === "execution_start" && types[1] === "execution_cached", `job starts with execution_start, execution_cached: ${types}`);
    check(types.at(-2) === "execution_success" && types.at(-1) === "executing", `job ends with execution_success, executing: ${types}`);
    check(mine.at(-1).data.node === null, "executing {node: null} is last");
    for (const m of mine) check(m.data.prompt_id === id, `${m.type} carries the prompt_id`);
    const executing = mine.filter((m) => m.type === "executing" && m.data.node !== null).map((m) => m.data.node);
    check(JSON.stringify([...executing].sort()) === JSON.stringify(["3", "4", "5", "6", "7", "8", "9"]), `every node executes once: ${executing}`);
    const progress = mine.filter((m) => m.type === "progress");
    check(progress.length >= 8 && progress.filter((m) => m.data.node === "3").length === 8, `8 sampler progress events: ${progress.length}`);
    check(progress.filter((m) => m.data.node === "3").every((m, i) => m.data.value === i + 1 && m.data.max === 8), "progress value 1..8 of 8");
    const executed = mine.filter((m) => m.type === "executed");
    check(executed.length === 1 && executed[0].data.node === "9" && executed[0].data.output.images.length === 2, "one executed for SaveImage");
    const sampler = types.lastIndexOf("executing", types.indexOf("progress"));
    check(mine[sampler].data.node === "3", "progress follows executing of the sampler");
    check(types.indexOf("executed") < types.indexOf("execution_success"), "executed before execution_success");
    const history = await (await fetch(`http://127.0.0.1:${port}/history/${id}`, { headers: authHeaders(token) })).json();
    check(history[id].status.status_str === "success", "history entry written");

    // An identical resubmission executes nothing and reports the old files. It is queued with the client's own
    // queuePrompt, not enqueue: enqueue starts listening only after the POST reply has been read, and a fully
    // cached prompt can finish before that (a race in the client, the same against ComfyUI).
    messages.length = 0;
    const again = await client.queuePrompt(0, { prompt });
    await waitFor(() => done(again.prompt_id), 30_000, "executing {node: null} of the resubmission");
    const cached = messages.find((m) => m.type === "execution_cached" && m.data.prompt_id === again.prompt_id);
    check(cached && [...cached.data.nodes].sort().join() === "3,4,5,6,7,8,9", `resubmission: every node cached: ${JSON.stringify(cached)}`);
    check(!messages.some((m) => m.type === "executing" && m.data.node !== null), "resubmission: no node executes");
    check(!messages.some((m) => m.type === "progress"), "resubmission: no progress");
    const reExecuted = messages.filter((m) => m.type === "executed" && m.data.prompt_id === again.prompt_id);
    check(reExecuted.length === 1 && JSON.stringify(reExecuted[0].data.output) === JSON.stringify(executed[0].data.output),
          "resubmission: executed re-sends SaveImage's old output");
    return `${types.length} messages in order; resubmission all cached`;
  } finally {
    client.close();
  }
}

async function stableCanvasPolling(SC, WebSocket, port, token, prompt, expected) {
  const client = new SC.Client({ api_host: `127.0.0.1:${port}`, clientId: "sc-poll-client", WebSocket });
  if (token) client.use(new SC.plugins.LoginAuthPlugin({ token }));
  try {
    check(await client.connect({ polling: { enabled: true, interval: 250 }, websocket: { enabled: false } }), "polling connect");
    const out = await client.enqueue_polling(prompt, { polling_ms: 250, timeout_ms: 90_000 });
    const got = {};
    for (const img of out.images) got[new URL(img.data).searchParams.get("filename")] = await fetchBytes(img.data, token);
    compare("stable-canvas enqueue_polling", got, expected);
    return `${out.images.length} images`;
  } finally {
    client.close();
  }
}

async function saintnoCallWrapper(SDK, port, token, prompt, seed, expected) {
  const api = new SDK.ComfyApi(`http://127.0.0.1:${port}`, "sdk-client",
                               token ? { credentials: { type: "bearer_token", token } } : {});
  try {
    await withTimeout(api.init(3, 500).waitForReady(), 20_000, "ComfyApi.init/waitForReady");
    const builder = new SDK.PromptBuilder(prompt, ["seed"], ["images"])
      .setInputNode("seed", "3.inputs.seed")
      .setOutputNode("images", "9")
      .input("seed", seed);
    let failure = null;
    const output = await withTimeout(new SDK.CallWrapper(api, builder)
      .onFailed((err) => (failure = err))
      .run(), 90_000, "CallWrapper.run");
    check(output, `CallWrapper.run failed: ${failure && (failure.stack || failure.message)} ${failure && JSON.stringify(failure.cause)}`);
    const got = {};
    for (const img of output.images.images) got[img.filename] = Buffer.from(await (await api.getImage(img)).arrayBuffer());
    compare("saintno CallWrapper.run", got, expected);
    return `${output.images.images.length} images`;
  } finally {
    api.destroy();
  }
}

async function refusedWithoutToken(port, token) {
  const body = JSON.stringify({ prompt: variant(7, "refused"), client_id: "x" });
  const none = await fetch(`http://127.0.0.1:${port}/prompt`, { method: "POST", body });
  check(none.status === 401 && (await none.json()).error.type === "missing_token", "POST /prompt without a token is 401 missing_token");
  const wrong = await fetch(`http://127.0.0.1:${port}/prompt`, { method: "POST", body, headers: { Authorization: "Bearer nope" } });
  check(wrong.status === 401 && (await wrong.json()).error.type === "wrong_token", "POST /prompt with a wrong token is 401 wrong_token");
  const history = await (await fetch(`http://127.0.0.1:${port}/history`, { headers: { Authorization: `Bearer ${token}` } })).json();
  check(!Object.values(history).some((h) => h.prompt[2]["9"].inputs.filename_prefix === "refused"), "a refused prompt never runs");
  return "401 for missing and wrong tokens; nothing queued";
}

// ---- main ----------------------------------------------------------------------------------------------------------
async function main() {
  if (!fs.existsSync(netdist)) fail(`no netdist binary at ${netdist} (build first, or pass --netdist)`);
  install();
  const requireFromWork = createRequire(path.join(work, "package.json"));
  const SC = requireFromWork("@stable-canvas/comfyui-client");
  const SDK = requireFromWork("@saintno/comfyui-sdk");
  const WebSocket = requireFromWork("ws");
  log("clients installed");

  const flows = { scws: [101, "sc_ws"], scpoll: [202, "sc_poll"], sdk: [303, "sdk"] };
  const prompts = Object.fromEntries(Object.entries(flows).map(([k, [seed, prefix]]) => [k, variant(seed, prefix)]));
  const token = useAuth ? createHash("sha256").update(String(process.pid) + Date.now()).digest("hex").slice(0, 32) : null;
  const [server, ...refs] = await Promise.all([startServer(token), ...Object.entries(prompts).map(([k, p]) => reference(k, p))]);
  const expected = Object.fromEntries(Object.keys(prompts).map((k, i) => [k, refs[i]]));
  log(`netdist run wrote the references; server on port ${server.port}`);
  const results = [];
  const step = async (name, fn) => {
    const start = Date.now();
    try {
      results.push([name, "ok", await fn(), Date.now() - start]);
      log(`${name}: ok`);
    } catch (e) {
      results.push([name, "FAILED", e.stack || String(e), Date.now() - start]);
      log(`${name}: FAILED ${e.message}`);
    }
  };
  try {
    if (token) await step("auth: refused without token", () => refusedWithoutToken(server.port, token));
    await step("stable-canvas Client.enqueue (WebSocket)", () => stableCanvasWebSocket(SC, WebSocket, server.port, token, prompts.scws, expected.scws));
    await step("stable-canvas Client.enqueue_polling", () => stableCanvasPolling(SC, WebSocket, server.port, token, prompts.scpoll, expected.scpoll));
    await step("saintno CallWrapper.run", () => saintnoCallWrapper(SDK, server.port, token, prompts.sdk, flows.sdk[0], expected.sdk));
  } finally {
    server.child.kill("SIGTERM");
    const code = await withTimeout(new Promise((r) => server.child.on("exit", (c, sig) => r(c ?? sig))), 20_000, "server shutdown")
      .catch((e) => (server.child.kill("SIGKILL"), e.message));
    results.push(["server exits cleanly on SIGTERM", code === 0 ? "ok" : "FAILED", `exit ${code}`, 0]);
  }
  for (const [name, verdict, detail, ms] of results) console.log(`${verdict.padEnd(6)} ${name} (${ms} ms): ${detail}`);
  const failed = results.filter((r) => r[1] !== "ok");
  if (failed.length) {
    console.error(`server stderr (tail):\n${server.stderr().slice(-3000)}`);
    fail(`${failed.length} of ${results.length} checks failed`);
  }
  log(`all ${results.length} checks passed`);
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
