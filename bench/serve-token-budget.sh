#!/usr/bin/env bash
# The token budget's trade on a CPU node: `swiftwise serve` alone, restarted for each --max-num-batched-tokens value
# in turn, and `swiftwise bench serve` against it (random prompts, 64 output tokens with ignore_eos, streamed).
# Usage: bench/serve-token-budget.sh [MODEL.gguf] [THREADS=2] ["BUDGETS"="512/0 512/128 128/0"] ["RUNS"="16:128:64 4:128:16"]
#   BUDGET = max-num-batched-tokens/max-prefill-tokens-while-decoding (0: no cap; a bare number takes serve's default
#   cap, 128 on CPU); RUN = concurrency:input-len:prompts; ROUNDS=N repeats the whole list (default 1), alternating
#   the budgets. SWIFTWISE=path picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$HOME/.cache/swiftwise/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-2}
BUDGETS=${3:-512/0 512/128 128/0}
RUNS=${4:-16:128:64 4:128:16}
SWIFTWISE=${SWIFTWISE:-.build/release/swiftwise}
[ -x "$SWIFTWISE" ] || swift build -c release --product swiftwise
OUT=${OUT:-$(mktemp -d)}
PORT=18432
echo "round concurrency input-len budget | output tok/s | TTFT p50/p99 ms | ITL p50/p99 ms | failed"
for round in $(seq 1 "${ROUNDS:-1}"); do
    for run in $RUNS; do
        IFS=: read -r c len n <<< "$run"
        for budget in $BUDGETS; do
            cap=()
            [[ "$budget" == */* ]] && cap=(--max-prefill-tokens-while-decoding "${budget#*/}")
            "$SWIFTWISE" serve "$MODEL" --host 127.0.0.1 --port $PORT --served-model-name m --threads "$THREADS" \
                --max-model-len 512 --max-num-seqs 16 --kv-cache-memory 512MiB --max-num-batched-tokens "${budget%/*}" \
                "${cap[@]}" --log-level warning > "$OUT/serve.log" 2>&1 &
            PID=$!
            for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
            report="$OUT/r$round-c$c-l$len-b${budget/\//-}.json"
            "$SWIFTWISE" bench serve --url "http://127.0.0.1:$PORT" --model m --num-prompts "$n" --input-len "$len" \
                --output-len 64 --ignore-eos --max-concurrency "$c" --seed "$c" --json "$report" > /dev/null 2>&1 || true
            kill $PID; wait $PID 2>/dev/null || true
            python3 - "$report" "$round $c $len $budget" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]["report"]
print(f"{sys.argv[2]} | {r['outputTokenThroughput']:.1f} | {r['ttftMs']['p50']:.0f} / {r['ttftMs']['p99']:.0f}"
      f" | {r['itlMs']['p50']:.1f} / {r['itlMs']['p99']:.1f} | {r['failed']}")
PY
        done
    done
done
echo "(reports in $OUT)"
