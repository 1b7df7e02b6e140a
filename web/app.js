// The netdist dashboard: Cluster, Queue, History and Generate views over the server's own routes
// (docs/api.md "Dashboard"). Plain ES modules, no build step, nothing loaded from elsewhere.
import { ApiError, call, clientId, dashboardConfig, hasToken, openSocket, setToken, viewUrl } from "./api.js";
import { workflowFromForm, workflowFromText } from "./workflow.js";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const bytes = (n) => (n == null ? "" : n >= 2 ** 30 ? (n / 2 ** 30).toFixed(1) + " GiB" : (n / 2 ** 20).toFixed(0) + " MiB");

const state = {
  view: "cluster",
  cluster: false,       // a coordinator (config.json): the Cluster view lists its workers
  progress: new Map(),  // prompt_id -> {value, max, node}
  history: new Map(),   // prompt_id -> entry, in the server's order (oldest first)
  current: null,        // prompt_id queued from the Generate view
  timers: [],
};

function report(error) {
  const el = $("#gen-status");
  el.textContent = error instanceof Error ? error.message : String(error);
  el.className = "error";
}

// ---- views ------------------------------------------------------------------------------------------------------
function show(view) {
  if (!document.getElementById("view-" + view)) view = "cluster";
  state.view = view;
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
  refresh(view).catch(report);
}

async function refresh(view) {
  if (view === "cluster") return refreshCluster();
  if (view === "queue") return refreshQueue();
  if (view === "history") return refreshHistory(true);
}

function workerTask(w) {
  const t = w.task;
  if (!t) return '<span class="muted">idle</span>';
  const step = t.steps ? ` step ${t.step}/${t.steps}` : "";
  const prompt = t.prompt_id ? ` <span class="muted">${esc(t.prompt_id.slice(0, 8))}</span>` : "";
  return `${esc(t.kind)}${prompt}${step} <span class="muted">${t.seconds.toFixed(1)} s</span>`;
}

function workerRow(w) {
  const health = !w.alive ? '<span class="health-bad">down</span>'
    : w.task ? `<span class="health-busy">busy${w.draining ? ", draining" : ""}</span>`
    : w.draining ? '<span class="health-busy">drained</span>' : '<span class="health-ok">ready</span>';
  const d = w.device || {};
  const device = d.name ? `${esc(d.name)}${d.vram_total ? " · " + bytes(d.vram_total) : ""}` : '<span class="muted">?</span>';
  const speed = w.seconds_per_unit ? `${(1 / w.seconds_per_unit).toFixed(2)} units/s` : '<span class="muted">not measured</span>';
  return `<tr data-url="${esc(w.url)}"><td>${esc(w.url)}${w.dial_in ? ' <span class="muted">dial-in</span>' : ""}</td>
    <td>${esc(w.kind)}</td><td>${health}</td><td>${device}</td><td>${speed}</td><td>${workerTask(w)}</td>
    <td>${w.shards_done}</td><td>${w.failures}</td><td>${(w.busy_seconds_total ?? 0).toFixed(1)} s</td>
    <td class="error">${esc(w.error || "")}</td>
    <td><button class="drain small" data-url="${esc(w.url)}" data-drain="${w.draining ? "false" : "true"}">${w.draining ? "Undrain" : "Drain"}</button></td></tr>`;
}

async function refreshCluster() {
  const [cluster, stats] = await Promise.all([state.cluster ? call("/netdist/v1/cluster") : null, call("/system_stats")]);
  const body = $("#workers tbody");
  if (cluster) {
    const alive = cluster.workers.filter((w) => w.alive).length;
    $("#cluster-summary").textContent = `${cluster.workers.length} workers, ${alive} alive, ${cluster.queued} tasks queued`;
    body.innerHTML = cluster.workers.map(workerRow).join("");
    $("#add-worker").hidden = false;
  } else {
    $("#cluster-summary").textContent = "A single server (not started with --enable-distributed): it renders everything itself.";
    body.innerHTML = "";
  }
  $("#devices tbody").innerHTML = (stats.devices || []).map((d) =>
    `<tr><td>${esc(d.name)}</td><td>${esc(d.type)}</td><td>${bytes(d.vram_total)}</td><td>${bytes(d.vram_free)}</td></tr>`).join("");
}

