#!/usr/bin/env bash
# Every check of netdist against ComfyUI that needs ComfyUI, torch or a GPU, in one command, on any GPU
# machine (docs/parity.md). From the checkout root, with the peer folder laid out by
# ../shared/peer/prepare.sh (.peer/: ComfyUI at the pinned commit, pylib, harness):
#
#   bash tests/parity/run_gpu_parity.sh
#
# Steps (PARITY_STEPS picks some, in this order; default all):
#   build      scripts/gpu-build: netdist against python3's CUDA libtorch, only the programs used here
#   goldens    remakes the committed goldens with the pinned ComfyUI (sampling, flow sampling, tokenizer, key lists) into a
#              copy of tests/data and runs the golden tests against it: the committed files are still
#              what ComfyUI makes, and netdist still matches them
#   unet_vae   tools/parity/make_unet_vae_reference.py (ComfyUI's own tiny UNets/VAE, CPU fp32), then
#              netdist_parity_tests (ParityComfyUI.*) with NETDIST_PARITY_DATA set: max |diff| / max |ref|
#   cudagraphs netdist_engine_tests CudaGraphs.* on the GPU: graph replay is bit-identical to eager
#   upscale    tools/parity/upscale_reference.py (spandrel's RRDBNet/Real-ESRGAN/SRVGGNetCompact of real sizes,
#              random weights, through ComfyUI's UpscaleModelLoader + ImageUpscaleWithModel on a 4-tile
#              image), then netdist_parity_tests (ParityUpscale.*) with NETDIST_UPSCALE_PARITY_DATA set
#   t5         tools/parity/t5_reference.py (ComfyUI's SD3/Flux T5XXLTokenizer on ~650 prompts; a reduced-size
#              random comfy.text_encoders.t5.T5, fp32 and fp16 weights, with and without the attention mask),
#              then netdist_parity_tests (ParityT5.*) with NETDIST_T5_PARITY_DATA set: ids and weights identical,
#              encoder max |diff| / max |ref| <= 1e-4 (fp32) and 1e-3 (fp16 weights)
#   dit        tools/parity/dit_reference.py (the pinned ComfyUI's MMDiT of SD3 Medium / SD3.5 Medium / SD3.5
#              Large and Flux dev / schnell at real widths with 3 joint blocks, Flux 2 + 4 blocks; random
#              weights; fp16 MMDiT, bf16 Flux; one forward at 1024² on the GPU), then netdist_parity_tests
#              (ParityDiT.*) with NETDIST_DIT_PARITY_DATA set: max |diff| / max |ref| <= 2e-2
#   ops        tools/parity/ops_reference.py (the pinned ComfyUI's mask, latent, image and conditioning operation
#              classes on fixed small random inputs, CPU torch), then netdist_parity_tests (ParityOps.*) with
#              NETDIST_OPS_PARITY_DATA set: every output within max |diff| 1e-5, shapes and batch_index identical,
#              and each class's /object_info entry equal to ComfyUI's
#   sd15       real-size random SD1.5 checkpoint, ComfyUI reference (fp16 and fp32), tools/parity/parity_check:
#              text encoder, one UNet call, VAE decode and whole 20-step images for four samplers
#   sdxl       the same for SDXL at 1024² (fp16)
#   tiles      TiledDiffusion on the sd15 checkpoint: the real custom node (PEER/custom_nodes/ComfyUI-TiledDiffusion,
#              copied into ComfyUI's custom_nodes/) in tools/parity/tiled_reference.py against parity_check --tiled,
#              both methods, 768×512 in 384-px tiles overlapping 64 px (6 tiles, batches of 3), fp16 and fp32
#   usdu       UltimateSDUpscaleNoUpscale on a 1024² picture with the sd15 checkpoint: the real custom node
#              (.peer/custom_nodes/ComfyUI_UltimateSDUpscale with its repositories/ultimate_sd_upscale/scripts/
#              ultimate-upscale.py) in ComfyUI against `netdist run` of the same workflow, three mode pairs
#              (tools/parity/usdu_reference.py): mean and largest 8-bit difference
#   vae_encode_tiled  VAEEncodeTiled (tile 512/overlap 64 and 256/32) → VAEDecode on a 1024×768 picture with the
#              sd15 checkpoint's VAE: the pinned ComfyUI's node classes against `netdist run` of the same workflow
#              (tools/parity/vae_encode_tiled_reference.py): mean and largest 8-bit difference
#   flow       SamplerCustomAdvanced workflows on the sd15 checkpoint, with ModelSamplingSD3 (shift 3, flow
#              matching) and without, CFGGuider / BasicGuider, euler / euler_ancestral / dpmpp_2m with simple /
#              sgm_uniform / karras, 512², 20 steps: the pinned ComfyUI's node classes in-process against
#              `netdist run` of the same API workflow (tools/parity/flow_reference.py): mean and largest 8-bit
#              difference
#   inpaint    inpainting on the sd15 checkpoint and an inpainting variant of it (first UNet convolution widened to
#              9 channels, random): SetLatentNoiseMask with KSampler / KSamplerAdvanced (two passes),
#              VAEEncodeForInpaint, InpaintModelConditioning, a 9-channel UNet on an empty latent, 512², 20 steps:
#              the pinned ComfyUI's node classes in-process against `netdist run` of the same API workflow
#              (tools/parity/inpaint_reference.py): mean and largest 8-bit difference; and on the sdxl checkpoint
#              CLIPTextEncodeSDXL (text_g/text_l, sizes, crops, targets) and a two-pass KSamplerAdvanced hand-off, 1024²;
#              and a random SDXL refiner (ComfyUI's SDXLRefiner classes): base → refiner hand-off with
#              CLIPTextEncodeSDXLRefiner, the refiner alone with CLIPTextEncode
#   controlnet random-weight SD1.5 and SDXL ControlNets built by ComfyUI's comfy.cldm.cldm.ControlNet for the sd15 /
#              sdxl checkpoints ("control_model."-prefixed and bare ldm keys, fp16): ControlNetApplyAdvanced with a
#              start/end range (batch 1 and 2), two chained ControlNetApply, a hint of another size and aspect,
#              512² / 1024², 20 steps: the pinned ComfyUI's node classes in-process against `netdist run` of the
#              same API workflow (tools/parity/controlnet_reference.py): mean and largest 8-bit difference
#   patches    FreeU, FreeU_V2, RescaleCFG (cfg 7 and cfg 1) and chains of them before KSampler on the sd15 (512²)
#              and sdxl (1024²) checkpoints, 20 steps: the pinned ComfyUI's node classes in-process against
#              `netdist run` of the same API workflow (tools/parity/patches_reference.py): mean and largest 8-bit
#              difference
#   embeddings textual-inversion embeddings (random, real widths) in CLIPTextEncode on the sd15 and sdxl checkpoints:
#              found by name, weighted, in a subfolder, missing, SDXL clip_l/clip_g keys, 512² / 1024², 20 steps
#   condmask   ConditioningSetMask (default and mask bounds, a batch of 2), ConditioningSetTimestepRange,
#              ConditioningSetAreaPercentage combined with a plain entry, sd15 512², 20 steps; both steps:
#              the pinned ComfyUI's node classes in-process against `netdist run` (tools/parity/embedcond_reference.py)
# Then it prints one table, check by check: pass/fail, the largest difference and its bound, and runs
# netdist_test_report over the GoogleTest results (--gpu yes: a test that skipped for want of a GPU fails).
# Exits 0 only when every check of the steps it ran passed. Logs and data stay under WORK.
#
# Environment (all optional): PEER=.peer  BUILD=build/gpu  WORK=/tmp/netdist-parity  PYTHON=python3
#   CUDA_DEVICE=0  PARITY_STEPS="build goldens unet_vae cudagraphs upscale t5 dit ops sd15 sdxl tiles usdu vae_encode_tiled flow inpaint controlnet patches
#   embeddings condmask"  STEP_TIMEOUT=900 (seconds a step)
#   The device tool allows 10 minutes a command: run the steps in two commands if needed, e.g.
#   PARITY_STEPS="build goldens unet_vae cudagraphs sd15" then PARITY_STEPS=sdxl (the build stays in BUILD).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

