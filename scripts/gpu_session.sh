#!/usr/bin/env bash
# One prepared GPU session: conformance on CUDA, then perf with a saved baseline and the
# reports, everything written under OUT (default $OUT, as the device machine sets it).
#
#   bash scripts/gpu_session.sh [OUT]              # on the GPU host, python3 = CUDA torch
#   REHEARSE=1 bash scripts/gpu_session.sh /tmp/x  # the same steps on the CPU, small budgets
#
# Each step's wall time and exit code go to OUT/steps.tsv; a failing step does not stop
# the next one (their reports say what failed). Nothing is downloaded.
set -u
OUT=${1:-${OUT:?give an output folder}}
PY=${GPU_PYTHON:-python3}
mkdir -p "$OUT"
if [ -n "${REHEARSE:-}" ]; then
    DEVICE=cpu CONF='conformance and not slow' PERF='perf and not slow and not endpoint'
    MODELS=(--infer-model llama-tiny) BUDGET=10 MAXB=8
else
    DEVICE=cuda CONF='gpu and conformance' PERF='gpu and perf'
    MODELS=() BUDGET=${SWEEP_BUDGET_S:-120} MAXB=${SWEEP_MAX_BATCH:-4096}
fi

step() {  # step NAME COMMAND...: run, log, time
    local name=$1 start=$SECONDS rc
    shift
    echo "== $name: $*" | tee -a "$OUT/session.log"
    PYTHONUNBUFFERED=1 "$@" >>"$OUT/session.log" 2>&1
    rc=$?
    printf '%s\trc=%s\t%ss\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$OUT/steps.tsv"
    return $rc
}

step install "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
slug=$("$PY" -c "from infersuite.baseline.fingerprint import compute_fingerprint as f; \
print(f('$DEVICE')['slug'])")
echo "device slug: $slug" | tee -a "$OUT/session.log"
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
"$PY" -m pip list --format=freeze >"$OUT/pip-freeze.txt" 2>/dev/null

step conformance "$PY" -m pytest suite -m "$CONF" -p no:cacheprovider --infer-device "$DEVICE" \
    "${MODELS[@]}" --infer-report-dir "$OUT/conformance" -rfEs --junitxml "$OUT/conformance.xml"
step perf "$PY" -m pytest suite -m "$PERF" -p no:cacheprovider --infer-device "$DEVICE" \
    "${MODELS[@]}" --infer-sweep-budget-s "$BUDGET" --infer-sweep-max-batch "$MAXB" \
    --infer-save-baseline "$OUT/baselines/$slug.json" --infer-report-dir "$OUT/examples/$slug" \
    -rfEs --junitxml "$OUT/perf.xml"
cat "$OUT/steps.tsv"