function promptSummary(item) {
  const prompt = item[2] || {};
  const classes = Object.values(prompt).map((n) => n.class_type);
  const text = Object.values(prompt).find((n) => n.class_type === "CLIPTextEncode");
  return { nodes: classes.length, label: text ? String(text.inputs.text).slice(0, 60) : classes.slice(0, 3).join(", ") };
}

function queueRow(item, running) {
  const [number, id, , extra] = item;
  const s = promptSummary(item);
  const p = state.progress.get(id);
  const last = running
    ? `<td>${p ? `<progress max="${p.max}" value="${p.value}"></progress> ${p.value}/${p.max}` : '<span class="muted">running</span>'}</td>`
    : `<td>${esc(extra?.netdist?.priority ?? "")}</td>`;
  const button = running ? `<button class="interrupt" data-id="${esc(id)}">Interrupt</button>` : `<button class="cancel" data-id="${esc(id)}">Cancel</button>`;
  return `<tr data-id="${esc(id)}"><td>${esc(number)}</td><td><span class="muted">${esc(id.slice(0, 8))}</span> ${esc(s.label)}</td>
    <td>${s.nodes}</td>${last}<td>${button}</td></tr>`;
}

async function refreshQueue() {
  const q = await call("/queue");
  $("#queue-running tbody").innerHTML = q.queue_running.map((i) => queueRow(i, true)).join("");
  $("#queue-pending tbody").innerHTML = q.queue_pending.map((i) => queueRow(i, false)).join("");
}

function entryImages(entry) {
  const images = [];
  for (const out of Object.values(entry.outputs || {})) for (const img of out.images || []) images.push(img);
  return images;
}

function entrySeconds(entry) {
  const msgs = entry.status?.messages || [];
  const start = msgs.find((m) => m[0] === "execution_start");
  const end = msgs.findLast((m) => ["execution_success", "execution_error", "execution_interrupted"].includes(m[0]));
  return start && end ? (end[1].timestamp - start[1].timestamp) / 1000 : null;
}

function entryRow(id, entry) {
  const images = entryImages(entry);
  const thumb = images.length ? `<img loading="lazy" src="${esc(viewUrl(images[0]))}" alt="">` : "<img alt=\"\">";
  const plan = entry.netdist?.plan;
  const planText = plan ? `${esc(plan.mode)} on ${plan.workers.length} worker${plan.workers.length === 1 ? "" : "s"}` : "";
  const secs = entrySeconds(entry);
  const status = entry.status?.status_str || "?";
  return `<div class="entry" data-id="${esc(id)}">${thumb}<span class="id">${esc(id.slice(0, 8))}</span>
    <span class="${status === "success" ? "health-ok" : "health-bad"}">${esc(status)}</span>
    <span>${esc(promptSummary(entry.prompt || []).label)}</span><span class="spacer"></span>
    <span class="muted">${images.length} image${images.length === 1 ? "" : "s"}</span>
    <span class="muted">${planText}</span><span class="muted">${secs == null ? "" : secs.toFixed(2) + " s"}</span></div>`;
}

function renderHistory() {
  const ids = [...state.history.keys()].reverse();  // newest first
  $("#history-list").innerHTML = ids.map((id) => entryRow(id, state.history.get(id))).join("");
  $("#history-count").textContent = `(${ids.length})`;
}

// full: reload every entry; else fetch the last few and add the ones not shown yet.
async function refreshHistory(full) {
  const h = await call(full ? "/history" : "/history?max_items=16");
  if (full) state.history.clear();
  let added = false;
  for (const [id, entry] of Object.entries(h)) {
    if (!state.history.has(id)) added = true;
    state.history.set(id, entry);
  }
  if (full || added) renderHistory();
}