PEER=${PEER:-.peer}
BUILD=${BUILD:-build/gpu}
WORK=${WORK:-/tmp/netdist-parity}
PYTHON=${PYTHON:-python3}
CUDA_DEVICE=${CUDA_DEVICE:-0}
PARITY_STEPS=${PARITY_STEPS:-build goldens unet_vae cudagraphs upscale t5 dit ops sd15 sdxl tiles usdu vae_encode_tiled flow inpaint controlnet patches embeddings condmask}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
RESULTS=$WORK/results
ROWS=$WORK/rows.tsv  # check <TAB> pass|FAIL <TAB> largest difference <TAB> bound

log() { echo "[gpu-parity $(date +%H:%M:%S)] $*"; }
die() { log "FAIL: $*"; exit 1; }
want() { case " $PARITY_STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$ROWS"; }
# ComfyUI's VAEEncode samples the posterior, netdist takes its mean; a random VAE's posterior is wide, so the steps
# that encode pictures first give the checkpoint a trained VAE's narrow one (tools/parity/narrow_vae_posterior.py,
# in place, idempotent; decoding is untouched).
narrow() { "$PYTHON" tools/parity/narrow_vae_posterior.py "$@" >>"$WORK/narrow_vae.log" 2>&1; }
# run_logged NAME CMD...: runs CMD with STEP_TIMEOUT, output to WORK/NAME.log; on failure prints its end.
run_logged() {
  local name=$1
  shift
  log "$name: $* (log: $WORK/$name.log)"
  if ! timeout "$STEP_TIMEOUT" "$@" >"$WORK/$name.log" 2>&1; then
    tail -30 "$WORK/$name.log"
    log "$name failed (log: $WORK/$name.log)"
    return 1
  fi
}
# gtest_rows STEP XML DIFF BOUND: one row per test case of a GoogleTest XML file (pass, FAIL, SKIP, NOT RUN); a
# passed test's row says DIFF and BOUND (these tests assert their bound and print no difference).
gtest_rows() {
  local step=$1 xml=$2 diff=$3 bound=$4
  if [ ! -s "$xml" ]; then
    row "$step: the test program wrote no results" FAIL "-" "-"
    return
  fi
  # <testcase name="N" ... result="completed|skipped" ... classname="S"> then an optional <failure
  sed -n 's/.*<testcase name="\([^"]*\)".* result="\([a-z]*\)".* classname="\([^"]*\)".*/\3.\1 \2/p;
          s/.*<failure .*/FAILURE/p' "$xml" |
    awk -v step="$step" -v diff="$diff" -v bound="$bound" '
      function flush() {
        if (name == "") return
        verdict = failed ? "FAIL" : (result == "completed" ? "pass" : (result == "skipped" ? "SKIP" : "NOT RUN"))
        printf "%s: %s\t%s\t%s\t%s\n", step, name, verdict, verdict == "pass" ? diff : "-", bound
      }
      /^FAILURE$/ { failed = 1; next }
      { flush(); name = $1; result = $2; failed = 0 }
      END { flush() }' >>"$ROWS"
}

