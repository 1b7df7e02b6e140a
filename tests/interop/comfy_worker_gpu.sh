#!/usr/bin/env bash
# A real, stock ComfyUI as a netdist worker, on the GPU machine (docs/interop.md, "Stock ComfyUI workers").
#
#   bash tests/interop/comfy_worker_gpu.sh            (from the checkout root, after `make release`)
#
# 1. builds (or reuses) a random-weight SD1.5 checkpoint with .peer/harness/make_checkpoint.py;
# 2. starts real ComfyUI from .peer/ComfyUI through .peer/pylib/peer_launch.py on GPU 0, port 8188;
# 3. starts `build/release/netdist serve --enable-distributed --no-local --workers comfy+http://127.0.0.1:8188`
#    on another port (the coordinator itself renders nothing: --device cpu);
# 4. posts .peer/harness/workflows/sd15_txt2img_512_b1.json to the coordinator, following its WebSocket,
#    and checks: the prompt succeeds, a PNG comes back through the coordinator's /view, progress events
#    for the coordinator's prompt id were relayed, the ComfyUI worker ran it (GET /netdist/v1/cluster), and
#    the coordinator's output folder holds the image; the coordinator has no checkpoint file (it lists the
#    worker's); then a batch-1 img2img prompt whose image only the coordinator has: it is uploaded to ComfyUI
#    (POST /upload/image) and the prompt runs there;
# 5. prints a summary and exits 0 only when every check passed. Everything it started is killed on exit
#    (also on Ctrl-C or a failed step).
#
# Environment (all optional):
#   PEER=.peer  WORK=/tmp/netdist-comfy-worker  COMFY_PORT=8188  COORD_PORT=8190  CUDA_DEVICE=0
#   CKPT=<existing SD1.5 checkpoint>  NETDIST=build/release/netdist  PYTHON=python3
#   STARTUP_TIMEOUT=600 (ComfyUI start, seconds)  PROMPT_TIMEOUT=600 (the prompt, seconds)
set -uo pipefail

PEER=${PEER:-.peer}
WORK=${WORK:-/tmp/netdist-comfy-worker}
COMFY_PORT=${COMFY_PORT:-8188}
COORD_PORT=${COORD_PORT:-8190}
CUDA_DEVICE=${CUDA_DEVICE:-0}
NETDIST=${NETDIST:-build/release/netdist}
PYTHON=${PYTHON:-python3}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-600}
PROMPT_TIMEOUT=${PROMPT_TIMEOUT:-600}
WORKFLOW=$PEER/harness/workflows/sd15_txt2img_512_b1.json

log() { echo "[comfy-worker-gpu $(date +%H:%M:%S)] $*"; }
die() { log "FAIL: $*"; exit 1; }

PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do  # each started with setsid: its process group is its pid
    kill -TERM -- "-$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
  [ ${#PIDS[@]} -gt 0 ] && log "stopped ${#PIDS[@]} process group(s); logs under $WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- prerequisites -------------------------------------------------------------------------------------
[ -x "$NETDIST" ] || die "$NETDIST not found: run 'make release' first (or set NETDIST)"
[ -f "$PEER/ComfyUI/main.py" ] || die "$PEER/ComfyUI/main.py not found: run shared/peer/prepare.sh (see its README)"
[ -f "$PEER/pylib/peer_launch.py" ] || die "$PEER/pylib/peer_launch.py not found (prepare.sh makes it)"
[ -f "$WORKFLOW" ] || die "$WORKFLOW not found"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
command -v curl >/dev/null || die "curl not found"
port_free "$COMFY_PORT" || die "port $COMFY_PORT is in use (set COMFY_PORT)"
port_free "$COORD_PORT" || die "port $COORD_PORT is in use (set COORD_PORT)"
mkdir -p "$WORK"/{ck,comfy/output,comfy/input,comfy/user,coord/out,coord/in,coord/temp,coord/models,client}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

# ---- checkpoint ----------------------------------------------------------------------------------------
if [ -z "${CKPT:-}" ]; then
  CKPT=$WORK/ck/peer_sd15.safetensors
  if [ ! -f "$CKPT" ]; then
    log "building an SD1.5 checkpoint: $CKPT"
    CUDA_VISIBLE_DEVICES=$CUDA_DEVICE timeout 900 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$CKPT" --seed 0 --dtype fp16 >"$WORK/ck/make_checkpoint.log" 2>&1 ||
      { tail -30 "$WORK/ck/make_checkpoint.log"; die "make_checkpoint.py failed (log: $WORK/ck/make_checkpoint.log)"; }
  fi
fi
[ -f "$CKPT" ] || die "checkpoint $CKPT not found"
CKPT=$(readlink -f "$CKPT")
CKPT_NAME=$(basename "$CKPT")
# The coordinator has no checkpoint: it lists (and accepts) the ComfyUI worker's (docs/interop.md).
# COORD_HAS_CKPT=1 links it into the coordinator's models folder instead.
rm -f "$WORK/coord/models/$CKPT_NAME"
[ "${COORD_HAS_CKPT:-0}" = 1 ] && ln -sf "$CKPT" "$WORK/coord/models/$CKPT_NAME"

# ---- ComfyUI on GPU 0 ----------------------------------------------------------------------------------
printf 'peer:\n  checkpoints: |\n    %s\n' "$(dirname "$CKPT")" >"$WORK/comfy/extra_model_paths.yaml"
log "starting ComfyUI on GPU $CUDA_DEVICE, port $COMFY_PORT (log: $WORK/comfy/server.log)"
PYTHONUNBUFFERED=1 PYTHONPATH="$(readlink -f "$PEER/pylib")${PYTHONPATH:+:$PYTHONPATH}" \
  setsid "$PYTHON" "$PEER/pylib/peer_launch.py" "$PEER/ComfyUI/main.py" --listen 127.0.0.1 --port "$COMFY_PORT" \
  --cuda-device "$CUDA_DEVICE" --extra-model-paths-config "$WORK/comfy/extra_model_paths.yaml" \
  --output-directory "$WORK/comfy/output" --input-directory "$WORK/comfy/input" --temp-directory "$WORK/comfy" \
  --user-directory "$WORK/comfy/user" >"$WORK/comfy/server.log" 2>&1 &
COMFY_PID=$!
PIDS+=("$COMFY_PID")
t0=$(date +%s)
until curl -sf -m 10 "http://127.0.0.1:$COMFY_PORT/object_info/KSampler" >/dev/null; do
  kill -0 "$COMFY_PID" 2>/dev/null || { tail -40 "$WORK/comfy/server.log"; die "ComfyUI exited during startup"; }
  [ $(($(date +%s) - t0)) -lt "$STARTUP_TIMEOUT" ] ||
    { tail -40 "$WORK/comfy/server.log"; die "ComfyUI did not answer /object_info within ${STARTUP_TIMEOUT}s"; }
  sleep 1
done
COMFY_STARTUP=$(($(date +%s) - t0))
log "ComfyUI ready after ${COMFY_STARTUP}s"

# ---- the coordinator -----------------------------------------------------------------------------------
log "starting the coordinator on port $COORD_PORT (log: $WORK/coord/serve.log)"
setsid "$NETDIST" serve --port "$COORD_PORT" --device cpu --enable-distributed --no-local \
  --workers "comfy+http://127.0.0.1:$COMFY_PORT" --models-dir "$WORK/coord/models" \
  --output-directory "$WORK/coord/out" --input-directory "$WORK/coord/in" --temp-directory "$WORK/coord/temp" \
  >"$WORK/coord/serve.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
COORD=http://127.0.0.1:$COORD_PORT
t0=$(date +%s)
until curl -sf -m 5 "$COORD/netdist/v1/cluster" 2>/dev/null | grep -Eq '"alive": ?true'; do
  kill -0 "$COORD_PID" 2>/dev/null || { tail -40 "$WORK/coord/serve.log"; die "the coordinator exited"; }
  [ $(($(date +%s) - t0)) -lt 120 ] ||
    { tail -40 "$WORK/coord/serve.log"; echo "GET $COORD/netdist/v1/cluster: $(curl -s -m 5 "$COORD/netdist/v1/cluster")"
      curl -s -m 30 -o "$WORK/comfy/object_info.json" "http://127.0.0.1:$COMFY_PORT/object_info"
      curl -s -m 30 -o "$WORK/comfy/system_stats.json" "http://127.0.0.1:$COMFY_PORT/system_stats"
      die "the coordinator never saw the ComfyUI worker alive (ComfyUI's answers saved in $WORK/comfy/)"; }
  sleep 0.5
done
log "the coordinator sees the ComfyUI worker: $(curl -s "$COORD/netdist/v1/cluster")"

# ---- one prompt through the coordinator ----------------------------------------------------------------
log "posting $(basename "$WORKFLOW") to the coordinator"
PEER=$PEER timeout $((PROMPT_TIMEOUT + 60)) "$PYTHON" - "$COORD" "$WORKFLOW" "$CKPT_NAME" "$WORK/client" "$PROMPT_TIMEOUT" \
  "$WORK/coord/out" >"$WORK/client/summary.json" 2>"$WORK/client/client.log" <<'EOF'
import json, os, sys, time, urllib.request, urllib.parse, uuid
sys.path.insert(0, os.path.join(os.environ.get("PEER", ".peer"), "harness"))
import peerlib

coord, workflow, ckpt_name, out_dir, timeout, coord_out = sys.argv[1:7]
prompt = peerlib.load_workflow(workflow)
peerlib.set_ckpt(prompt, ckpt_name)
summary = {"checks": {}}
try:
    import aiohttp  # noqa: F401  (the WebSocket path; without it no progress can be observed)
    summary["websocket_client"] = True
except ImportError:
    summary["websocket_client"] = False
t = time.perf_counter()
try:
    r = peerlib.run_prompt(coord, prompt, timeout=float(timeout))
except Exception as e:  # noqa: BLE001
    summary["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(summary, indent=1))
    sys.exit(1)
summary["wall_s"] = round(time.perf_counter() - t, 3)
summary["prompt_id"] = r["prompt_id"]
summary["status"] = r["status"].get("status_str")
progress = [e for e in r["events"] if e["type"] == "progress"]
summary["events"] = {k: sum(1 for e in r["events"] if e["type"] == k)
                     for k in ("execution_start", "execution_cached", "executing", "progress", "executed")}
summary["last_progress"] = progress[-1] if progress else None
summary["sampler"] = r["sampler"]
files = peerlib.download_outputs(coord, r["outputs"], os.path.join(out_dir, "images"), "")
summary["images"] = []
for name in files:
    path = os.path.join(out_dir, "images", name)
    with open(path, "rb") as f:
        head = f.read(8)
    summary["images"].append({"file": name, "bytes": os.path.getsize(path), "png": head == b"\x89PNG\r\n\x1a\n",
                              "in_coordinator_output": os.path.isfile(os.path.join(coord_out, name)),
                              "pixels": peerlib.image_summary(path)})
cluster = peerlib.http("GET", coord + "/netdist/v1/cluster")
summary["worker"] = cluster["workers"][0] if cluster.get("workers") else None
c = summary["checks"]
c["prompt succeeded"] = summary["status"] == "success"
c["one PNG came back through the coordinator's /view"] = len(summary["images"]) == 1 and summary["images"][0]["png"]
c["the PNG is in the coordinator's output folder"] = bool(summary["images"]) and summary["images"][0]["in_coordinator_output"]
c["progress events were relayed"] = (not summary["websocket_client"]) or (
    bool(progress) and progress[-1].get("value") == progress[-1].get("max"))
c["the ComfyUI worker ran it"] = bool(summary["worker"]) and summary["worker"].get("kind") == "comfy" and \
    summary["worker"].get("prompts_done") == 1

# img2img, batch 1: the first image, now only in the coordinator's input folder, through LoadImage →
# VAEEncode → KSampler(denoise 0.6). The coordinator uploads it to ComfyUI and the prompt runs there.
coord_in = os.path.join(os.path.dirname(coord_out), "in")
if summary["images"]:
    import shutil
    shutil.copy(os.path.join(out_dir, "images", summary["images"][0]["file"]), os.path.join(coord_in, "start.png"))
img2img = json.loads(json.dumps(prompt))
img2img["10"] = {"class_type": "LoadImage", "inputs": {"image": "start.png"}}
img2img["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
img2img["3"]["inputs"]["latent_image"] = ["11", 0]
img2img["3"]["inputs"]["denoise"] = 0.6
img2img["3"]["inputs"]["seed"] = 43
img2img["9"]["inputs"]["filename_prefix"] = "img2img"
del img2img["5"]
t = time.perf_counter()
try:
    r2 = peerlib.run_prompt(coord, img2img, timeout=float(timeout))
    summary["img2img"] = {"wall_s": round(time.perf_counter() - t, 3), "status": r2["status"].get("status_str"),
                          "sampler": r2["sampler"]}
    files2 = peerlib.download_outputs(coord, r2["outputs"], os.path.join(out_dir, "images"), "")
    summary["img2img"]["images"] = [{"file": n, "pixels": peerlib.image_summary(os.path.join(out_dir, "images", n))}
                                    for n in files2]
except Exception as e:  # noqa: BLE001
    summary["img2img"] = {"error": f"{type(e).__name__}: {e}"}
    files2 = []
cluster = peerlib.http("GET", coord + "/netdist/v1/cluster")
worker = cluster["workers"][0] if cluster.get("workers") else {}
c["img2img (input only on the coordinator) succeeded with one PNG"] = \
    summary["img2img"].get("status") == "success" and len(files2) == 1
c["the ComfyUI worker ran the img2img prompt"] = worker.get("prompts_done") == 2
comfy_in = os.path.join(os.path.dirname(os.path.dirname(coord_out)), "comfy", "input")
summary["comfy_uploads"] = sorted(n for n in os.listdir(comfy_in) if n.startswith("netdist-"))
c["the image was uploaded to ComfyUI under a netdist- name"] = len(summary["comfy_uploads"]) == 1
print(json.dumps(summary, indent=1))
sys.exit(0 if all(c.values()) else 1)
EOF
CLIENT_RC=$?

# ---- summary -------------------------------------------------------------------------------------------
echo
echo "=== stock ComfyUI as a netdist worker: summary ==="
echo "ComfyUI:     $PEER/ComfyUI on GPU $CUDA_DEVICE, port $COMFY_PORT, ready after ${COMFY_STARTUP}s"
echo "             $(curl -s -m 5 "http://127.0.0.1:$COMFY_PORT/system_stats" | head -c 400)"
echo "coordinator: $COORD (--no-local --workers comfy+http://127.0.0.1:$COMFY_PORT)"
echo "checkpoint:  $CKPT"
if [ -s "$WORK/client/summary.json" ]; then
  PEER=$PEER "$PYTHON" - "$WORK/client/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
if "error" in s:
    print("prompt:      ERROR", s["error"])
else:
    print(f"prompt:      {s['prompt_id']} {s['status']} in {s['wall_s']} s (client wall time, first prompt: model load included)")
    print(f"events:      {s['events']}  last progress {s.get('last_progress')}")
    print(f"sampler:     {s.get('sampler')}")
    for im in s.get("images", []):
        print(f"image:       {im['file']} {im['bytes']} bytes png={im['png']} pixels={im['pixels']}")
    print(f"worker:      {s.get('worker')}")
    print(f"img2img:     {s.get('img2img')}")
    if not s.get("websocket_client"):
        print("NOTE: aiohttp is missing, so progress could not be observed (the check was skipped)")
for name, ok in s.get("checks", {}).items():
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
EOF
else
  echo "no client summary; client log:"
  tail -30 "$WORK/client/client.log"
fi
if [ "$CLIENT_RC" -eq 0 ]; then
  echo "RESULT: PASS"
else
  echo "RESULT: FAIL (client rc $CLIENT_RC; logs: $WORK/comfy/server.log, $WORK/coord/serve.log, $WORK/client/client.log)"
fi
exit "$CLIENT_RC"
