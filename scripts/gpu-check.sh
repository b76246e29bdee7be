#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one CUDA GPU, that
#   (a) runs the test suite's CUDA-marked tests (pytest -m cuda),
#   (b) bench train at d_model 512 and 1024, 8 layers, L 512, batch 32, fp32 and bf16, mixer
#       (dense and triangular-tiled token mixing) vs Llama on sdpa (PyTorch's flash kernel in
#       bf16), then the same at d 1024 bf16 under torch.compile,
#   (c) bench generate at batch 1 and 32 (d 512, 8 layers, L 512), with the CUDA-graph decoding,
#   (d) 300 steps of configs/compare-paper-512.yaml on the TinyStories files,
# and writes at most 8 files into the output folder ($OUT when set, else the first argument,
# else runs/gpu-check): summary.txt (device, versions, each step's exit status and seconds),
# tests.log, train.log, train.json, generate.log, generate.json, compare.log, compare-report.md.
# A failing step does not stop the others; the script exits 1 if any step failed.
#
# Its inputs travel inside the repository (see docs/benchmarks.md, "GPU"): from the repo root,
#   mkdir -p .gpu-data && cp ../shared/data/tinystories/{train,valid}-lowercase.jsonl .gpu-data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl transformers==5.24.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# and the device call carries both folders: carry [".gpu-data", ".whl"], command
#   bash scripts/gpu-check.sh
# The wheels are there because the device image has transformers 5.17 (this package needs
# >= 5.20: generate() hands the cache to forward as `cache=`) and no `datasets`; they are
# installed with --no-deps into /tmp/site, over the image's own torch, tokenizers and hub.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${OUT:-${1:-runs/gpu-check}}
DATA=${GPU_DATA:-.gpu-data}
WHEELS=${GPU_WHEELS:-.whl}
WORK=${GPU_WORK:-/tmp/gpu-check}
mkdir -p "$OUT_DIR" "$WORK"
SUMMARY=$OUT_DIR/summary.txt
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME=$WORK/hf MPLBACKEND=Agg
FAILED=0

if compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl >>"$SUMMARY" 2>&1 \
        || { echo "wheels: install from $WHEELS failed" >>"$SUMMARY"; FAILED=1; }
    export PYTHONPATH=$WORK/site:$ROOT
else
    echo "wheels: none in $WHEELS, using the installed packages" >>"$SUMMARY"
    export PYTHONPATH=$ROOT
fi
MM=(python3 -m masked_mixers.cli)

{
    echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
    python3 -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1
} >>"$SUMMARY"

# step NAME SECONDS LOG COMMAND...: run with a time limit, record exit status and seconds
step() {
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    start=$(date +%s)
    echo "== $name: $*" >>"$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || FAILED=1
    echo "$name: exit $rc in $(($(date +%s) - start)) s (limit $limit s)" | tee -a "$SUMMARY"
}

# (a) CUDA-marked tests
step tests 60 "$OUT_DIR/tests.log" python3 -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests

# (b) training speed: dense and triangular mixer vs Llama (sdpa), fp32 and bf16; then compiled bf16 at d 1024
step bench-train 110 "$OUT_DIR/train.log" "${MM[@]}" bench train --families mixer,llama --seq-lens 512 --d-models 512,1024 \
    --layers 8 --batch-size 32 --num-heads 8 --dtypes fp32,bf16 --triangular-tiles 0,128 --llama-attention sdpa \
    --steps 10 --warmup 3 --max-memory-gb 100 --json "$OUT_DIR/train.json"
step bench-train-compiled 90 "$OUT_DIR/train.log" "${MM[@]}" bench train --families mixer,llama --seq-lens 512 --d-models 1024 \
    --layers 8 --batch-size 32 --num-heads 8 --dtypes bf16 --llama-attention sdpa --compile \
    --steps 10 --warmup 3 --max-memory-gb 100 --json "$WORK/train-compiled.json"

# (c) decoding speed, with the CUDA-graph step
step bench-generate 90 "$OUT_DIR/generate.log" "${MM[@]}" bench generate --hidden-size 512 --layers 8 --seq-len 512 --heads 8 \
    --prompt-tokens 256 --new-tokens 256 --batch-sizes 1 32 --dtypes fp32 bf16 --repeats 2 --compile --output "$OUT_DIR/generate.json"

# (d) 300 steps of the paper's d 512 comparison on the carried TinyStories files
if [ -f "$DATA/train-lowercase.jsonl" ] && [ -f "$DATA/valid-lowercase.jsonl" ]; then
    step compare 120 "$OUT_DIR/compare.log" "${MM[@]}" compare configs/compare-paper-512.yaml --no-progress \
        --data "$DATA/train-lowercase.jsonl" --eval-data "$DATA/valid-lowercase.jsonl" --output-dir "$WORK/compare" \
        --set train.max_steps=300 --set train.warmup_steps=30 --set train.eval_steps=0 --set train.logging_steps=50 \
        --set data.cache_dir="$WORK/cache" --set data.max_eval_documents=500 --set train.max_eval_batches=10
    cp "$WORK/compare/report.md" "$OUT_DIR/compare-report.md" 2>>"$SUMMARY" || FAILED=1
else
    echo "compare: skipped, $DATA/train-lowercase.jsonl and valid-lowercase.jsonl are missing (see the header)" | tee -a "$SUMMARY"
    FAILED=1
fi

echo "gpu-check: $([ $FAILED -eq 0 ] && echo all steps passed || echo some steps FAILED) -> $OUT_DIR" | tee -a "$SUMMARY"
exit $FAILED
