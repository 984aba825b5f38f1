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
# Each run has a deadline far above its normal time (about 15 s and 1 min here): a hang fails fast and names the tests
# that never finished, instead of holding CI until its own limit.
run_tests() {  # LIMIT_SECONDS SWIFT-TEST-ARGS...
    local limit=$1; shift
    local log; log=$(mktemp /tmp/swiftwise-test.XXXXXX)
    local status=0
    timeout --kill-after=30 "$limit" swift test --skip-build "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        echo "error: 'swift test $*' did not finish within ${limit}s" >&2
        python3 scripts/unfinished-tests.py "$log" >&2
    fi
    rm -f "$log"
    return "$status"
}
run_tests 600 --skip ServingTests
run_tests 1200 --filter ServingTests