mkdir -p "$WORK"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
: >"$ROWS"
export NCCL_NVLS_ENABLE=0 CUDA_VISIBLE_DEVICES=$CUDA_DEVICE
log "steps: $PARITY_STEPS; work: $WORK"

# ---- prerequisites -------------------------------------------------------------------------------------
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || die "no GPU: nvidia-smi lists none (this script runs on a GPU machine)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/[gpu-parity] card: /'
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)' ||
  die "$PYTHON has no CUDA torch that sees the GPU"
[ -f "$PEER/ComfyUI/main.py" ] || die "$PEER/ComfyUI/main.py not found: lay out $PEER with ../shared/peer/prepare.sh"
[ -f "$PEER/harness/make_checkpoint.py" ] || die "$PEER/harness/make_checkpoint.py not found (prepare.sh copies it)"
PEER=$(readlink -f "$PEER")
export PYTHONPATH="$PEER/pylib${PYTHONPATH:+:$PYTHONPATH}"

# ---- build ---------------------------------------------------------------------------------------------
if want build; then
  NETDIST_GPU_TESTS=0 NETDIST_GPU_TARGETS="netdist netdist_parity_tests netdist_engine_tests parity_check netdist_test_report" \
    run_logged build scripts/gpu-build "$BUILD" || die "build failed"
  grep '^gpu-build:' "$WORK/build.log"
fi
for p in netdist_parity_tests netdist_engine_tests parity_check netdist_test_report; do
  [ -x "$BUILD/$p" ] || die "$BUILD/$p not built (run with the build step)"
done

# ---- goldens: remade with the pinned ComfyUI, then the golden tests against them ------------------------
if want goldens; then
  data=$WORK/testdata
  rm -rf "$data" && cp -r tests/data "$data"
  ok=1
  run_logged golden_sampling "$PYTHON" tools/parity/sampling_golden.py --peer "$PEER" \
    --out "$data/sampling/golden_comfy.json" || ok=0
  log "golden_tokenizer: tools/parity/tokenizer_golden.py (log: $WORK/golden_tokenizer.err)"
  timeout "$STEP_TIMEOUT" "$PYTHON" tools/parity/tokenizer_golden.py --comfyui "$PEER/ComfyUI" \
    >"$data/tokenizer/golden_sd1.json" 2>"$WORK/golden_tokenizer.err" || { tail -20 "$WORK/golden_tokenizer.err"; ok=0; }
  run_logged golden_keys "$PYTHON" tools/parity/dump_keys.py --comfyui "$PEER/ComfyUI" --out "$data/keys" || ok=0
  run_logged golden_flow "$PYTHON" tools/parity/flow_golden.py --peer "$PEER" \
    --out "$data/sampling/golden_flow.json" || ok=0
  if [ $ok = 1 ]; then
    for f in sampling/golden_comfy.json sampling/golden_flow.json tokenizer/golden_sd1.json keys/sd15_unet.txt keys/sd2_unet.txt \
             keys/sdxl_unet.txt keys/sd_vae.txt; do
      if [ ! -e "tests/data/$f" ]; then
        log "golden $f: made for this run only (not committed)"
      elif cmp -s "tests/data/$f" "$data/$f"; then
        log "golden $f: the committed file is what ComfyUI makes today"
      else
        log "golden $f: differs from the committed file (tests below say whether netdist still matches ComfyUI)"
      fi
    done
    NETDIST_TEST_DATA=$data timeout "$STEP_TIMEOUT" "$BUILD/netdist_engine_tests" \
      --gtest_filter='SamplingGolden.*:Schedulers.MatchComfyUIGolden:TokenizerGolden.*:UNetConfig.*:Vae.SdKeysMatchComfyUI' \
      --gtest_output=xml:"$RESULTS/goldens.gtest.xml" >"$WORK/goldens_tests.log" 2>&1
    echo "goldens $? goldens.gtest.xml" >>"$RESULTS/steps.txt"
    gtest_rows "golden (remade with ComfyUI)" "$RESULTS/goldens.gtest.xml" "within the test's bound" "the test's"
    # Flow matching: golden_flow.json is made here each run (not committed); FlowGolden.* is a parity test.
    NETDIST_TEST_DATA=$data timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" --gtest_filter='FlowGolden.*' \
      --gtest_output=xml:"$RESULTS/flow_goldens.gtest.xml" >"$WORK/flow_goldens_tests.log" 2>&1
    echo "FlowGolden $? flow_goldens.gtest.xml" >>"$RESULTS/steps.txt"
    gtest_rows "golden flow (ComfyUI's code)" "$RESULTS/flow_goldens.gtest.xml" "within the test's bound" "the test's"
  else
    row "goldens: remaking them with ComfyUI" FAIL "-" "-"
  fi
