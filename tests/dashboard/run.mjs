#!/usr/bin/env node
// The web dashboard (web/, served at / by `netdist serve`) in headless Chromium, and GET /metrics through a
// Prometheus text-format parser, against a real coordinator with two local CPU workers and the embedded model:
//   netdist serve --port 0 --auth-token T --enable-distributed --local-workers 2
// Checks: the page asks for the token and loads without console errors; the Cluster view lists the workers
// and drains one; the Generate form queues a prompt whose progress and image the page shows; History shows it
// with its thumbnail and opens the full image; Queue cancels a pending prompt and interrupts running ones; the
// History view renders 1,000 entries (the time it took is printed, not asserted: tests never assert wall
// times); /metrics parses and counts what happened; a second server over TLS (a throwaway certificate from
// `openssl`) serves the page over https and its WebSocket over wss. Screenshots go to <work>/screenshots/.
//
//   node tests/dashboard/run.mjs --netdist build/release/netdist --work build/release/dashboard
//
// Packages (puppeteer-core, parse-prometheus-text-format) are pinned in package.json / package-lock.json and
// installed with `npm ci` into <work>/ as tests/clients does. The browser is Debian's `chromium`
// (scripts/install-deps; another one with --chromium PATH or $CHROMIUM). Without chromium or the packages the
// run fails naming the cause, except with NETDIST_OFFLINE=1, where it skips (exit 77).
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
const work = path.resolve(arg("--work", path.join(repo, "build/release/dashboard")));
const chromium = arg("--chromium", process.env.CHROMIUM || "/usr/bin/chromium");
const offline = process.env.NETDIST_OFFLINE === "1";
const kHistoryEntries = 1000;
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

function fail(message) {
  console.error(`dashboard_browser: FAILED: ${message}`);
  process.exit(1);
}
function skipOrFail(why) {
  if (offline) {
    // The tag is what make test's report counts (src/core/skip_test_util.h, tests/report/report.h).
    console.log(`dashboard_browser: netdist-skip(offline): NETDIST_OFFLINE=1 and ${why}`);
    process.exit(kSkip);
  }
  fail(`${why} (scripts/install-deps installs chromium; set NETDIST_OFFLINE=1 to skip this test offline)`);
}
function check(cond, message) {
  if (!cond) throw new Error(message);
}

// ---- 1. the pinned packages and the browser ----------------------------------------------------------------------
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
    if (offline) skipOrFail(`the pinned packages are not in the npm cache:\n${why}`);
    fail(`cannot install the pinned packages with 'npm ci' (is the npm registry reachable?):\n${why}`);
  }
  fs.writeFileSync(stampFile, stamp);
}

// ---- 2. the server -----------------------------------------------------------------------------------------------
// `netdist serve` with `role` (its folder name) and `extra` arguments; resolves once it listens.
function startServer(token, role, extra) {
  const dir = path.join(work, role);
  fs.rmSync(dir, { recursive: true, force: true });
  const child = spawn(netdist, ["serve", "--port", "0", "--auth-token", token, ...extra,
                                "--output-directory", path.join(dir, "output"), "--input-directory", path.join(dir, "input"),
                                "--temp-directory", path.join(dir, "temp")],
                      { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`netdist serve did not report its port in 60 s: ${stderr}`)), 60_000);
    child.on("exit", (code) => reject(new Error(`netdist serve exited ${code} before listening: ${stderr}`)));
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on https?:\/\/[^\s]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), stderr: () => stderr });
      }
    });
  });
}

