#!/usr/bin/env bash
# The GPU check: one call on a machine with an NVIDIA GPU, from a fresh copy of the repository, in at most
# 8 minutes of wall time (README, "GPU check"). It
#   1. sets up a Python whose torch sees CUDA;
#   2. writes the environment report (GPU, driver, CUDA, torch, CPU): environment.json;
#   3. fails loudly (exit 3) when no CUDA device is visible;
#   4. runs sheet 4 in the quick profile on the GPU: CPU versus GPU, batch size, model size, workers, AMP
#      (the sheet's own mixed-precision step, and its tests), pinned against pageable copies:
#      sheet4_quick.json (every table, claim check and course-reference row);
#   5. runs part 7's five baselines for one epoch on the stand-in task at 224 px: part7_baselines.json;
#   6. writes gpu_check.json (each step's status and seconds) and gpu_check.log (everything printed).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # OUT_DIR: default $OUT if set, else build/gpu-check
#
# Settings (environment variables):
#   KIT_GPU_PYTHON    a Python to use as it is, no install (e.g. python3 of a GPU image that has PyTorch)
#   KIT_GPU_PIP_ARGS  what `pip install` gets when a venv is made (default: the Makefile's, below), e.g.
#                     "--no-index --find-links /wheels torch torchvision -e .[dev]" for a local wheel folder
#   KIT_GPU_VENV      where that venv goes (default build/gpu-venv)
#   KIT_GPU_SHEET_TIMEOUT  seconds allowed for step 4 (default 300)
#   KIT_GPU_PART7_TIMEOUT  seconds allowed for step 5 (default 240)
# Without KIT_GPU_PYTHON, python3 is used as it is when its torch already sees CUDA; otherwise a venv is made
# and filled by pip (a fresh copy has none). Data: CIFAR-10 from KIT_DATA if there, else the kit's generated
# stand-ins of the real size (timings are valid; losses are not). Exit 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT_DIR=${1:-${OUT:-build/gpu-check}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export KIT_OFFLINE=${KIT_OFFLINE:-1} KIT_CACHE=${KIT_CACHE:-$REPO/build/gpu-check-cache}
T0=$SECONDS
STEPS=()

say() { echo "$*" | tee -a "$LOG"; }
# step NAME STATUS SECONDS NOTE: one entry of gpu_check.json
step() { STEPS+=("$(printf '{"step": "%s", "status": "%s", "seconds": %s, "note": "%s"}' "$1" "$2" "$3" "${4//\"/\'}")"); }
summary() {
  local joined
  joined=$(IFS=,; echo "${STEPS[*]}")
  printf '{"check": "gpu_check.sh", "exit": %s, "wall_s": %s, "out": "%s", "steps": [%s]}\n' \
    "$1" "$((SECONDS - T0))" "$OUT_DIR" "$joined" > "$OUT_DIR/gpu_check.json"
  say "== gpu_check: exit $1 after $((SECONDS - T0)) s; results in $OUT_DIR"
  exit "$1"
}
run() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

# --- 1. setup ------------------------------------------------------------------------------------------------
say "== [1/5] setup"
t=$SECONDS
cuda_torch() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; }
if [ -n "${KIT_GPU_PYTHON:-}" ]; then
  PY=$(command -v "$KIT_GPU_PYTHON" || true)
  if [ -z "$PY" ]; then say "GPU CHECK FAILED: KIT_GPU_PYTHON=$KIT_GPU_PYTHON is not an executable Python."; step setup failed $((SECONDS - t)) "no python"; summary 2; fi
  say "using KIT_GPU_PYTHON=$PY as it is (no install)"
  note="KIT_GPU_PYTHON, no install"
elif cuda_torch python3; then
  PY=$(command -v python3)
  say "python3 ($PY) already has a torch that sees CUDA: using it as it is (no install)"
  note="python3 with CUDA torch, no install"
else
  VENV=${KIT_GPU_VENV:-build/gpu-venv}
  if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then default_pins="torch==2.14.1 torchvision==0.29.1"; else default_pins=""; fi
  PIP_ARGS=${KIT_GPU_PIP_ARGS:-$default_pins -e .[dev]}
  say "making a venv in $VENV and installing: pip install $PIP_ARGS"
  { [ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"; } && run "$VENV/bin/python" -m pip install -q $PIP_ARGS
  status=$?
  if [ $status -ne 0 ]; then
    say "GPU CHECK FAILED: pip install $PIP_ARGS exited $status (no package index here? set KIT_GPU_PIP_ARGS to a local wheel folder, or KIT_GPU_PYTHON to a Python that has PyTorch)."
    step setup failed $((SECONDS - t)) "pip install exited $status"; summary 2
  fi
  PY="$REPO/$VENV/bin/python"
  [ -x "$PY" ] || PY="$VENV/bin/python"
  note="venv $VENV: pip install $PIP_ARGS"
fi
if ! run "$PY" -c 'import helpers, pandas, matplotlib, psutil, tqdm; print("the kit imports")'; then
  say "GPU CHECK FAILED: the kit does not import in $PY (a package missing? see the error above)."
  step setup failed $((SECONDS - t)) "the kit does not import"; summary 2
fi
step setup ok $((SECONDS - t)) "$note"

# --- 2. environment ------------------------------------------------------------------------------------------
say "== [2/5] environment report"
t=$SECONDS
if run "$PY" -m benchmarks._gpu_check environment --out "$OUT_DIR"; then step environment ok $((SECONDS - t)) "environment.json"
else step environment failed $((SECONDS - t)) "see gpu_check.log"; fi

# --- 3. the CUDA check ---------------------------------------------------------------------------------------
say "== [3/5] CUDA check"
t=$SECONDS
if ! run "$PY" -m benchmarks._gpu_check require-cuda; then
  step cuda failed $((SECONDS - t)) "no CUDA device is visible"
  say "GPU CHECK FAILED: no CUDA device is visible to $PY; steps 4 and 5 were not run."
  summary 3
fi
step cuda ok $((SECONDS - t)) ""

# --- 4. sheet 4, quick profile, on the GPU -------------------------------------------------------------------
say "== [4/5] sheet 4 in the quick profile on the GPU"
t=$SECONDS
failed=0
if run env KIT_PROFILE=quick timeout "${KIT_GPU_SHEET_TIMEOUT:-300}" "$PY" -m benchmarks._gpu_check sheet4 \
    --out "$OUT_DIR"; then step sheet4 ok $((SECONDS - t)) "sheet4_quick.json"
else step sheet4 failed $((SECONDS - t)) "see gpu_check.log and sheet4_quick.json"; failed=1; fi

# --- 5. part 7's baselines at 224 px -------------------------------------------------------------------------
say "== [5/5] part 7's five baselines, one epoch, 224 px"
t=$SECONDS
if [ ! -f benchmarks/part7_baselines.py ]; then
  say "skipped: benchmarks/part7_baselines.py is not in this copy of the repository (sheet 3's part 7 adds it)"
  step part7 skipped 0 "benchmarks/part7_baselines.py missing"
elif run timeout "${KIT_GPU_PART7_TIMEOUT:-240}" "$PY" -m benchmarks.part7_baselines --image-size 224 --epochs 1 \
    --device cuda --out "$OUT_DIR/part7_baselines.json"; then
  step part7 ok $((SECONDS - t)) "part7_baselines.json"
else
  step part7 failed $((SECONDS - t)) "see gpu_check.log"; failed=1
fi

summary $failed
