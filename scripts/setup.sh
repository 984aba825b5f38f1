#!/usr/bin/env bash
# Prepares a fresh Debian machine that has the Swift toolchain: system packages, then the release build.
# Idempotent: re-running only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
    echo "==> installing ${need_apt[*]}"
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
    else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}"; fi
fi

command -v swift >/dev/null || { echo "error: the Swift toolchain (swift) is not on PATH; install Swift 6.x first" >&2; exit 1; }

echo "==> building swiftwise (release)"
swift build -c release --product swiftwise
echo "==> built $(swift build -c release --show-bin-path)/swiftwise"

echo "==> default model"
scripts/fetch-model.sh >/dev/null