fi

# ---- ParityComfyUI: tiny UNets and VAE against ComfyUI's own modules ------------------------------------
if want unet_vae; then
  rm -rf "$WORK/unet_vae"
  if run_logged unet_vae_reference "$PYTHON" tools/parity/make_unet_vae_reference.py "$PEER/ComfyUI" "$WORK/unet_vae"; then
    NETDIST_PARITY_DATA=$WORK/unet_vae timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" \
      --gtest_filter='ParityComfyUI.*' --gtest_output=xml:"$RESULTS/parity.gtest.xml" >"$WORK/unet_vae_tests.log" 2>&1
    echo "ParityComfyUI $? parity.gtest.xml" >>"$RESULTS/steps.txt"
    grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure' "$WORK/unet_vae_tests.log" | head -20
    # "[ parity ] <what>: max |diff| / max |ref| = <v> (bound 1e-4)"
    sed -n 's/^\[ parity \] \(.*\): max |diff| \/ max |ref| = \([^ ]*\) (bound \([^)]*\))$/\1 \2 \3/p' \
      "$WORK/unet_vae_tests.log" |
      awk '{ ok = ($2 + 0 <= $3 + 0); printf "ParityComfyUI: %s\t%s\t%s rel\t%s\n", $1, ok ? "pass" : "FAIL", $2, $3 }' >>"$ROWS"
    grep -q '^\[ parity \]' "$WORK/unet_vae_tests.log" || row "ParityComfyUI: no comparison ran" FAIL "-" "1e-4"
    # A test that failed before comparing anything (missing data, a load error) gets its own row.
    ROWS=$WORK/unet_vae_rows.tsv gtest_rows "ParityComfyUI" "$RESULTS/parity.gtest.xml" "-" "1e-4"
    awk -F'\t' '$2 != "pass"' "$WORK/unet_vae_rows.tsv" >>"$ROWS"
    rm -f "$WORK/unet_vae_rows.tsv"
  else
    row "ParityComfyUI: make_unet_vae_reference.py" FAIL "-" "-"
  fi
fi

# ---- CUDA graphs ---------------------------------------------------------------------------------------
if want cudagraphs; then
  timeout "$STEP_TIMEOUT" "$BUILD/netdist_engine_tests" --gtest_filter='CudaGraphs.*' \
    --gtest_output=xml:"$RESULTS/cudagraphs.gtest.xml" >"$WORK/cudagraphs.log" 2>&1
  echo "CudaGraphs $? cudagraphs.gtest.xml" >>"$RESULTS/steps.txt"
  grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure|netdist-skip' "$WORK/cudagraphs.log" | head -20
  gtest_rows "CudaGraphs" "$RESULTS/cudagraphs.gtest.xml" "0 (bit-identical)" "0"
fi

# ---- upscale models: spandrel's architectures through ComfyUI's nodes -----------------------------------
if want upscale; then
  rm -rf "$WORK/upscale"
  if run_logged upscale_reference "$PYTHON" tools/parity/upscale_reference.py --peer "$PEER" --out "$WORK/upscale"; then
    grep -A3 '"device"' "$WORK/upscale_reference.log" | sed 's/^/[gpu-parity] upscale reference: /'
    NETDIST_UPSCALE_PARITY_DATA=$WORK/upscale timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" \
      --gtest_filter='ParityUpscale.*' --gtest_output=xml:"$RESULTS/upscale.gtest.xml" >"$WORK/upscale_tests.log" 2>&1
    echo "ParityUpscale $? upscale.gtest.xml" >>"$RESULTS/steps.txt"
    grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure|^\[ upscale \]' "$WORK/upscale_tests.log" | head -20
    sed -n 's/^\[ parity \] \(.*\): max |diff| \/ max |ref| = \([^ ]*\) (bound \([^)]*\))$/\1\t\2\t\3/p' \
      "$WORK/upscale_tests.log" |
      awk -F'\t' '{ ok = ($2 + 0 <= $3 + 0); printf "ParityUpscale: %s\t%s\t%s rel\t%s\n", $1, ok ? "pass" : "FAIL", $2, $3 }' >>"$ROWS"
    grep -q '^\[ parity \]' "$WORK/upscale_tests.log" || row "ParityUpscale: no comparison ran" FAIL "-" "2/255"
    ROWS=$WORK/upscale_rows.tsv gtest_rows "ParityUpscale" "$RESULTS/upscale.gtest.xml" "-" "2/255"
    awk -F'\t' '$2 != "pass"' "$WORK/upscale_rows.tsv" >>"$ROWS"
    rm -f "$WORK/upscale_rows.tsv"
  else
    row "ParityUpscale: upscale_reference.py" FAIL "-" "-"
  fi
fi

