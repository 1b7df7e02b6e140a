#!/usr/bin/env bash
# The real ComfyUI_NetDist plugin inside real ComfyUI, using a netdist server as its remote (GPU machine).
#
#   tests/interop/plugin_remote_gpu.sh [WORK_DIR]          (from the checkout root or anywhere)
#
# Starts, each in its own process group (all stopped on exit, also on failure or Ctrl-C):
#   - ComfyUI from $PEER/ComfyUI (default .peer, made by ../shared/peer/prepare.sh) with the NetDist plugin in
#     custom_nodes, on GPU 0, port $COMFY_PORT (8188), launched as the peer harness does (peer_launch.py);
#   - netdist (`$NETDIST_BIN $ND_MODE`, default build/gpu/netdist or build/release/netdist, `serve`) on GPU 1
#     (GPU 0 when the machine has one), port $ND_PORT (8288).
# Builds the random-weight SD1.5 checkpoint with the harness's make_checkpoint.py unless $CKPT names one,
# then posts sd15_txt2img_512_b10_netdist.json to ComfyUI with RemoteQueueSimple's remote_url pointed at
# netdist, and checks: the prompt succeeds, SaveImage has 10 images (5 local + 5 fetched from netdist),
# netdist's /history has the plugin's job (client_id netdist-xxxxx, a job_id, a PreviewImage marked
# final_output) with 5 images, and every image is a 512×512 PNG. Prints a summary; exit 0 = pass.
# Environment: PEER, NETDIST_BIN, ND_MODE (serve|worker), COMFY_PORT, ND_PORT, CKPT, WORKFLOW, PYTHON,
# READY_TIMEOUT (s, default 600), RUN_TIMEOUT (s, default 900), COMFY_GPU, ND_GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${1:-/tmp/nd-plugin-remote}
PEER=${PEER:-.peer}
PYTHON=${PYTHON:-python3}
ND_MODE=${ND_MODE:-serve}
COMFY_PORT=${COMFY_PORT:-8188}
ND_PORT=${ND_PORT:-8288}
READY_TIMEOUT=${READY_TIMEOUT:-600}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1

say() { echo "[plugin-remote $(date +%H:%M:%S)] $*"; }
fail() { echo "[plugin-remote] FAIL: $*" >&2; exit 1; }

# ---- preflight: everything present before anything starts
PEER=$(cd "$PEER" 2>/dev/null && pwd) || fail "no peer folder '${PEER}': run ../shared/peer/prepare.sh first (see its README)"
[ -f "$PEER/ComfyUI/main.py" ] || fail "$PEER/ComfyUI/main.py missing (prepare.sh did not extract ComfyUI)"
[ -f "$PEER/ComfyUI/custom_nodes/ComfyUI_NetDist/__init__.py" ] || fail "the NetDist plugin is missing from $PEER/ComfyUI/custom_nodes"
[ -f "$PEER/pylib/peer_launch.py" ] || fail "$PEER/pylib/peer_launch.py missing (prepare.sh)"
if [ -z "${NETDIST_BIN:-}" ]; then
  for b in build/gpu/netdist build/release/netdist; do [ -x "$b" ] && NETDIST_BIN=$ROOT/$b && break; done
fi
[ -n "${NETDIST_BIN:-}" ] && [ -x "$NETDIST_BIN" ] || fail "no netdist binary: build it with scripts/gpu-build (or set NETDIST_BIN)"
WORKFLOW=${WORKFLOW:-}
if [ -z "$WORKFLOW" ]; then
  for w in "$PEER/harness/workflows/sd15_txt2img_512_b10_netdist.json" "$ROOT/shared/peer/workflows/sd15_txt2img_512_b10_netdist.json" \
           "$ROOT/../shared/peer/workflows/sd15_txt2img_512_b10_netdist.json"; do
    [ -f "$w" ] && WORKFLOW=$w && break
  done
fi
[ -n "$WORKFLOW" ] && [ -f "$WORKFLOW" ] || fail "sd15_txt2img_512_b10_netdist.json not found (set WORKFLOW)"
VOCAB=$ROOT/tests/data/clip-vit-l-14-tokenizer
[ -f "$VOCAB/vocab.json" ] || fail "$VOCAB/vocab.json missing (netdist needs the CLIP vocabulary for a real checkpoint)"
"$PYTHON" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null || fail "$PYTHON has no CUDA torch"
for port in "$COMFY_PORT" "$ND_PORT"; do
  if "$PYTHON" - "$port" <<'EOF'
import socket, sys
s = socket.socket()
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
  then fail "port $port is already in use (set COMFY_PORT / ND_PORT)"; fi
done

GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "${GPUS:-0}" -ge 1 ] || fail "nvidia-smi lists no GPU"
COMFY_GPU=${COMFY_GPU:-0}
ND_GPU=${ND_GPU:-$([ "$GPUS" -ge 2 ] && echo 1 || echo 0)}
say "$GPUS GPU(s): ComfyUI + NetDist on GPU $COMFY_GPU, netdist $ND_MODE on GPU $ND_GPU"

