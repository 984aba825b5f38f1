#!/usr/bin/env python3
"""Names the tests that a `swift test` log shows as started but never finished: what a hung run was waiting on."""
import re
import sys

started, finished = [], set()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if m := re.match(r'◇ Test (".*") started\.', line):  # Swift Testing
        started.append(m.group(1))
    elif m := re.match(r'[✔✘➜] Test (".*?")(?: with \d+ test cases?)? (?:passed|failed|skipped)', line):
        finished.add(m.group(1))
    elif m := re.match(r"Test Case '(.*)' started", line):  # XCTest
        started.append(m.group(1))
    elif m := re.match(r"Test Case '(.*)' (?:passed|failed|skipped)", line):
        finished.add(m.group(1))
hung = [name for name in started if name not in finished]
print(f"tests started but not finished: {len(hung)}")
for name in hung:
    print("  " + name)
