#!/usr/bin/env bash
# The test suite: builds everything (debug) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "error: tests need python3 (scripts/setup.sh installs it)" >&2; exit 1; }
python3 -c 'import openai' 2>/dev/null || python3 -m pip install -q -r Tests/python/requirements.txt
scripts/fetch-model.sh >/dev/null  # the default model: tokenizer and GGUF tests read it (cached, hash-checked)
swift build --build-tests
# Two runs: the network and unit tests, whose timeouts assume a responsive machine, then the serving tests, which
# start model processes and keep both cores busy (they also run one at a time, see Tests/ServingTests).
swift test --skip-build --skip ServingTests
swift test --skip-build --filter ServingTests
