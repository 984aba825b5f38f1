#!/usr/bin/env bash
# The test suite: builds everything (debug) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "error: tests need python3 (scripts/setup.sh installs it)" >&2; exit 1; }
swift build --build-tests
swift test --skip-build