# ---- T5-XXL tokenizer and encoder: ComfyUI's own classes (SD3.5 / Flux text side) -----------------------
if want t5; then
  rm -rf "$WORK/t5"
  if run_logged t5_reference "$PYTHON" tools/parity/t5_reference.py --comfyui "$PEER/ComfyUI" --out "$WORK/t5"; then
    NETDIST_T5_PARITY_DATA=$WORK/t5 timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" \
      --gtest_filter='ParityT5.*' --gtest_output=xml:"$RESULTS/t5.gtest.xml" >"$WORK/t5_tests.log" 2>&1
    echo "ParityT5 $? t5.gtest.xml" >>"$RESULTS/steps.txt"
    grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure|^\[ t5 \]' "$WORK/t5_tests.log" | head -20
    sed -n 's/^\[ parity \] \(.*\): max |diff| \/ max |ref| = \([^ ]*\) (bound \([^)]*\))$/\1\t\2\t\3/p' \
      "$WORK/t5_tests.log" |
      awk -F'\t' '{ ok = ($2 + 0 <= $3 + 0); printf "ParityT5: %s\t%s\t%s rel\t%s\n", $1, ok ? "pass" : "FAIL", $2, $3 }' >>"$ROWS"
    grep -q '^\[ parity \]' "$WORK/t5_tests.log" || row "ParityT5: no comparison ran" FAIL "-" "1e-4"
    ROWS=$WORK/t5_rows.tsv gtest_rows "ParityT5" "$RESULTS/t5.gtest.xml" "-" "1e-4"
    awk -F'\t' '$2 != "pass"' "$WORK/t5_rows.tsv" >>"$ROWS"
    rm -f "$WORK/t5_rows.tsv"
  else
    row "ParityT5: t5_reference.py" FAIL "-" "-"
  fi
fi

# ---- ParityDiT: SD3 / SD3.5 MMDiT and Flux at real widths against ComfyUI's own classes ----------------------
if want dit; then
  rm -rf "$WORK/dit"
  if run_logged dit_reference "$PYTHON" tools/parity/dit_reference.py --peer "$PEER" --out "$WORK/dit"; then
    NETDIST_DIT_PARITY_DATA=$WORK/dit timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" \
      --gtest_filter='ParityDiT.*' --gtest_output=xml:"$RESULTS/dit.gtest.xml" >"$WORK/dit_tests.log" 2>&1
    echo "ParityDiT $? dit.gtest.xml" >>"$RESULTS/steps.txt"
    grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure' "$WORK/dit_tests.log" | head -20
    sed -n 's/^\[ parity \] \(.*\): max |diff| \/ max |ref| = \([^ ]*\) (bound \([^)]*\))$/\1\t\2\t\3/p' \
      "$WORK/dit_tests.log" |
      awk -F'\t' '{ ok = ($2 + 0 <= $3 + 0); printf "ParityDiT: %s\t%s\t%s rel\t%s\n", $1, ok ? "pass" : "FAIL", $2, $3 }' >>"$ROWS"
    grep -q '^\[ parity \]' "$WORK/dit_tests.log" || row "ParityDiT: no comparison ran" FAIL "-" "2e-2"
    ROWS=$WORK/dit_rows.tsv gtest_rows "ParityDiT" "$RESULTS/dit.gtest.xml" "-" "2e-2"
    awk -F'\t' '$2 != "pass"' "$WORK/dit_rows.tsv" >>"$ROWS"
    rm -f "$WORK/dit_rows.tsv"
  else
    row "ParityDiT: dit_reference.py" FAIL "-" "-"
  fi
fi

# ---- mask, latent, image and conditioning operations: ComfyUI's own classes on small tensors --------------
if want ops; then
  rm -rf "$WORK/ops"
  if run_logged ops_reference "$PYTHON" tools/parity/ops_reference.py --peer "$PEER" --out "$WORK/ops"; then
    NETDIST_OPS_PARITY_DATA=$WORK/ops timeout "$STEP_TIMEOUT" "$BUILD/netdist_parity_tests" \
      --gtest_filter='ParityOps.*' --gtest_output=xml:"$RESULTS/ops.gtest.xml" >"$WORK/ops_tests.log" 2>&1
    echo "ParityOps $? ops.gtest.xml" >>"$RESULTS/steps.txt"
    grep -E '^\[ *(FAILED|SKIPPED) *\]|Failure' "$WORK/ops_tests.log" | head -20
    # "[ parity ] ops <case> (<class>): max |diff| = <v> (bound 1e-05)"
    sed -n 's/^\[ parity \] ops \(.*\): max |diff| = \([^ ]*\) (bound \([^)]*\))$/\1\t\2\t\3/p' "$WORK/ops_tests.log" |
      awk -F'\t' '{ ok = ($2 + 0 <= $3 + 0); printf "ParityOps: %s\t%s\t%s\t%s\n", $1, ok ? "pass" : "FAIL", $2, $3 }' >>"$ROWS"
    grep -q '^\[ parity \] ops ' "$WORK/ops_tests.log" || row "ParityOps: no comparison ran" FAIL "-" "1e-5"
    ROWS=$WORK/ops_rows.tsv gtest_rows "ParityOps" "$RESULTS/ops.gtest.xml" "-" "1e-5"
    awk -F'\t' '$2 != "pass"' "$WORK/ops_rows.tsv" >>"$ROWS"
    rm -f "$WORK/ops_rows.tsv"
  else
    row "ParityOps: ops_reference.py" FAIL "-" "-"
  fi
fi

