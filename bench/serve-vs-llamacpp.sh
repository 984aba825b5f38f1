#!/usr/bin/env bash
# Serving throughput and latency against llama-server in the same run: same GGUF, same threads, same request mix
# (random prompts of ~128 tokens, 64 output tokens, ignore_eos, streamed; new prompts at each concurrency, so no
# prompt cache helps either side) at each concurrency; each server runs
# alone. Needs bench/fetch-llamacpp.sh (builds the peer; nothing of it is committed).
# Usage: bench/serve-vs-llamacpp.sh [MODEL.gguf] [THREADS] [CONCURRENCIES]
# SAMPLING="--temperature 1 --top-p 0.95" (any of bench serve's --temperature/--top-p/--top-k/--min-p) samples instead
# of the default greedy decoding; every parameter is then sent explicitly, so neither server's defaults apply.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$HOME/.cache/swiftwise/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-2}
CONCURRENCIES=${3:-1 4 16}
LLAMA_SERVER=$(bench/fetch-llamacpp.sh 2>/dev/null | tail -1)
SWIFTWISE=.build/release/swiftwise
[ -x "$SWIFTWISE" ] || swift build -c release --product swiftwise
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PORT=18431

wait_ready() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0; sleep 0.2; done; return 1; }

run_all() {  # label
    for c in $CONCURRENCIES; do
        n=$(( c * 4 > 16 ? c * 4 : 16 ))
        "$SWIFTWISE" bench serve --url "http://127.0.0.1:$PORT" --model m --label "$1" --num-prompts "$n" \
            --input-len 128 --output-len 64 --ignore-eos --max-concurrency "$c" --seed "$c" ${SAMPLING:-} \
            --json "$OUT/$1-c$c.json" 2>/dev/null >/dev/null
    done
}

"$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" --parallel 16 -c $((16 * 512)) --host 127.0.0.1 --port $PORT -a m \
    --threads-http 64 --no-webui >"$OUT/llama-server.log" 2>&1 &
PID=$!
wait_ready || { echo "llama-server did not start; see $OUT/llama-server.log"; kill $PID; exit 1; }
run_all llama-server
kill $PID; wait $PID 2>/dev/null || true

"$SWIFTWISE" serve "$MODEL" --host 127.0.0.1 --port $PORT --served-model-name m --threads "$THREADS" \
    --max-model-len 512 --max-num-seqs 16 --kv-cache-memory 512MiB --log-level warning >"$OUT/swiftwise.log" 2>&1 &
PID=$!
wait_ready || { echo "swiftwise serve did not start; see $OUT/swiftwise.log"; kill $PID; exit 1; }
run_all swiftwise
kill $PID; wait $PID 2>/dev/null || true

python3 - "$OUT" $CONCURRENCIES <<'PY'
import json, sys
out, cs = sys.argv[1], sys.argv[2:]
def load(label, c): return json.load(open(f"{out}/{label}-c{c}.json"))[0]["report"]
print(f"{'conc':>4} | {'output tok/s (ours / llama-server = ratio)':>44} | {'TTFT p50 ms':>15} | {'TTFT p99 ms':>15} | {'ITL p50 ms':>13} | {'ITL p99 ms':>13} | failed")
for c in cs:
    a, b = load("swiftwise", c), load("llama-server", c)
    print(f"{c:>4} | {a['outputTokenThroughput']:12.1f} / {b['outputTokenThroughput']:8.1f} = {a['outputTokenThroughput'] / b['outputTokenThroughput']:5.2f}x"
          f"{'':>12} | {a['ttftMs']['p50']:6.0f} / {b['ttftMs']['p50']:6.0f} | {a['ttftMs']['p99']:6.0f} / {b['ttftMs']['p99']:6.0f}"
          f" | {a['itlMs']['p50']:5.1f} / {b['itlMs']['p50']:5.1f} | {a['itlMs']['p99']:5.1f} / {b['itlMs']['p99']:5.1f} | {a['failed']}/{b['failed']}")
print(f"(reports in {out})")
PY
