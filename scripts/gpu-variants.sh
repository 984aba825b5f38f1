#!/usr/bin/env bash
# Times the persistent batch-1 decode kernel's variants against the default in one machine session, on a CUDA machine.
# Each variant is the same binary with extra NVRTC defines (SWIFTWISE_KERNEL_DEFINES): `gpu-check --bench --quick`
# compares its logits with the fused kernels' bit for bit, runs batch-1 decode (prompt 512, 256 new) three times and
# prints the phase table. Then the fastest bit-identical variant gets the full `gpu-check --bench` (b1, b32, prefill,
# copy bandwidth, cuBLAS peak), and transformers' speed is measured right after it (PEERS=0 skips it).
# Usage: scripts/gpu-variants.sh [SWIFTWISE_BINARY] [VARIANT...]
#   VARIANT: a name below, or NAME=DEFINES ("wide=-DPD_STAGES=10 -DPD_SPREAD=1"). The default runs the names in
#   ORDER (the default kernel first and last, to see drift) as long as they start before STOP seconds (default 300;
#   on an H100 a variant takes about 10 s with its NVRTC build, the full bench and transformers about 2 minutes
#   more). Results in $OUT (or ./gpu-out): one N-NAME.txt each, variants.md (the table), bench.txt, torch.txt.
set -uo pipefail
BIN=${1:-.build/release/swiftwise}
[ $# -gt 0 ] && shift
source "$(dirname "$0")/gpu-env.sh"
declare -A DEFINES=(
    [default]=""
    [spread]="-DPD_SPREAD=1"
    [stages6]="-DPD_STAGES=6"
    [stages10]="-DPD_STAGES=10"
    [spread-stages6]="-DPD_SPREAD=1 -DPD_STAGES=6"
    [acqrel]="-DPD_ACQREL_ARRIVE=1"
    [spread-acqrel]="-DPD_SPREAD=1 -DPD_ACQREL_ARRIVE=1"
    [prime15-lead7]="-DPD_STAGES=16 -DPD_PRIME=15 -DPD_LEAD=7"
    [prime11-lead7]="-DPD_STAGES=12 -DPD_PRIME=11 -DPD_LEAD=7"
    [prime7-lead5]="-DPD_PRIME=7 -DPD_LEAD=5"
    [merge-all]="-DPD_MERGE_ALL=1"
    [merge-all-prime15]="-DPD_MERGE_ALL=1 -DPD_STAGES=16 -DPD_PRIME=15 -DPD_LEAD=7"
    [diag-no-wait]="-DPD_DIAG_NO_WAIT=1"
    [diag-no-attention]="-DPD_DIAG_NO_ATTENTION=1"
)
ORDER="default merge-all prime15-lead7 prime11-lead7 merge-all-prime15 spread acqrel prime7-lead5 spread-acqrel stages6 stages10 diag-no-wait diag-no-attention default"
VARIANTS=("$@")
[ ${#VARIANTS[@]} -eq 0 ] && read -ra VARIANTS <<< "$ORDER"
T0=$(date +%s)
[ -d "$WORK/ckpt" ] || python3 scripts/gpu_reference.py "$WORK" --checkpoint-only 2>&1 | grep -v Warning | tail -1
echo "| variant | defines | logits differing from the fused kernels | batch-1 tok/s (three runs) | mean |" > "$OUT/variants.md"
echo "|---|---|---|---|---|" >> "$OUT/variants.md"
BEST=""; BEST_RATE=0; N=0
for v in "${VARIANTS[@]}"; do
    name=${v%%=*}
    if [[ "$v" == *=* ]]; then defs=${v#*=}; else defs=${DEFINES[$name]-MISSING}; fi
    [ "$defs" = MISSING ] && { echo "unknown variant $name (known: ${!DEFINES[*]})"; continue; }
    [ $(( $(date +%s) - T0 )) -gt "${STOP:-300}" ] && { echo "== $name skipped: past STOP"; continue; }
    N=$((N + 1)); file="$OUT/$N-$name.txt"
    echo "== $name ($defs) at $(( $(date +%s) - T0 )) s"
    SWIFTWISE_KERNEL_DEFINES="$defs" timeout 150 "$BIN" gpu-check "$WORK/ckpt" --bench --quick > "$file" 2>&1
    grep -E "persistent decode kernel|three runs|^ *(QKV|attention|o |gate|down|step|phase)" "$file"
    differing=$(grep -o "[0-9]* of [0-9]* logits differ" "$file" | tail -1)
    rates=$(grep "three runs" "$file" | sed 's/.*three runs: //; s/ tok\/s//')
    mean=$(echo "$rates" | awk '{ if (NF) printf "%.1f", ($1 + $2 + $3) / 3 }')
    echo "| $name | \`${defs:-none}\` | ${differing:-no result} | ${rates:-failed} | ${mean:-} |" >> "$OUT/variants.md"
    if [[ "$differing" == "0 of "* ]] && [ -n "$mean" ] && awk "BEGIN { exit !($mean > $BEST_RATE) }"; then
        BEST_RATE=$mean; BEST=$defs
    fi
done
cat "$OUT/variants.md"
echo "== full benchmark of the fastest bit-identical variant ('${BEST:-none}', $BEST_RATE tok/s) at $(( $(date +%s) - T0 )) s"
SWIFTWISE_KERNEL_DEFINES="$BEST" timeout 200 "$BIN" gpu-check "$WORK/ckpt" --bench --json "$OUT/bench.json" 2>&1 \
    | grep -v "^kernel launches" | tee "$OUT/bench.txt" | tail -25
if [ "${PEERS:-1}" = 1 ]; then
    echo "== transformers speed (same machine session) at $(( $(date +%s) - T0 )) s"
    python3 scripts/gpu_reference.py "$WORK/bench" --bench 2>&1 | grep -v Warning | tail -2 | tee "$OUT/torch.txt"
fi
echo "done at $(( $(date +%s) - T0 )) s"