function showDetail(id) {
  const entry = state.history.get(id);
  if (!entry) return;
  $("#detail-images").innerHTML = entryImages(entry).map((img) =>
    `<a href="${esc(viewUrl(img))}" target="_blank"><img src="${esc(viewUrl(img))}" alt="${esc(img.filename)}"></a>`).join("");
  const info = { prompt_id: id, status: entry.status?.status_str, seconds: entrySeconds(entry), netdist: entry.netdist,
                 workflow: entry.prompt?.[2], errors: (entry.status?.messages || []).filter((m) => m[0] === "execution_error") };
  // Per-node timings (history netdist.nodes: node, class_type, seconds, worker), slowest first.
  const nodes = [...(entry.netdist?.nodes || [])].sort((a, b) => (b.seconds || 0) - (a.seconds || 0));
  $("#detail-nodes").innerHTML = nodes.length === 0 ? "" :
    "<tr><th>node</th><th>class</th><th>seconds</th><th>worker</th></tr>" + nodes.map((n) =>
      `<tr><td>${esc(n.node)}</td><td>${esc(n.class_type)}</td><td>${Number(n.seconds || 0).toFixed(3)}</td>` +
      `<td>${esc(n.worker ?? "")}</td></tr>`).join("");
  $("#detail-info").textContent = JSON.stringify(info, null, 2);
  $("#detail").showModal();
}

// ---- Generate ---------------------------------------------------------------------------------------------------
function comboOptions(spec) {
  if (!spec) return [];
  if (Array.isArray(spec[0])) return spec[0];  // V1: [[options...], {...}]
  return spec[1]?.options || [];                // V3: ["COMBO", {options}]
}

async function loadGenerateOptions() {
  const [ckpt, sampler] = await Promise.all([call("/object_info/CheckpointLoaderSimple"), call("/object_info/KSampler")]);
  const fill = (sel, options, preferred) => {
    $(sel).innerHTML = options.map((o) => `<option${o === preferred ? " selected" : ""}>${esc(o)}</option>`).join("");
  };
  fill("#gen-ckpt", comboOptions(ckpt.CheckpointLoaderSimple?.input?.required?.ckpt_name));
  const required = sampler.KSampler?.input?.required || {};
  fill("#gen-sampler", comboOptions(required.sampler_name), "euler");
  fill("#gen-scheduler", comboOptions(required.scheduler), "normal");
}

async function queuePrompt(prompt, priority) {
  const body = { prompt, client_id: clientId };
  if (priority) body.extra_data = { netdist: { priority } };
  $("#gen-progress").value = 0;
  $("#gen-output").innerHTML = '<img id="gen-preview" alt="" hidden>';
  try {
    const r = await call("/prompt", { method: "POST", body });
    state.current = r.prompt_id;
    $("#gen-status").className = "muted";
    $("#gen-status").textContent = `queued ${r.prompt_id} (#${r.number})`;
  } catch (e) {
    const nodeErrors = e.body?.node_errors ? Object.entries(e.body.node_errors).map(([n, v]) => `node ${n}: ` + v.errors.map((x) => x.message + " " + x.details).join("; ")) : [];
    report([e.message, ...nodeErrors].join("\n"));
  }
}

function onGenerate(ev) {
  ev.preventDefault();
  const num = (id) => Number($(id).value);
  const prompt = workflowFromForm({
    ckpt: $("#gen-ckpt").value, text: $("#gen-prompt").value, negative: $("#gen-negative").value,
    width: num("#gen-width"), height: num("#gen-height"), steps: num("#gen-steps"), cfg: num("#gen-cfg"),
    sampler: $("#gen-sampler").value, scheduler: $("#gen-scheduler").value, seed: num("#gen-seed"), batch: num("#gen-batch"),
  });
  queuePrompt(prompt, num("#gen-priority"));
}

function onWorkflowText(text) {
  const parsed = workflowFromText(text);
  if (parsed.error) return report(parsed.error);
  queuePrompt(parsed.prompt, Number($("#gen-priority").value));
}

// ---- live events ------------------------------------------------------------------------------------------------
let refreshPending = null;
function scheduleRefresh() {
  if (refreshPending) return;
  refreshPending = setTimeout(() => {
    refreshPending = null;
    if (state.view === "queue") refreshQueue().catch(report);
    if (state.view === "history") refreshHistory(false).catch(report);
  }, 150);
}

