#!/usr/bin/env bash
# The prepared GPU check (issue 12): one short run on a machine with a CUDA GPU, under 8 minutes.
#
# For PSPNet-ResNet18 and -ResNet50, tile 512, on an 8192^2 mosaic of the bundled image, it
# prints model-only and `segment` Mpx/s, their ratio, GPU utilisation sampled by nvidia-smi
# while `segment` ran, peak GPU memory and the batch size (benchmarks/gpu_utilisation.py), each
# backbone also with `segment` writing the mask only; then training iterations/s and GPU
# utilisation with 0 and 4 loader workers (benchmarks/train_throughput.py, issue 15) and the
# result of the tests marked `gpu`;
# with VARIANTS=1, the model's rate called in other ways (batch sizes, channels_last,
# cudnn.benchmark, float32, pinned copies: benchmarks/gpu_model_variants.py).
# Without a GPU it says so in one line and exits 0.
#
#   bash benchmarks/gpu_check.sh    # results kept in $RESULTS, scenes in $WORK (default: temp folders)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA GPU on this machine (nvidia-smi or torch.cuda missing); nothing measured"
    exit 0
fi
RESULTS=${RESULTS:-$(mktemp -d)}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$RESULTS" "$WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
status=0
sampler=
trap '[ -n "$sampler" ] && kill "$sampler" 2>/dev/null' EXIT
# Each backbone twice: the whole segment, then segment writing the mask only (no polygons: the
# random-weight model paints a speckled mask whose vectorising would otherwise be all we measure).
for run in resnet18 resnet18:mask resnet50 resnet50:mask; do
    backbone=${run%%:*}
    only=$([ "$run" != "$backbone" ] && echo --mask-only)
    name=${run/:/_}
    nvidia-smi -i 0 --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
        > "$RESULTS/smi_$name.csv" &
    sampler=$!
    timeout 90 "$PY" benchmarks/segment_overhead.py --sizes 8192 --backbone "$backbone" --device cuda $only \
        --work-dir "$WORK" --json "$RESULTS/$name.json" --markdown "$RESULTS/$name.md" 2> "$RESULTS/$name.log"
    code=$?
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    sampler=
    if [ "$code" -eq 0 ]; then
        "$PY" benchmarks/gpu_utilisation.py "$RESULTS/$name.json" "$RESULTS/smi_$name.csv" || status=1
    elif [ "$code" -eq 124 ]; then
        echo "gpu_check: $run did not finish within its 90 s"; status=1
    else
        echo "gpu_check: $run failed (exit $code): $(tail -n 5 "$RESULTS/$name.log")"; status=1
    fi
done
# Training (issue 15): iterations/s and GPU utilisation with 0 and 4 loader workers, bf16.
timeout 150 "$PY" benchmarks/train_throughput.py --device cuda --workers 0 4 --iterations 40 \
    --work-dir "$WORK" --json "$RESULTS/train.json" 2> "$RESULTS/train.log" || { echo "gpu_check: training throughput failed: $(tail -n 3 "$RESULTS/train.log")"; status=1; }
timeout 90 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -15 || status=1
if [ "${VARIANTS:-0}" != 0 ]; then    # VARIANTS=1 adds them (about 90 s; last measured in docs/benchmarks.md)
    timeout 90 "$PY" benchmarks/gpu_model_variants.py --json "$RESULTS/variants.json" || status=1
fi
echo "gpu_check: results in $RESULTS"
exit $status
