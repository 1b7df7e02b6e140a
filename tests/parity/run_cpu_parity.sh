#!/usr/bin/env bash
# The checks of netdist against the pinned ComfyUI that run on a CPU build machine, in one command: ComfyUI's own
# node classes on Debian's CPU torch (tools/parity/cpu/cpu_comfy.py: python3-torch, -numpy, -scipy, -pil,
# -torchvision, -regex, -yaml, -psutil, -tqdm) against netdist's CPU build (build/release), both in fp32, on the
# real-size random-weight SD1.5 checkpoint of the GPU harness at small image sizes. It complements
# tests/parity/run_gpu_parity.sh (fp16 on a card, real sizes); docs/parity.md keeps both kinds of rows apart.
#
#   bash tests/parity/run_cpu_parity.sh
#
# Steps (CPU_PARITY_STEPS picks some; default all): tokenizer ops flow inpaint usdu controlnet patches embeddings condmask
#   tokenizer  the CPU stand-in for transformers' CLIP tokenizer against ComfyUI's committed goldens (54 prompts)
#   ops        tools/parity/ops_reference.py + netdist_parity_tests ParityOps.* (as the GPU step `ops`)
#   flow       tools/parity/flow_reference.py at SIZE² and STEPS steps against `netdist run --device cpu`
#   inpaint    tools/parity/inpaint_reference.py, the SD1.5 cases (SDXL ones need more memory than CPU runs take)
#   usdu       tools/parity/usdu_reference.py at USDU_SIZE² in TILE² tiles against `netdist run --device cpu`
#   controlnet, patches, embeddings, condmask: the GPU steps' reference scripts (their SD1.5 cases) at SIZE², STEPS steps
# Environment: PEER=.peer BUILD=build/release WORK=/tmp/netdist-cpu-parity PY=/usr/bin/python3 SIZE=128 STEPS=8
#   USDU_SIZE=256 TILE=128 USDU_STEPS=4 CONDMASK_SIZE=256. Exits 0 only when every row passed. The checkpoint (4 GB, fp32) is made
#   once in WORK/ck and reused.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
PEER=${PEER:-.peer}
BUILD=${BUILD:-build/release}
WORK=${WORK:-/tmp/netdist-cpu-parity}
PY=${PY:-/usr/bin/python3}
SIZE=${SIZE:-128}
STEPS=${STEPS:-8}
USDU_SIZE=${USDU_SIZE:-256}
TILE=${TILE:-128}
USDU_STEPS=${USDU_STEPS:-4}
CONDMASK_SIZE=${CONDMASK_SIZE:-256}
CPU_PARITY_STEPS=${CPU_PARITY_STEPS:-tokenizer ops flow inpaint usdu controlnet patches embeddings condmask}
ROWS=$WORK/rows.tsv
RUN="$PY tools/parity/cpu/run_cpu.py --peer $PEER"
VOCAB=tests/data/clip-vit-l-14-tokenizer
mkdir -p "$WORK/ck"
: >"$ROWS"
log() { echo "[cpu-parity $(date +%H:%M:%S)] $*"; }
want() { case " $CPU_PARITY_STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$ROWS"; }
[ -x "$BUILD/netdist" ] || { log "no $BUILD/netdist: build it first (make)"; exit 2; }
[ -d "$PEER/ComfyUI" ] || { log "no $PEER/ComfyUI: lay it out with ../shared/peer/prepare.sh"; exit 2; }

ck=$WORK/ck/sd15.safetensors
checkpoint() {
  [ -s "$ck" ] && return 0
  log "checkpoint: real-size random SD1.5, fp32 (make_checkpoint.py)"
  $RUN "$PEER/harness/make_checkpoint.py" --comfy "$PEER/ComfyUI" --family sd15 --out "$ck" --seed 0 --dtype fp32 \
    --device cpu >"$WORK/checkpoint.log" 2>&1 || { rm -f "$ck"; tail -5 "$WORK/checkpoint.log"; return 1; }
  # ComfyUI's VAEEncode samples the posterior; a random VAE's is wide (tools/parity/narrow_vae_posterior.py).
  $PY tools/parity/narrow_vae_posterior.py "$ck" >>"$WORK/checkpoint.log" 2>&1 || { rm -f "$ck"; return 1; }
}