# ---- whole checkpoints: docs/parity.md's tables ---------------------------------------------------------
# parity FAMILY PRECISION SIZE: the reference and parity_check; rows from parity_check's markdown table.
parity() {
  local family=$1 precision=$2 size=$3 ck=$WORK/ck/$1.safetensors ref=$WORK/ref_$1_$2.safetensors
  local name=${family}_${precision}
  mkdir -p "$WORK/ck"
  if [ ! -s "$ck" ]; then
    run_logged "checkpoint_$family" "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family "$family" --out "$ck" --seed 0 --dtype fp16 || { rm -f "$ck"; row "$name: make_checkpoint.py" FAIL - -; return; }
  fi
  run_logged "reference_$name" "$PYTHON" tools/parity/comfy_reference.py --peer "$PEER" --ckpt "$ck" --out "$ref" \
    --precision "$precision" --size "$size" || { row "$name: comfy_reference.py" FAIL - -; return; }
  run_logged "parity_check_$name" "$BUILD/parity_check" --ckpt "$ck" --ref "$ref" --device cuda \
    --precision "$precision" --clip-vocab tests/data/clip-vit-l-14-tokenizer
  local rc=$?
  # "| component | 0.00692 rel | 0.01 | yes |"
  local rows
  rows=$(grep -E '^\| .* \| (yes|NO) \|$' "$WORK/parity_check_$name.log" |
    awk -F' *\\| *' -v n="$name" '{ printf "%s: %s\t%s\t%s\t%s\n", n, $2, $5 == "yes" ? "pass" : "FAIL", $3, $4 }')
  if [ -z "$rows" ]; then
    row "$name: parity_check printed no table (exit code $rc)" FAIL - -
  else
    echo "$rows" >>"$ROWS"
    [ $rc -eq 0 ] || grep -q 'FAIL' <<<"$rows" || row "$name: parity_check exit code $rc" FAIL - -
  fi
  grep '^reference:' "$WORK/parity_check_$name.log" | sed "s/^/[gpu-parity] $name /"
}
if want sd15; then
  parity sd15 fp16 512
  parity sd15 fp32 512
fi
if want sdxl; then
  parity sdxl fp16 1024
fi

# ---- TiledDiffusion: the custom node in ComfyUI against netdist ------------------------------------------
# tiled_parity PRECISION: tools/parity/tiled_reference.py on the sd15 checkpoint, then parity_check --tiled.
tiled_parity() {
  local precision=$1 ck=$WORK/ck/sd15.safetensors ref=$WORK/ref_tiles_$1.safetensors name=tiles_$1
  mkdir -p "$WORK/ck"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || { rm -f "$ck"; row "$name: make_checkpoint.py" FAIL - -; return; }
  fi
  run_logged "reference_$name" "$PYTHON" tools/parity/tiled_reference.py --peer "$PEER" --ckpt "$ck" --out "$ref" \
    --precision "$precision" || { row "$name: tiled_reference.py" FAIL - -; return; }
  run_logged "parity_check_$name" "$BUILD/parity_check" --tiled --ckpt "$ck" --ref "$ref" --device cuda \
    --precision "$precision" --clip-vocab tests/data/clip-vit-l-14-tokenizer
  local rc=$? rows
  rows=$(grep -E '^\| .* \| (yes|NO) \|$' "$WORK/parity_check_$name.log" |
    awk -F' *\\| *' -v n="$name" '{ printf "%s: %s\t%s\t%s\t%s\n", n, $2, $5 == "yes" ? "pass" : "FAIL", $3, $4 }')
  if [ -z "$rows" ]; then
    row "$name: parity_check --tiled printed no table (exit code $rc)" FAIL - -
  else
    echo "$rows" >>"$ROWS"
    [ $rc -eq 0 ] || grep -q 'FAIL' <<<"$rows" || row "$name: parity_check exit code $rc" FAIL - -
  fi
  grep '^reference:' "$WORK/parity_check_$name.log" | sed "s/^/[gpu-parity] $name /"
}
if want tiles; then
  tiled_parity fp16
  tiled_parity fp32
fi

# ---- Ultimate SD Upscale: the real custom node against netdist run ----------------------------------------
if want usdu; then
  ck=$WORK/ck/sd15.safetensors
  usdu=$WORK/usdu
  mkdir -p "$WORK/ck" "$usdu"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ ! -s "$ck" ]; then
    row "usdu: make_checkpoint.py" FAIL - -
  elif ! narrow "$ck" || ! run_logged usdu_reference "$PYTHON" tools/parity/usdu_reference.py --peer "$PEER" --ckpt "$ck" --out "$usdu"; then
    row "usdu: usdu_reference.py" FAIL - -
  else
    rm -rf "$usdu/netdist"
    for c in $(cat "$usdu/cases.txt"); do
      run_logged "usdu_netdist_$c" "$BUILD/netdist" run "$usdu/$c.json" --models-dir "$usdu/models" \
        --input-directory "$usdu/input" --output-directory "$usdu/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/usdu_reference.py --compare "$usdu" >"$WORK/usdu_compare.log" 2>&1
    grep -E '^usdu: ' "$WORK/usdu_compare.log" >>"$ROWS" || row "usdu: compare printed no rows" FAIL - -
  fi
fi

