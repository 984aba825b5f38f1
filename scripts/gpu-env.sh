# Sourced by the GPU scripts (gpu-check.sh, gpu-variants.sh): the CUDA libraries on LD_LIBRARY_PATH, the results
# folder $OUT (default ./gpu-out) and the folder $WORK (default /tmp/gpu-check-work) that keeps the checkpoint and
# references between runs; prints the device.
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
for d in /usr/local/cuda-13.0/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
WORK=${WORK:-/tmp/gpu-check-work}
mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
# On exit, more than 8 result files go into one archive, results.tar.gz: the lent device machine returns at most 8
# files from $OUT (gpu-check.sh writes about 18).
pack_results() {
    local files
    files=$(cd "$OUT" && find . -maxdepth 2 -type f ! -name results.tar.gz | sed 's|^\./||')
    [ "$(printf '%s\n' "$files" | grep -c .)" -gt 8 ] || return 0
    (cd "$OUT" && printf '%s\n' "$files" | tar czf results.tar.gz -T - && printf '%s\n' "$files" | xargs rm -f)
}
trap pack_results EXIT
