#!/usr/bin/env bash
# The GPU check, run on a CUDA machine in one go: random Llama-3.2-1B-shaped checkpoint and transformers references
# (scripts/gpu_reference.py); the op-by-op harness (every kernel against the Double reference, bf16 and fp32);
# `swiftwise gpu-check` (logits vs transformers and vs our CPU path, greedy agreement, decode/prefill speed, a
# per-operation profile); PD on the GPU in the default and the batch-invariant mode; transformers' speed on the same
# checkpoint shape. Results in $OUT (or ./gpu-out).
# Usage: scripts/gpu-check.sh [SWIFTWISE_BINARY] [1|2]
# With 1 or 2, only that half runs (1: references, op harness, gpu-check with the benchmark, transformers' speed; 2:
# the fp32 and batch-invariant checks, the profile, PD), for machines that limit a command's time; WORK (default
# /tmp/gpu-check-work) keeps the checkpoint and references between the halves.
set -uo pipefail
BIN=${1:-.build/release/swiftwise}
PART=${2:-all}
source "$(dirname "$0")/gpu-env.sh"
if [ ! -f "$WORK/reference.json" ]; then
    echo "== references (transformers)"
    python3 scripts/gpu_reference.py "$WORK" 2>&1 | grep -v Warning | tail -3
fi
if [ "$PART" != 2 ]; then
echo "== op-by-op harness (bf16, then fp32)"
"$BIN" gpu-check "$WORK/ckpt" --ops 2>&1 | tee "$OUT/ops-bf16.txt"
"$BIN" gpu-check "$WORK/ckpt" --ops --fp32 2>&1 | tee "$OUT/ops-fp32.txt"
echo "== swiftwise gpu-check"
"$BIN" gpu-check "$WORK/ckpt" --reference "$WORK/reference.json" --cpu --bench --json "$OUT/swiftwise.json" 2>&1 | tee "$OUT/swiftwise.txt"
# The peers right after our timings: every ratio is taken within one run, as close together as can be.
echo "== transformers speed"
python3 scripts/gpu_reference.py "$WORK/bench" --bench 2>&1 | grep -v Warning | tail -2 | tee "$OUT/torch.txt"
cp "$WORK/bench/torch-bench.json" "$OUT/" 2>/dev/null || true
fi
[ "$PART" = 1 ] && exit 0
echo "== swiftwise gpu-check --fp32 (kernels vs the CPU path at fp32)"
"$BIN" gpu-check "$WORK/ckpt" --reference "$WORK/reference.json" --cpu --fp32 --json "$OUT/swiftwise-fp32.json" 2>&1 | tee "$OUT/swiftwise-fp32.txt"
echo "== batch-invariant mode (SWIFTWISE_BATCH_INVARIANT=1)"
SWIFTWISE_BATCH_INVARIANT=1 "$BIN" gpu-check "$WORK/ckpt" --reference "$WORK/reference.json" --bench --json "$OUT/swiftwise-invariant.json" 2>&1 | tee "$OUT/swiftwise-invariant.txt"
echo "== where a step's time goes"
"$BIN" gpu-check "$WORK/ckpt" --profile --json "$OUT/profile.json" 2>&1 | tee "$OUT/profile.txt"
echo "== PD on the GPU (prefill and decode nodes as separate processes, KV store on the host)"
cp Tests/Fixtures/tiny/llama/tokenizer.json Tests/Fixtures/tiny/llama/tokenizer_config.json "$WORK/ckpt/"
python3 scripts/gpu_pd_check.py "$BIN" "$WORK/ckpt" "$OUT/pd.json" 2>&1 | tee "$OUT/pd.txt"
echo "== PD on the GPU, batch-invariant mode (must be identical for every prompt)"
SWIFTWISE_BATCH_INVARIANT=1 python3 scripts/gpu_pd_check.py "$BIN" "$WORK/ckpt" "$OUT/pd-invariant.json" 2>&1 | tee "$OUT/pd-invariant.txt"