# ---- VAEEncodeTiled: the pinned ComfyUI's node classes against netdist run ----------------------------------
if want vae_encode_tiled; then
  ck=$WORK/ck/sd15.safetensors
  vet=$WORK/vae_encode_tiled
  mkdir -p "$WORK/ck" "$vet"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ ! -s "$ck" ]; then
    row "vae_encode_tiled: make_checkpoint.py" FAIL - -
  elif ! run_logged vae_encode_tiled_reference "$PYTHON" tools/parity/vae_encode_tiled_reference.py --peer "$PEER" \
      --ckpt "$ck" --out "$vet"; then
    row "vae_encode_tiled: vae_encode_tiled_reference.py" FAIL - -
  else
    rm -rf "$vet/netdist"
    for c in $(cat "$vet/cases.txt"); do
      run_logged "vae_encode_tiled_netdist_$c" "$BUILD/netdist" run "$vet/$c.json" --models-dir "$vet/models" \
        --input-directory "$vet/input" --output-directory "$vet/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/vae_encode_tiled_reference.py --compare "$vet" >"$WORK/vae_encode_tiled_compare.log" 2>&1
    grep -E '^vae_encode_tiled: ' "$WORK/vae_encode_tiled_compare.log" >>"$ROWS" ||
      row "vae_encode_tiled: compare printed no rows" FAIL - -
  fi
fi

# ---- custom sampling and flow matching: SamplerCustomAdvanced in ComfyUI against netdist run ----------------
if want flow; then
  ck=$WORK/ck/sd15.safetensors
  flow=$WORK/flow
  mkdir -p "$WORK/ck" "$flow"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ ! -s "$ck" ]; then
    row "flow: make_checkpoint.py" FAIL - -
  elif ! run_logged flow_reference "$PYTHON" tools/parity/flow_reference.py --peer "$PEER" --ckpt "$ck" --out "$flow"; then
    row "flow: flow_reference.py" FAIL - -
  else
    grep '^reference:' "$WORK/flow_reference.log" | sed 's/^/[gpu-parity] flow /'
    rm -rf "$flow/netdist"
    for c in $(cat "$flow/cases.txt"); do
      run_logged "flow_netdist_$c" "$BUILD/netdist" run "$flow/$c.json" --models-dir "$flow/models" \
        --output-directory "$flow/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/flow_reference.py --compare "$flow" >"$WORK/flow_compare.log" 2>&1
    grep -E '^flow: ' "$WORK/flow_compare.log" >>"$ROWS" || row "flow: compare printed no rows" FAIL - -
  fi
fi

# ---- inpainting: masks and a 9-channel UNet in ComfyUI against netdist run ------------------------------------
if want inpaint; then
  ck=$WORK/ck/sd15.safetensors
  inp=$WORK/inpaint
  mkdir -p "$WORK/ck" "$inp"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  xl=$WORK/ck/sdxl.safetensors
  if [ ! -s "$xl" ]; then
    run_logged checkpoint_sdxl "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sdxl --out "$xl" --seed 0 --dtype fp16 || rm -f "$xl"
  fi
  rf=$WORK/ck/sdxl_refiner.safetensors
  if [ ! -s "$rf" ]; then
    run_logged checkpoint_refiner "$PYTHON" tools/parity/inpaint_reference.py --peer "$PEER" --make-refiner "$rf" ||
      rm -f "$rf"
  fi
  if [ ! -s "$ck" ] || [ ! -s "$xl" ] || [ ! -s "$rf" ]; then
    row "inpaint: make_checkpoint.py / --make-refiner" FAIL - -
  elif ! narrow "$ck" || ! run_logged inpaint_reference "$PYTHON" tools/parity/inpaint_reference.py --peer "$PEER" --ckpt "$ck" \
    --sdxl-ckpt "$xl" --refiner-ckpt "$rf" --out "$inp"; then
    row "inpaint: inpaint_reference.py" FAIL - -
  else
    grep '^reference:' "$WORK/inpaint_reference.log" | sed 's/^/[gpu-parity] inpaint /'
    rm -rf "$inp/netdist"
    for c in $(cat "$inp/cases.txt"); do
      run_logged "inpaint_netdist_$c" "$BUILD/netdist" run "$inp/$c.json" --models-dir "$inp/models" \
        --input-directory "$inp/input" --output-directory "$inp/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/inpaint_reference.py --compare "$inp" >"$WORK/inpaint_compare.log" 2>&1
    grep -E '^inpaint: ' "$WORK/inpaint_compare.log" >>"$ROWS" || row "inpaint: compare printed no rows" FAIL - -
  fi
fi

