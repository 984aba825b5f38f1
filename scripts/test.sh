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

# The runner, the test binary and the services the tests started (found in /proc: no procps needed).
kill_test_processes() {
    local proc cmd
    for proc in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null) || continue
        case "$cmd" in
            *swiftwisePackageTests.xctest*|*"swift-test --skip-build"*|*.build/*/swiftwise\ *) kill -KILL "${proc#/proc/}" 2>/dev/null || true ;;
        esac
    done
}

# Each run has a deadline far above its normal time (15-45 s and about 35 s here; 5 and 10 min, so a hung CI run
# ends within 30 min): a hang fails fast and names the tests that never finished. A watchdog rather than `timeout`:
# swift test starts the test binary in a process group of its own, which a timeout of the runner alone leaves
# running (holding the output pipe open). Output is line-buffered so that the names are those of the tests really
# left running.
run_tests() {  # LIMIT_SECONDS SWIFT-TEST-ARGS...
    local limit=$1; shift
    local log; log=$(mktemp /tmp/swiftwise-test.XXXXXX)
    (
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM  # stopped early: leave no sleep behind
        sleep "$limit" </dev/null >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
        touch "$log.expired"
        echo "error: 'swift test $*' did not finish within ${limit}s" >&2
        python3 scripts/unfinished-tests.py "$log" >&2
        kill_test_processes
    ) &
    local watchdog=$!
    local status=0
    stdbuf -oL -eL swift test --skip-build "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    if [ -e "$log.expired" ]; then  # let the watchdog finish, then catch what started while it was killing
        wait "$watchdog" 2>/dev/null || true
        kill_test_processes
        status=124
    else
        kill "$watchdog" 2>/dev/null || true
        wait "$watchdog" 2>/dev/null || true
    fi
    rm -f "$log" "$log.expired"
    return "$status"
}
run_tests "${SWIFTWISE_TEST_LIMIT:-300}" --skip ServingTests
run_tests "${SWIFTWISE_SERVING_TEST_LIMIT:-600}" --filter ServingTests
