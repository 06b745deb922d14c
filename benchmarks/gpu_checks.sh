#!/usr/bin/env bash
# The GPU checks of this project as one short script, for a leased GPU machine (the `device` tool's `run`):
#   bash benchmarks/gpu_checks.sh            # writes everything under ${OUT:-work/gpu_checks}
# Each step has its own time limit and the script goes on when one fails, so a short lease gives every answer it
# can: (1) the GPU tests (DALI "mixed" decode against the CPU graph, CUDA training steps), (2) depth-net latency at
# 640x192 on the GPU (RM-Depth vs Monodepth2's ResNet18, eval and inference form), (3) DALI GPU loader throughput
# against the reference loader, (4) training steps/s with the data-wait fraction on one GPU, in float32 and in bf16
# mixed precision (train.precision=bf16). Record the outputs in
# BENCHMARKS.md with the GPU's name (printed first).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-work/gpu_checks}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s)" | tee -a "$OUT/summary.txt"
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then echo "   ok" | tee -a "$OUT/summary.txt"
  else echo "   FAILED (exit $?), see $name.log" | tee -a "$OUT/summary.txt"; fi
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
step gpu_tests 240 "$PY" -m pytest -q -m gpu tests/loader/test_gpu.py tests/model/test_nets.py
step depth_latency 180 "$PY" benchmarks/bench_depth_net.py --device cuda --no-onnx --iters 100 --warmup 10
step loader_gpu 240 "$PY" benchmarks/bench_loader.py --device gpu --samples 384 --batch-sizes 12 --rounds 2
TRAIN_SHARDS="${TRAIN_SHARDS:-$OUT/shards/kitti-train}"
if [ ! -f "$TRAIN_SHARDS/summary.json" ]; then  # a small synthetic KITTI set, made here (about a minute)
  step make_shards 240 bash -c "'$PY' -m jobs synth kitti '$OUT/raw' --drives 2 --frames 40 --size 416x128 --quiet &&
    '$PY' -m jobs shard --dataset kitti --input '$OUT/raw' --output '$TRAIN_SHARDS' --size 416x128 --no-ray"
fi
step train_gpu 300 "$PY" -m jobs train --preset tiny_cpu --use-gpu --num-workers 1 --set train.epochs=1 \
  --set train.max_steps_per_epoch=60 --set loader.loader=dali --set data.train_url="$TRAIN_SHARDS" \
  --set train.validate=false --set train.precision=fp32 --storage-path "$OUT/runs" --name gpu-check
grep -h "samples/s\|data-wait" "$OUT/train_gpu.log" | tail -3 | tee -a "$OUT/summary.txt"
step train_gpu_bf16 300 "$PY" -m jobs train --preset tiny_cpu --use-gpu --num-workers 1 --set train.epochs=1 \
  --set train.max_steps_per_epoch=60 --set loader.loader=dali --set data.train_url="$TRAIN_SHARDS" \
  --set train.validate=false --set train.precision=bf16 --storage-path "$OUT/runs" --name gpu-check-bf16
grep -h "precision\|samples/s\|data-wait" "$OUT/train_gpu_bf16.log" | tail -4 | tee -a "$OUT/summary.txt"
cat "$OUT/summary.txt"