async function api(port, token, route, body) {
  const r = await fetch(`http://127.0.0.1:${port}${route}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  check(r.ok, `${route} -> ${r.status}: ${text.slice(0, 300)}`);
  return route === "/metrics" ? text : text ? JSON.parse(text) : null;
}

async function poll(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const txt2img = (seed, steps, prefix) => ({
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "tiny-emoji.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "blue star", clip: ["4", 1] } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
  "3": { class_type: "KSampler", inputs: { seed, steps, cfg: 5.0, sampler_name: "euler", scheduler: "normal", denoise: 1.0,
                                           model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0] } },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: prefix, images: ["8", 0] } },
});

// ---- 3. the flows ------------------------------------------------------------------------------------------------
async function login(page, base, token, consoleErrors) {
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForSelector("#login-token", { visible: true, timeout: 10_000 });
  check(await page.$eval("#main", (e) => e.hidden), "the views stay hidden before the token is given");
  await page.type("#login-token", "wrong-token");
  await page.click("#login-button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("wrong token"), { timeout: 10_000 });
  await page.$eval("#login-token", (e) => (e.value = ""));
  await page.type("#login-token", token);
  await page.click("#login-button");
  await page.waitForSelector("#main", { visible: true, timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#conn").textContent === "live", { timeout: 10_000 });
  // The wrong token's 401 is the one console error a browser logs by itself (a failed resource load).
  const unexpected = consoleErrors.filter((e) => !/401/.test(e));
  check(unexpected.length === 0, `console errors: ${unexpected.join(" | ")}`);
  consoleErrors.length = 0;
  return "login field; wrong token refused; live WebSocket";
}

async function clusterView(page, shots, port, token) {
  await page.click("#nav-cluster");
  const rows = await poll(() => page.$$eval("#workers tbody tr", (trs) => trs.map((tr) => tr.innerText)).then(
    (r) => (r.filter((t) => t.includes("ready") || t.includes("busy")).length >= 2 ? r : null)), 60_000, "two live workers in the Cluster view");
  await page.screenshot({ path: path.join(shots, "cluster.png") });
  check(rows.every((r) => /netdist/.test(r)), `worker kind shown: ${rows}`);
  // Drain the first worker from the page and take it back.
  const url = await page.$eval("#workers tbody tr", (tr) => tr.dataset.url);
  const row = `#workers tbody tr[data-url="${url}"]`;
  await page.click(`${row} button.drain`);
  await page.waitForFunction((s) => document.querySelector(s)?.innerText.includes("Undrain"), { timeout: 10_000 }, row);
  const drained = (await api(port, token, "/netdist/v1/cluster")).workers.find((w) => w.url === url);
  check(drained.draining === true, `the worker is drained: ${JSON.stringify(drained)}`);
  await page.click(`${row} button.drain`);
  await page.waitForFunction((s) => !document.querySelector(s)?.innerText.includes("Undrain"), { timeout: 10_000 }, row);
  check((await api(port, token, "/netdist/v1/cluster")).workers.find((w) => w.url === url).draining === false, "undrained");
  return `${rows.length} workers listed; drained and undrained ${url}`;
}

async function generate(page, shots, state) {
  await page.click("#nav-generate");
  await page.waitForFunction(() => [...document.querySelectorAll("#gen-ckpt option")].some((o) => o.value === "tiny-emoji.safetensors"),
                             { timeout: 10_000 });
  await page.select("#gen-ckpt", "tiny-emoji.safetensors");
  await page.$eval("#gen-prompt", (e) => (e.value = "red heart"));
  await page.$eval("#gen-steps", (e) => (e.value = "12"));
  await page.$eval("#gen-seed", (e) => (e.value = "4242"));
  // Every progress value the page shows, recorded as the page updates the bar.
  await page.evaluate(() => {
    window.__seenProgress = [];
    new MutationObserver(() => window.__seenProgress.push(document.querySelector("#gen-status").textContent))
      .observe(document.querySelector("#gen-status"), { childList: true, characterData: true, subtree: true });
  });
  await page.click("#gen-submit");
  await page.waitForFunction(() => /^done: /.test(document.querySelector("#gen-status").textContent), { timeout: 120_000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#gen-output img.result")].some((i) => i.complete && i.naturalWidth === 64),
                             { timeout: 10_000 });
  await page.screenshot({ path: path.join(shots, "generate.png") });
  const seen = await page.evaluate(() => window.__seenProgress);
  const bar = await page.$eval("#gen-progress", (p) => [p.value, p.max]);
  check(seen.some((s) => /step \d+\/12/.test(s)), `the page showed sampler steps: ${seen.join(" | ")}`);
  check(bar[0] === 12 && bar[1] === 12, `progress bar at 12/12: ${bar}`);
  state.promptId = (await page.$eval("#gen-status", (e) => e.textContent)).replace(/^done: /, "");
  return `prompt ${state.promptId}: ${seen.filter((s) => /step/.test(s)).length} progress updates, image shown`;
}

async function historyView(page, shots, state) {
  await page.click("#nav-history");
  const sel = `#history-list .entry[data-id="${state.promptId}"]`;
  await page.waitForSelector(sel, { timeout: 10_000 });
  await page.waitForFunction((s) => { const i = document.querySelector(s + " img"); return i && i.complete && i.naturalWidth === 64; },
                             { timeout: 10_000 }, sel);
  await page.screenshot({ path: path.join(shots, "history.png") });
  await page.click(sel);
  await page.waitForFunction(() => { const i = document.querySelector("#detail-images img"); return i && i.complete && i.naturalWidth === 64; },
                             { timeout: 10_000 });
  const info = JSON.parse(await page.$eval("#detail-info", (e) => e.textContent));
  check(info.workflow["3"].inputs.seed === 4242, "the detail shows the workflow");
  // A prompt a worker ran carries its plan (docs/api.md); one the coordinator ran itself has none.
  const plan = info.netdist?.plan;
  check(!plan || (typeof plan.mode === "string" && Array.isArray(plan.workers)), `the detail shows the plan: ${JSON.stringify(info.netdist)}`);
  await page.screenshot({ path: path.join(shots, "history-detail.png") });
  await page.click("#detail button.close");
  return `entry with thumbnail; detail with image, workflow and plan ${plan ? plan.mode + " on " + plan.workers.join(", ") : "(coordinator)"}`;
}

async function metrics(port, token, parse, state) {
  const text = await api(port, token, "/metrics");
  const families = parse(text);
  const byName = Object.fromEntries(families.map((f) => [f.name, f]));
  const value = (name, labels = {}) => {
    const f = byName[name];
    check(f, `/metrics has ${name}`);
    const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    check(m, `/metrics has ${name}${JSON.stringify(labels)}`);
    return Number(m.value ?? m.count);
  };
  check(value("netdist_prompts_finished_total", { outcome: "success" }) >= 1, "a successful prompt is counted");
  check(value("netdist_sampler_steps_total") >= 12, "the prompt's 12 steps are counted");
  check(byName.netdist_prompt_plans_total, "plans by mode");
  check(value("netdist_prompts", { state: "history" }) >= 1, "history size");
  check(value("netdist_queue_length") >= 0, "queue length");
  const up = byName.netdist_worker_up.metrics;
  check(up.filter((m) => m.value === "1").length >= 2, `two workers up: ${JSON.stringify(up)}`);
  const prompts = byName.netdist_worker_prompts_total.metrics.reduce((s, m) => s + Number(m.value), 0);
  check(prompts >= 1, "a worker ran the prompt");
  const busy = byName.netdist_worker_busy_seconds_total.metrics.reduce((s, m) => s + Number(m.value), 0);
  check(busy > 0, "busy seconds counted");
  check(byName.netdist_http_request_duration_seconds?.type === "HISTOGRAM", "latency is a histogram");
  // parse-prometheus-text-format folds a histogram's labelled series into one (it reads only unlabelled
  // _count/_sum), so the POST /prompt series is read from the text.
  const series = (suffix, labels) => {
    const m = text.match(new RegExp(`^netdist_http_request_duration_seconds_${suffix}\\{${labels}\\} (\\S+)$`, "m"));
    return m ? Number(m[1]) : NaN;
  };
  const count = series("count", 'method="POST",route="/prompt"');
  const inf = series("bucket", 'method="POST",route="/prompt",le="\\+Inf"');
  check(count >= 1 && inf === count, `POST /prompt latency: count ${count}, +Inf bucket ${inf}`);
  check(byName.netdist_device_memory_total_bytes.metrics.length >= 1, "device memory");
  return `${families.length} families; ${prompts} worker prompts, ${busy.toFixed(2)} busy s`;
}

async function cancelPending(page, port, token, shots) {
  // Long prompts (10,000 steps) fill every worker; the rest wait in the queue.
  const ids = [];
  for (let i = 0; i < 5; ++i) ids.push((await api(port, token, "/prompt", { prompt: txt2img(900 + i, 10000, "long"), client_id: "other" })).prompt_id);
  await page.click("#nav-queue");
  await page.waitForSelector("#queue-pending tbody tr button.cancel", { timeout: 20_000 });
  await page.waitForSelector("#queue-running tbody tr", { timeout: 20_000 });
  await page.screenshot({ path: path.join(shots, "queue.png") });
  const victim = await page.$eval("#queue-pending tbody tr", (tr) => tr.dataset.id);
  // Clicked inside the page in one go: the view re-renders on every queue event, so a handle taken first can be
  // detached by the time puppeteer clicks it.
  await page.waitForFunction((id) => {
    const b = document.querySelector(`#queue-pending tbody tr[data-id="${id}"] button.cancel`);
    if (b) b.click();
    return !!b;
  }, { timeout: 10_000 }, victim);
  await page.waitForFunction((id) => !document.querySelector(`#queue-pending tr[data-id="${id}"]`), { timeout: 10_000 }, victim);
  const q = await api(port, token, "/queue");
  check(!q.queue_pending.some((i) => i[1] === victim) && !q.queue_running.some((i) => i[1] === victim), "the cancelled prompt left the queue");
  // Clear the rest, interrupt the running ones from the page.
  await page.click("#queue-clear");
  await page.waitForFunction(() => document.querySelectorAll("#queue-pending tbody tr").length === 0, { timeout: 10_000 });
  for (const end = Date.now() + 30_000; Date.now() < end;) {
    const clicked = await page.evaluate(() => {
      const b = document.querySelector("#queue-running button.interrupt");
      if (b) b.click();
      return !!b;
    });
    if (!clicked) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  await poll(async () => (await api(port, token, "/queue")).queue_running.length === 0, 60_000, "running prompts interrupted");
  const h = await api(port, token, "/history");
  check(!(victim in h), "the cancelled prompt never ran");
  const interrupted = ids.filter((id) => h[id]?.status?.messages?.some((m) => m[0] === "execution_interrupted"));
  check(interrupted.length >= 1, "the running prompts were interrupted");
  return `cancelled ${victim.slice(0, 8)}, cleared the queue, interrupted ${interrupted.length}`;
}

async function thousandEntries(page, base, port, token, shots, state) {
  // Copies of the finished prompt come from the cache: each is a history entry within milliseconds.
  // Independent of the step before: nothing left queued or running (a failed cancel step must not fail this one).
  await api(port, token, "/queue", { clear: true });
  await api(port, token, "/interrupt", {});
  await poll(async () => (await api(port, token, "/queue")).queue_running.length === 0, 60_000, "an idle queue");
  const prompt = (await api(port, token, `/history/${state.promptId}`))[state.promptId].prompt[2];
  let have = Object.keys(await api(port, token, "/history")).length;
  const started = Date.now();
  while (have < kHistoryEntries) {
    const n = Math.min(25, kHistoryEntries - have);
    await Promise.all(Array.from({ length: n }, () => api(port, token, "/prompt", { prompt })));
    have += n;
  }
  await poll(async () => (await api(port, token, "/queue")).queue_running.length === 0 &&
                         Object.keys(await api(port, token, "/history")).length >= kHistoryEntries, 120_000, "1,000 history entries");
  log(`made ${kHistoryEntries} history entries in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  state.consoleErrors.length = 0;
  await page.goto("about:blank");
  const loadStart = Date.now();
  await page.goto(base + "/#history", { waitUntil: "load" });  // the token stays in the tab (sessionStorage)
  await page.waitForFunction((n) => document.querySelectorAll("#history-list .entry").length >= n, { timeout: 60_000 }, kHistoryEntries);
  const ms = Date.now() - loadStart;
  const rendered = await page.$$eval("#history-list .entry", (e) => e.length);
  await page.screenshot({ path: path.join(shots, "history-1000.png") });
  check(state.consoleErrors.length === 0, `console errors: ${state.consoleErrors.join(" | ")}`);
  console.log(`dashboard_browser: load with ${rendered} history entries: ${ms} ms (measured, not asserted)`);
  return `${rendered} entries rendered, page loaded and rendered in ${ms} ms`;
}

async function tlsFlow(browser, token, shots, state) {
  const dir = path.join(work, "tls-cert");
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                                     "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
  check(!made.error && made.status === 0, `openssl could not make a test certificate: ${made.error?.message || made.stderr}`);
  const server = await startServer(token, "serve-tls", ["--tls-cert", cert, "--tls-key", key]);
  try {
    const page = await browser.newPage();
    page.on("console", (m) => { if (m.type() === "error") state.consoleErrors.push("tls: " + m.text()); });
    page.on("pageerror", (e) => state.consoleErrors.push("tls: " + String(e)));
    await page.goto(`https://127.0.0.1:${server.port}/`, { waitUntil: "load" });
    await page.waitForSelector("#login-token", { visible: true, timeout: 10_000 });
    await page.type("#login-token", token);
    await page.click("#login-button");
    await page.waitForFunction(() => document.querySelector("#conn").textContent === "live", { timeout: 10_000 });
    await page.click("#nav-generate");
    await page.waitForFunction(() => document.querySelectorAll("#gen-ckpt option").length > 0, { timeout: 10_000 });
    await page.$eval("#gen-steps", (e) => (e.value = "4"));
    await page.click("#gen-submit");
    await page.waitForFunction(() => /^done: /.test(document.querySelector("#gen-status").textContent), { timeout: 60_000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#gen-output img.result")].some((i) => i.complete && i.naturalWidth === 64),
                               { timeout: 10_000 });
    await page.screenshot({ path: path.join(shots, "tls-generate.png") });
    await page.close();
    return `https://127.0.0.1:${server.port}/: login, wss progress, image over https`;
  } finally {
    server.child.kill("SIGTERM");
  }
}

// ---- main --------------------------------------------------------------------------------------------------------
async function main() {
  if (!fs.existsSync(netdist)) fail(`no netdist binary at ${netdist} (build first, or pass --netdist)`);
  if (!fs.existsSync(chromium)) skipOrFail(`no Chromium at ${chromium}`);
  install();
  const requireFromWork = createRequire(path.join(work, "package.json"));
  const puppeteer = requireFromWork("puppeteer-core");
  const parse = requireFromWork("parse-prometheus-text-format");
  const shots = path.join(work, "screenshots");
  fs.mkdirSync(shots, { recursive: true });
  const token = createHash("sha256").update(String(process.pid) + Date.now()).digest("hex").slice(0, 32);
  const server = await startServer(token, "serve", ["--enable-distributed", "--local-workers", "2"]);
  const base = `http://127.0.0.1:${server.port}`;
  log(`server on port ${server.port}`);
  const browser = await puppeteer.launch({
    executablePath: chromium, headless: true, acceptInsecureCerts: true,  // the TLS flow's throwaway certificate
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const state = { consoleErrors: [] };
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
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on("console", (m) => { if (m.type() === "error") state.consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => state.consoleErrors.push(String(e)));
    await step("login with the token", () => login(page, base, token, state.consoleErrors));
    await step("Cluster view lists the workers", () => clusterView(page, shots, server.port, token));
    await step("Generate queues a prompt, shows progress and the image", () => generate(page, shots, state));
    if (state.promptId) {
      await step("History shows it; the detail opens", () => historyView(page, shots, state));
      await step("/metrics parses and counts it", () => metrics(server.port, token, parse, state));
    }
    await step("Queue cancels a pending prompt, interrupts running ones", () => cancelPending(page, server.port, token, shots));
    if (state.promptId) await step("History with 1,000 entries", () => thousandEntries(page, base, server.port, token, shots, state));
    await step("over TLS (https, wss)", () => tlsFlow(browser, token, shots, state));
    await step("no console errors", async () => {
      check(state.consoleErrors.length === 0, state.consoleErrors.join(" | "));
      return "none";
    });
  } finally {
    await browser.close().catch(() => {});
    server.child.kill("SIGTERM");
    await new Promise((r) => { server.child.on("exit", r); setTimeout(() => (server.child.kill("SIGKILL"), r()), 20_000); });
  }
  for (const [name, verdict, detail, ms] of results) console.log(`${verdict.padEnd(6)} ${name} (${ms} ms): ${detail}`);
  const failed = results.filter((r) => r[1] !== "ok");
  if (failed.length) {
    console.error(`server stderr (tail):\n${server.stderr().slice(-3000)}`);
    fail(`${failed.length} of ${results.length} checks failed`);
  }
  log(`all ${results.length} checks passed; screenshots in ${shots}`);
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
