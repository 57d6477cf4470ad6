#!/usr/bin/env python3
"""report.py BUILDDIR:LABEL:SUITE[,SUITE]... - sum the TAP reports of every suite.

For each build dir, every test that meson defines in the named suites must have run
(meson-logs/testlog.json) and left a TAP report (tests/results/NAME.tap) with at
least one test in it. A suite that did not run, ran no test, was skipped as a whole,
or exited non-zero without a failing test in its report counts as one failure.
Ends with the line 'N passed, N failed, N skipped'; exits 1 on any failure.
"""
import json
import os
import subprocess
import sys


def tap_counts(path):
    passed = failed = skipped = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("ok "):
                if "# SKIP" in line:
                    skipped += 1
                else:
                    passed += 1
            elif line.startswith("not ok "):
                failed += 1
    return passed, failed, skipped


def defined_tests(build, suites):
    out = subprocess.run(["meson", "introspect", "--tests", build],
                         capture_output=True, text=True, check=True).stdout
    names = []
    for t in json.loads(out):
        if any(s.split(":")[-1] in suites for s in t["suite"]):
            names.append(t["name"])
    return names


def run_log(build):
    log = {}
    path = os.path.join(build, "meson-logs", "testlog.json")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    t = json.loads(line)
                    # meson names a test "project:suite / name" when it shows suites
                    log[t["name"].split(" / ")[-1]] = t["result"]
    return log


def main(argv):
    total = [0, 0, 0]
    for spec in argv:
        build, label, suites = spec.split(":")
        suites = suites.split(",")
        try:
            names = defined_tests(build, suites)
        except Exception as e:  # build dir unusable: nothing could run
            print(f"{label}: cannot list tests in {build}: {e}")
            total[1] += 1
            continue
        if not names:
            print(f"{label}: no suite defined for {','.join(suites)}")
            total[1] += 1
        log = run_log(build)
        for name in names:
            tap = os.path.join(build, "tests", "results", name + ".tap")
            result = log.get(name)
            note = ""
            p = f = s = 0
            if result is None:
                note, f = "did not run", 1
            elif not os.path.exists(tap):
                note, f = f"left no report (meson: {result})", 1
            else:
                p, f, s = tap_counts(tap)
                if p + f + s == 0:
                    note, f = f"ran no test (meson: {result})", 1
                elif result == "SKIP":
                    note, f = "skipped as a whole", f + 1
                elif result != "OK" and f == 0:
                    note, f = f"exited {result} with no failing test in its report", 1
            total[0] += p
            total[1] += f
            total[2] += s
            line = f"{label}/{name}: {p} passed, {f} failed, {s} skipped"
            print(line + (f"  <- {note}" if note else ""))
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