function onMessage(type, data) {
  if (type === "status") return scheduleRefresh();
  const id = data?.prompt_id;
  if (type === "progress") {
    state.progress.set(id, { value: data.value, max: data.max, node: data.node });
    if (state.view === "queue") {
      const bar = document.querySelector(`#queue-running tr[data-id="${CSS.escape(id)}"] progress`);
      if (bar) bar.value = data.value; else scheduleRefresh();
    }
  }
  if (id !== state.current) return;
  const status = $("#gen-status");
  status.className = "muted";
  if (type === "executing" && data.node) status.textContent = `running node ${data.node}`;
  if (type === "progress") {
    $("#gen-progress").max = data.max;
    $("#gen-progress").value = data.value;
    status.textContent = `node ${data.node}: step ${data.value}/${data.max}`;
  }
  if (type === "executed") {
    for (const img of data.output?.images || []) {
      const el = document.createElement("img");
      el.src = viewUrl(img);
      el.alt = img.filename;
      el.className = "result";
      $("#gen-output").append(el);
    }
  }
  if (type === "execution_success") status.textContent = `done: ${id}`;
  if (type === "execution_interrupted") status.textContent = `interrupted: ${id}`;
  if (type === "execution_error") report(`failed in node ${data.node_id} (${data.node_type}): ${data.exception_message}`);
  if (["execution_success", "execution_error", "execution_interrupted"].includes(type)) state.progress.delete(id);
}

function onPreview(blob) {
  const img = document.getElementById("gen-preview");
  if (!img) return;
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
}

// ---- start ------------------------------------------------------------------------------------------------------
function wire() {
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => show(b.dataset.view));
  $("#gen-form").addEventListener("submit", onGenerate);
  const drop = $("#gen-drop");
  drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    onWorkflowText(file ? await file.text() : e.dataTransfer.getData("text"));
  });
  drop.addEventListener("paste", (e) => onWorkflowText(e.clipboardData.getData("text")));
  $("#queue-running").addEventListener("click", (e) => {
    const id = e.target.closest("button.interrupt")?.dataset.id;
    if (id) call("/interrupt", { method: "POST", body: { prompt_id: id } }).then(refreshQueue).catch(report);
  });
  $("#queue-pending").addEventListener("click", (e) => {
    const id = e.target.closest("button.cancel")?.dataset.id;
    if (id) call("/queue", { method: "POST", body: { delete: [id] } }).then(refreshQueue).catch(report);
  });
  $("#queue-clear").addEventListener("click", () => call("/queue", { method: "POST", body: { clear: true } }).then(refreshQueue).catch(report));
  $("#history-clear").addEventListener("click", () => call("/history", { method: "POST", body: { clear: true } }).then(() => refreshHistory(true)).catch(report));
  $("#history-list").addEventListener("click", (e) => {
    const id = e.target.closest(".entry")?.dataset.id;
    if (id) showDetail(id);
  });
  $("#workers").addEventListener("click", (e) => {
    const b = e.target.closest("button.drain");
    if (!b) return;
    call("/netdist/v1/drain", { method: "POST", body: { url: b.dataset.url, drain: b.dataset.drain === "true" } })
      .then(refreshCluster).catch(report);
  });
  $("#add-worker").addEventListener("submit", (e) => {
    e.preventDefault();
    call("/netdist/v1/join", { method: "POST", body: { url: $("#add-worker-url").value } })
      .then(() => ($("#add-worker-result").textContent = "added; probing it…", refreshCluster()))
      .catch((err) => ($("#add-worker-result").textContent = err.message));
  });
}

async function start() {
  $("#login").hidden = true;
  $("#main").hidden = false;
  openSocket({
    open: () => ($("#conn").textContent = "live", $("#conn").className = "pill ok"),
    close: () => ($("#conn").textContent = "disconnected", $("#conn").className = "pill bad"),
    message: onMessage,
    preview: onPreview,
  });
  await loadGenerateOptions().catch(report);
  show(location.hash.slice(1) || "cluster");
  setInterval(() => { if (state.view === "cluster") refreshCluster().catch(report); }, 1000);
}

async function login(ev) {
  ev.preventDefault();
  setToken($("#login-token").value);
  try {
    await call("/system_stats");
    await start();
  } catch (e) {
    setToken("");
    $("#login-error").textContent = e instanceof ApiError && e.status === 401 ? "wrong token" : e.message;
  }
}

async function main() {
  wire();
  const config = await dashboardConfig();
  state.cluster = config.cluster === true;
  window.addEventListener("hashchange", () => { if (!$("#main").hidden) show(location.hash.slice(1)); });
  if (!config.auth_required) return start();
  if (hasToken()) {
    try {
      await call("/system_stats");  // the token this tab kept still works
      return start();
    } catch {
      setToken("");
    }
  }
  $("#login").hidden = false;
  $("#login-form").addEventListener("submit", login);
}

main();