# workflow_step NAME SCRIPT EXTRA_ARGS...: reference, netdist run of every case, compare rows.
workflow_step() {
  local name=$1 script=$2
  shift 2
  local dir=$WORK/$name
  checkpoint || { row "$name: checkpoint" FAIL - -; return; }
  rm -rf "$dir" && mkdir -p "$dir"
  log "$name: ComfyUI reference ($script $*)"
  if ! $RUN "$script" --peer "$PEER" --ckpt "$ck" --out "$dir" "$@" >"$WORK/${name}_reference.log" 2>&1; then
    tail -5 "$WORK/${name}_reference.log"
    row "$name: $script" FAIL - -
    return
  fi
  log "$name: netdist run"
  for entry in $(cat "$dir/cases.txt"); do
    c=${entry%%:*}  # "case:images" where a case makes several
    "$BUILD/netdist" run "$dir/$c.json" --models-dir "$dir/models" --input-directory "$dir/input" \
      --output-directory "$dir/netdist" --device cpu --clip-vocab "$VOCAB" --disable-metadata \
      >"$WORK/${name}_netdist_$c.log" 2>&1 || log "$name: netdist failed on $c (see $WORK/${name}_netdist_$c.log)"
  done
  $PY "$script" --compare "$dir" ${COMPARE_EXTRA:-} >"$WORK/${name}_compare.log" 2>&1
  grep -E "^$name: " "$WORK/${name}_compare.log" >>"$ROWS" || row "$name: compare printed no rows" FAIL - -
}

if want tokenizer; then
  if $PY tools/parity/cpu/check_tokenizer.py --peer "$PEER" >"$WORK/tokenizer.log" 2>&1; then
    row "tokenizer: CPU stand-in vs ComfyUI goldens" pass "$(head -1 "$WORK/tokenizer.log" | grep -o '[0-9]*/[0-9]*')" "identical"
  else
    row "tokenizer: CPU stand-in vs ComfyUI goldens" FAIL "$(head -1 "$WORK/tokenizer.log")" "identical"
  fi
fi
if want ops; then
  rm -rf "$WORK/ops"
  if $RUN tools/parity/ops_reference.py --peer "$PEER" --out "$WORK/ops" >"$WORK/ops_reference.log" 2>&1; then
    NETDIST_OPS_PARITY_DATA=$WORK/ops "$BUILD/netdist_parity_tests" --gtest_filter='ParityOps.*' >"$WORK/ops_tests.log" 2>&1
    rc=$?
    sed -n 's/^\[ parity \] ops \(.*\): max |diff| = \([^ ]*\) (bound \([^)]*\))$/ops: \1\t-\t\2\t\3/p' "$WORK/ops_tests.log" |
      awk -F'\t' -v rc=$rc '{ $2 = (rc == 0 ? "pass" : "see log"); print $1 "\t" $2 "\t" $3 "\t" $4 }' >>"$ROWS"
    [ $rc -eq 0 ] || row "ops: netdist_parity_tests ParityOps.*" FAIL "exit $rc" "1e-5"
  else
    row "ops: ops_reference.py" FAIL - -
  fi
fi
want flow && workflow_step flow tools/parity/flow_reference.py --size "$SIZE" --steps "$STEPS"
want inpaint && workflow_step inpaint tools/parity/inpaint_reference.py --size "$SIZE" --steps "$STEPS"
want usdu && workflow_step usdu tools/parity/usdu_reference.py --size "$USDU_SIZE" --tile "$TILE" --steps "$USDU_STEPS"
want controlnet && workflow_step controlnet tools/parity/controlnet_reference.py --size "$SIZE" --steps "$STEPS"
want patches && workflow_step patches tools/parity/patches_reference.py --size "$SIZE" --steps "$STEPS"
want embeddings && COMPARE_EXTRA="--family embeddings" workflow_step embeddings tools/parity/embedcond_reference.py \
  --family embeddings --size "$SIZE" --steps "$STEPS"
# At 128² ComfyUI itself fails the mask-bounds case (get_area_and_mult narrows past the latent), so 256².
want condmask && COMPARE_EXTRA="--family condmask" workflow_step condmask tools/parity/embedcond_reference.py \
  --family condmask --size "$CONDMASK_SIZE" --steps "$STEPS"

echo
printf '%-60s %-6s %-28s %s\n' check result difference bound
while IFS=$'\t' read -r check result diff bound; do printf '%-60s %-6s %-28s %s\n' "$check" "$result" "$diff" "$bound"; done <"$ROWS"
fails=$(cut -f2 "$ROWS" | grep -vc '^pass$')
log "$(wc -l <"$ROWS") rows, $fails not passed"
[ "$fails" -eq 0 ]