# ---- ControlNet: random SD1.5 / SDXL ControlNets in ComfyUI against netdist run -----------------------------
if want controlnet; then
  ck=$WORK/ck/sd15.safetensors
  xl=$WORK/ck/sdxl.safetensors
  cnw=$WORK/controlnet
  mkdir -p "$WORK/ck" "$cnw"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ ! -s "$xl" ]; then
    run_logged checkpoint_sdxl "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sdxl --out "$xl" --seed 0 --dtype fp16 || rm -f "$xl"
  fi
  if [ ! -s "$ck" ] || [ ! -s "$xl" ]; then
    row "controlnet: make_checkpoint.py" FAIL - -
  elif ! run_logged controlnet_reference "$PYTHON" tools/parity/controlnet_reference.py --peer "$PEER" \
    --ckpt "$ck" --sdxl-ckpt "$xl" --out "$cnw"; then
    row "controlnet: controlnet_reference.py" FAIL - -
  else
    grep '^reference:' "$WORK/controlnet_reference.log" | sed 's/^/[gpu-parity] controlnet /'
    rm -rf "$cnw/netdist"
    for entry in $(cat "$cnw/cases.txt"); do
      c=${entry%%:*}
      run_logged "controlnet_netdist_$c" "$BUILD/netdist" run "$cnw/$c.json" --models-dir "$cnw/models" \
        --input-directory "$cnw/input" --output-directory "$cnw/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/controlnet_reference.py --compare "$cnw" >"$WORK/controlnet_compare.log" 2>&1
    grep -E '^controlnet: ' "$WORK/controlnet_compare.log" >>"$ROWS" || row "controlnet: compare printed no rows" FAIL - -
  fi
fi

# ---- model patches: FreeU, FreeU_V2, RescaleCFG in ComfyUI against netdist run ---------------------------------
if want patches; then
  ck=$WORK/ck/sd15.safetensors
  xl=$WORK/ck/sdxl.safetensors
  pt=$WORK/patches
  mkdir -p "$WORK/ck" "$pt"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ ! -s "$xl" ]; then
    run_logged checkpoint_sdxl "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sdxl --out "$xl" --seed 0 --dtype fp16 || rm -f "$xl"
  fi
  if [ ! -s "$ck" ] || [ ! -s "$xl" ]; then
    row "patches: make_checkpoint.py" FAIL - -
  elif ! run_logged patches_reference "$PYTHON" tools/parity/patches_reference.py --peer "$PEER" --ckpt "$ck" \
    --sdxl-ckpt "$xl" --out "$pt"; then
    row "patches: patches_reference.py" FAIL - -
  else
    grep '^reference:' "$WORK/patches_reference.log" | sed 's/^/[gpu-parity] patches /'
    rm -rf "$pt/netdist"
    for c in $(cat "$pt/cases.txt"); do
      run_logged "patches_netdist_$c" "$BUILD/netdist" run "$pt/$c.json" --models-dir "$pt/models" \
        --output-directory "$pt/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/patches_reference.py --compare "$pt" >"$WORK/patches_compare.log" 2>&1
    grep -E '^patches: ' "$WORK/patches_compare.log" >>"$ROWS" || row "patches: compare printed no rows" FAIL - -
  fi
fi

# ---- embeddings and conditioning masks / timestep ranges / percentage areas against netdist run -----------
for fam in embeddings condmask; do
  want $fam || continue
  ck=$WORK/ck/sd15.safetensors
  xl=$WORK/ck/sdxl.safetensors
  mkdir -p "$WORK/ck"
  if [ ! -s "$ck" ]; then
    run_logged checkpoint_sd15 "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sd15 --out "$ck" --seed 0 --dtype fp16 || rm -f "$ck"
  fi
  if [ "$fam" = embeddings ] && [ ! -s "$xl" ]; then
    run_logged checkpoint_sdxl "$PYTHON" "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" \
      --family sdxl --out "$xl" --seed 0 --dtype fp16 || rm -f "$xl"
  fi
  dir=$WORK/$fam
  extra=()
  [ "$fam" = embeddings ] && [ -s "$xl" ] && extra=(--sdxl-ckpt "$xl")
  if [ ! -s "$ck" ]; then
    row "$fam: make_checkpoint.py" FAIL - -
  elif ! run_logged "${fam}_reference" "$PYTHON" tools/parity/embedcond_reference.py --family "$fam" --peer "$PEER" \
    --ckpt "$ck" "${extra[@]}" --out "$dir"; then
    row "$fam: embedcond_reference.py" FAIL - -
  else
    grep '^reference:' "$WORK/${fam}_reference.log" | sed "s/^/[gpu-parity] $fam /"
    rm -rf "$dir/netdist"
    for c in $(cat "$dir/cases.txt"); do
      run_logged "${fam}_netdist_$c" "$BUILD/netdist" run "$dir/$c.json" --models-dir "$dir/models" \
        --input-directory "$dir/input" --output-directory "$dir/netdist" --device "cuda:$CUDA_DEVICE" \
        --clip-vocab tests/data/clip-vit-l-14-tokenizer --disable-metadata || true
    done
    "$PYTHON" tools/parity/embedcond_reference.py --family "$fam" --compare "$dir" >"$WORK/${fam}_compare.log" 2>&1
    grep -E "^$fam: " "$WORK/${fam}_compare.log" >>"$ROWS" || row "$fam: compare printed no rows" FAIL - -
  fi
done

# ---- the table -----------------------------------------------------------------------------------------
echo
echo "| check | result | largest difference | bound |"
echo "|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$ROWS"
passed=$(awk -F'\t' '$2 == "pass"' "$ROWS" | wc -l)
failed=$(awk -F'\t' '$2 != "pass"' "$ROWS" | wc -l)
echo
echo "parity: $passed passed, $failed failed"
status=0
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || status=1
if [ -s "$RESULTS/steps.txt" ]; then
  "$BUILD/netdist_test_report" "$RESULTS" --gpu yes || status=1
fi
if [ $status -eq 0 ]; then log "all parity checks passed"; else log "FAILED (logs under $WORK)"; fi
exit $status
