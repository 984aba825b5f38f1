#!/usr/bin/env bash
# Engine speed against llama.cpp in the same run, same GGUF, same threads: prompt (pp) and decode (tg) tokens/s,
# our/llama.cpp ratios, and decode's fraction of the memory-bandwidth limit (weight bytes per token × tok/s over
# this machine's measured copy bandwidth). Needs bench/fetch-llamacpp.sh (builds the peer; nothing of it is committed).
# Usage: bench/model-vs-llamacpp.sh [MODEL.gguf] [THREADS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$HOME/.cache/swiftwise/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-2}
REPEATS=${3:-5}
LLAMA_BENCH=$(bench/fetch-llamacpp.sh | head -1)
SWIFTWISE=.build/release/swiftwise
[ -x "$SWIFTWISE" ] || swift build -c release --product swiftwise

ours=() theirs=()
for round in $(seq 1 "$REPEATS"); do  # interleaved, so drift in machine load hits both alike
    theirs+=("$("$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 128 -n 64 -r 1 -o json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(str(x["avg_ts"]) for x in r))')")
    ours+=("$(SWIFTWISE_THREADS=$THREADS "$SWIFTWISE" bench model "$MODEL" --repeats 1 --json |
        python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r["pp_tok_s"], r["tg_tok_s"])')")
done
COPY_GBPS=$(python3 - <<'PY'
import time
import numpy as np
a = np.ones(256 << 20, dtype=np.uint8); b = np.empty_like(a)
best = 0
for _ in range(3):
    t = time.perf_counter(); np.copyto(b, a); best = max(best, a.nbytes / (time.perf_counter() - t) / 1e9)
print(f"{best:.1f}")
PY
)
python3 - "$MODEL" "$THREADS" "$COPY_GBPS" "${ours[@]/#/o:}" "${theirs[@]/#/t:}" <<'PY'
import os, statistics, sys
model, threads, copy = sys.argv[1], sys.argv[2], float(sys.argv[3])
ours = [tuple(map(float, a[2:].split())) for a in sys.argv[4:] if a.startswith("o:")]
theirs = [tuple(map(float, a[2:].split())) for a in sys.argv[4:] if a.startswith("t:")]
med = lambda xs, i: statistics.median(x[i] for x in xs)
size = os.path.getsize(model) / 1e9
print(f"model {os.path.basename(model)} ({size*1000:.0f} MB), {threads} threads, {len(ours)} interleaved rounds, medians")
print(f"{'':8} {'swiftwise':>10} {'llama.cpp':>10} {'ratio':>7}")
for name, i in (("pp128", 0), ("tg64", 1)):
    print(f"{name:8} {med(ours, i):10.1f} {med(theirs, i):10.1f} {med(ours, i) / med(theirs, i):6.2f}x")
tg = med(ours, 1)
print(f"decode reads ~{size:.3f} GB of weights per token: {tg * size:.1f} GB/s = {100 * tg * size / copy:.0f}% of the "
      f"{copy:.1f} GB/s one-thread copy bandwidth (llama.cpp: {100 * med(theirs, 1) * size / copy:.0f}%)")
PY
