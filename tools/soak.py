"""``make soak``: the whole suite (tests and notebooks), N times from a clean clone, in random order, on a
quiet machine and beside a busy neighbour; prints how often each test failed.

Why: a check that fails once in twenty runs passes a single CI run and then fails a learner's. The only
way to find such checks is to run everything many times, in orders and under loads that a single run
never sees. A failure found here is fixed at its cause, never retried away.

The clone lives in a fresh private temporary directory (mode 700, as ``mktemp -d`` makes), so a test
that depends on where the checkout sits fails here as it would for a learner. "busy" runs two processes
that spin on a core each for the whole run, the "busy neighbour" of the course's robustness target.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

CONDITIONS = ("quiet", "busy")
SPIN = "while True: pass"


def failed_tests(junit_xml: Path, lines: int = 12) -> dict[str, str]:
    """The tests that failed or errored in one pytest JUnit XML report: each id ("file::name") with the
    last ``lines`` lines of its report, printed as the run ends so that a failure's cause outlives the clone."""
    failed = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            text = (problem.text or problem.get("message", "")).strip().splitlines()
            failed[f"{case.get('classname', '')}::{case.get('name', '')}"] = "\n".join(text[-lines:])
    return failed


def summary(failures: dict[str, Counter], runs: dict[str, int]) -> str:
    """A table: per test that failed at least once, its failures per condition out of that condition's runs."""
    tests = sorted({t for counts in failures.values() for t in counts})
    conditions = list(runs)
    lines = [f"{'test':<90} " + " ".join(f"{c:>8}" for c in conditions)]
    for test in tests:
        lines.append(f"{test:<90} " + " ".join(f"{failures[c][test]:>3}/{runs[c]:<4}" for c in conditions))
    total = sum(sum(counts.values()) for counts in failures.values())
    lines.append(f"{len(tests)} tests failed at least once; {total} failures in "
                 + ", ".join(f"{runs[c]} {c} runs" for c in conditions))
    return "\n".join(lines)


@contextmanager
def neighbour(condition: str):
    """Two processes spinning on a core each while the block runs, when ``condition`` is "busy"."""
    spinners = []
    if condition == "busy":
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True) for _ in range(2)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def clean_clone(source: Path, parent: Path) -> Path:
    """A clone of ``source``'s HEAD (committed work only) in ``parent``, set up by its own ``make install``."""
    repo = parent / "repo"
    subprocess.run(["git", "clone", "--quiet", str(source), str(repo)], check=True)
    install = subprocess.run(["make", "--no-print-directory", "install"], cwd=repo, capture_output=True, text=True)
    if install.returncode:
        raise SystemExit(f"make install failed in the clone:\n{install.stdout}{install.stderr}")
    return repo


def run_suite(repo: Path, seed: int, report: Path, extra: list[str]) -> tuple[int, float]:
    """One shuffled run of ``make test``'s pytest command; returns pytest's exit code and the wall time."""
    cmd = [str(repo / ".venv/bin/python"), "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile",
           "--nbval-lax", "--nbval-cell-timeout=300", "-p", "tools.shuffle", f"--shuffle-seed={seed}", f"--junitxml={report}",
           *extra, "tests", "chapters"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    started = time.monotonic()
    code = subprocess.run(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL).returncode
    return code, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per condition (default 5)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma-separated, from {', '.join(CONDITIONS)} (default both)")
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository to clone (default: this checkout)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the JUnit reports")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    conditions = [c for c in args.conditions.split(",") if c]
    if not conditions or any(c not in CONDITIONS for c in conditions):
        parser.error(f"--conditions takes {', '.join(CONDITIONS)}, got {args.conditions!r}")

    parent = Path(tempfile.mkdtemp(prefix="soak-"))  # mode 700
    try:
        repo = clean_clone(args.source, parent)
        failures = {c: Counter() for c in conditions}
        runs = dict.fromkeys(conditions, 0)
        for condition in conditions:
            for i in range(args.runs):
                seed = random.randrange(2**31)
                report = parent / f"{condition}-{i}.xml"
                with neighbour(condition):
                    code, seconds = run_suite(repo, seed, report, args.pytest_args)
                failed = failed_tests(report) if report.exists() else {f"pytest exited {code}, no report": ""}
                failures[condition].update(failed.keys())
                runs[condition] += 1
                print(f"{condition} run {i + 1}/{args.runs}: seed {seed}, {seconds:.0f} s, "
                      f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}", flush=True)
                for test, text in failed.items():
                    print(f"--- {test}\n{text}", flush=True)
        print(summary(failures, runs))
        return 1 if any(failures.values()) else 0
    finally:
        if args.keep:
            print(f"kept {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