mkdir -p "$WORK"/{ck,comfy/output,comfy/input,comfy/user,comfy/temp,nd/out,nd/temp,nd/in} || fail "cannot create $WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -INT -- "-$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# ---- checkpoint
CKPT=${CKPT:-$WORK/ck/peer_sd15.safetensors}
if [ ! -f "$CKPT" ]; then
  say "building the SD1.5 checkpoint $CKPT"
  timeout 900 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" --family sd15 --out "$CKPT" \
     --seed 0 --dtype fp16 > "$WORK/make_checkpoint.log" 2>&1 \
    || { tail -30 "$WORK/make_checkpoint.log"; fail "make_checkpoint.py failed (log: $WORK/make_checkpoint.log)"; }
fi
CKDIR=$(cd "$(dirname "$CKPT")" && pwd)

# ---- servers
say "starting netdist: $NETDIST_BIN $ND_MODE --port $ND_PORT --cuda-device $ND_GPU"
setsid "$NETDIST_BIN" "$ND_MODE" --listen 127.0.0.1 --port "$ND_PORT" --cuda-device "$ND_GPU" --models-dir "$CKDIR" \
  --clip-vocab "$VOCAB" --output-directory "$WORK/nd/out" --temp-directory "$WORK/nd/temp" \
  --input-directory "$WORK/nd/in" > "$WORK/netdist.log" 2>&1 &
PIDS+=($!)
printf 'peer:\n  checkpoints: |\n    %s\n' "$CKDIR" > "$WORK/comfy/extra_model_paths.yaml"
say "starting ComfyUI with NetDist on port $COMFY_PORT"
(cd "$PEER/ComfyUI" && PYTHONPATH="$PEER/pylib${PYTHONPATH:+:$PYTHONPATH}" exec setsid "$PYTHON" "$PEER/pylib/peer_launch.py" \
   "$PEER/ComfyUI/main.py" --listen 127.0.0.1 --port "$COMFY_PORT" --cuda-device "$COMFY_GPU" \
   --extra-model-paths-config "$WORK/comfy/extra_model_paths.yaml" --output-directory "$WORK/comfy/output" \
   --input-directory "$WORK/comfy/input" --temp-directory "$WORK/comfy/temp" --user-directory "$WORK/comfy/user") \
  > "$WORK/comfy.log" 2>&1 &
PIDS+=($!)

# ---- the run and its checks (stdlib Python: urllib)
"$PYTHON" - "$COMFY_PORT" "$ND_PORT" "$WORKFLOW" "$(basename "$CKPT")" "$READY_TIMEOUT" "$RUN_TIMEOUT" "$WORK" "${PIDS[@]}" <<'EOF'
import json, os, re, struct, sys, time, urllib.error, urllib.parse, urllib.request, uuid

comfy_port, nd_port, workflow_path, ckpt_name, ready_timeout, run_timeout, work = sys.argv[1:8]
pids = [int(p) for p in sys.argv[8:]]
comfy, nd = f"http://127.0.0.1:{comfy_port}", f"http://127.0.0.1:{nd_port}"
ready_timeout, run_timeout = float(ready_timeout), float(run_timeout)

def say(msg): print(f"[plugin-remote {time.strftime('%H:%M:%S')}] {msg}", flush=True)

def tail(name, n=40):
    try:
        with open(os.path.join(work, name), "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()[-n:])
    except OSError:
        return "(no log)"

def fail(msg, logs=("comfy.log", "netdist.log")):
    for name in logs:
        print(f"----- last lines of {work}/{name}\n{tail(name)}", file=sys.stderr)
    print(f"[plugin-remote] FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def http(method, url, body=None, timeout=30, raw=False):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        payload = r.read()
    return payload if raw else json.loads(payload or b"null")

def alive(i):
    try:
        os.kill(pids[i], 0)
        return True
    except OSError:
        return False

def wait_ready(url, name, log, index, need):
    start = time.time()
    while time.time() - start < ready_timeout:
        if not alive(index):
            fail(f"{name} exited during start-up", (log,))
        try:
            info = http("GET", url + "/object_info", timeout=10)
            missing = [c for c in need if c not in info]
            if not missing:
                say(f"{name} ready after {time.time() - start:.1f} s ({len(info)} node classes)")
                return info
            if "KSampler" in info:
                fail(f"{name} is up but lacks {missing}" + (" (NetDist failed to import: see IMPORT FAILED in the log)" if name == "ComfyUI" else ""), (log,))
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.5)
    fail(f"{name} did not answer /object_info within {ready_timeout:.0f} s", (log,))

wait_ready(nd, "netdist", "netdist.log", 0, ["KSampler", "RemoteQueueSimple", "PreviewImage"])
wait_ready(comfy, "ComfyUI", "comfy.log", 1, ["KSampler", "RemoteQueueSimple", "FetchRemote", "ImageBatch"])
stats = http("GET", nd + "/system_stats")
say(f"netdist system_stats: os={stats['system']['os']} devices={[d.get('name') for d in stats.get('devices', [])]}")

with open(workflow_path) as f:
    prompt = json.load(f)
n_remote_nodes = 0
for node in prompt.values():
    if node["class_type"] == "CheckpointLoaderSimple":
        node["inputs"]["ckpt_name"] = ckpt_name
    if node["class_type"].startswith("RemoteQueue"):
        node["inputs"]["remote_url"] = nd + "/"
        n_remote_nodes += 1
if n_remote_nodes != 1:
    fail(f"{workflow_path} has {n_remote_nodes} RemoteQueue nodes, expected 1")
save_id = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
rq = next(v for v in prompt.values() if v["class_type"] == "RemoteQueueSimple")["inputs"]
expect_total = rq["batch_local"] + rq["batch_remote"]

t0 = time.time()
try:
    r = http("POST", comfy + "/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
except urllib.error.HTTPError as e:
    fail(f"ComfyUI rejected the workflow: HTTP {e.code}: {e.read()[:2000]!r}")
pid = r["prompt_id"]
say(f"posted to ComfyUI: prompt {pid}; waiting up to {run_timeout:.0f} s")
entry = None
while time.time() - t0 < run_timeout:
    if not alive(0): fail("netdist exited while the prompt ran")
    if not alive(1): fail("ComfyUI exited while the prompt ran")
    h = http("GET", comfy + f"/history/{pid}")
    if pid in h:
        entry = h[pid]
        break
    time.sleep(0.25)
wall = time.time() - t0
if entry is None:
    q = http("GET", nd + "/queue")
    fail(f"the prompt did not finish in {run_timeout:.0f} s (netdist queue: {len(q['queue_running'])} running, {len(q['queue_pending'])} pending)")
status = entry.get("status", {})
if status.get("status_str") != "success":
    errs = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
    fail(f"ComfyUI prompt failed: {json.dumps(errs)[:3000]}")
images = entry["outputs"].get(save_id, {}).get("images", [])

def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n": return None
    return struct.unpack(">II", data[16:24])

def check_images(url, refs, who):
    sizes = set()
    for ref in refs:
        q = urllib.parse.urlencode({"filename": ref["filename"], "subfolder": ref.get("subfolder", ""), "type": ref.get("type", "output")})
        data = http("GET", f"{url}/view?{q}", raw=True, timeout=60)
        size = png_size(data)
        if size is None: fail(f"{who} image {ref['filename']} is not a PNG")
        sizes.add(size)
    return sizes

sizes = check_images(comfy, images, "ComfyUI")
if len(images) != expect_total:
    fail(f"SaveImage has {len(images)} images, expected {expect_total}")

nd_hist = http("GET", nd + "/history")
jobs = [(k, v) for k, v in nd_hist.items() if str(v["prompt"][3].get("job_id", "")).startswith("netdist-")]
if len(jobs) != 1:
    fail(f"netdist's /history has {len(jobs)} NetDist jobs, expected 1", ("netdist.log",))
jid, job = jobs[0]
extra = job["prompt"][3]
if not re.fullmatch(r"netdist-[a-z]{5}", str(extra.get("client_id"))):
    fail(f"the netdist job's client_id is {extra.get('client_id')!r}")
finals = [k for k, v in job["prompt"][2].items() if v.get("final_output")]
if job.get("status", {}).get("status_str") != "success" or not finals:
    fail(f"netdist job {jid}: status {job.get('status', {}).get('status_str')}, final_output nodes {finals}")
nd_images = job["outputs"].get(finals[0], {}).get("images", [])
nd_sizes = check_images(nd, nd_images, "netdist")
if len(nd_images) != rq["batch_remote"]:
    fail(f"netdist rendered {len(nd_images)} images, expected batch_remote = {rq['batch_remote']}")
msgs = {m[0]: m[1] for m in job["status"].get("messages", []) if len(m) == 2}
nd_exec = (msgs["execution_success"]["timestamp"] - msgs["execution_start"]["timestamp"]) / 1000.0 if "execution_success" in msgs and "execution_start" in msgs else float("nan")
rnodes = job["prompt"][2]
remote_seed_node = next((v for v in rnodes.values() if v["class_type"] == "RemoteQueueSimple"), {})
print()
print("plugin_remote_gpu summary")
print(f"  ComfyUI {comfy} (GPU) + NetDist  ->  netdist {nd}")
print(f"  ComfyUI prompt {pid}: success, {len(images)} images {sorted(sizes)}, wall {wall:.2f} s (first run: includes model loads)")
print(f"  netdist job {extra.get('job_id')} (prompt {jid}): {len(nd_images)} images {sorted(nd_sizes)}, executed in {nd_exec:.2f} s,")
print(f"    RemoteQueueSimple enabled={remote_seed_node.get('inputs', {}).get('enabled')} seed={remote_seed_node.get('inputs', {}).get('seed')} (remote renders seed + batch_local)")
print("PASS")
EOF
rc=$?
[ $rc -eq 0 ] || exit $rc
