#!/usr/bin/env python3
"""Veloq per-core benchmark suite: build, run every case, write results and report.

Started by bench/run-suite (which installs the packages first); see
bench/suite/README.md for what each case measures. Standard library plus
matplotlib (for the charts) only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build import FLAVOURS, BuildChoice, choose_build  # noqa: E402
from cases import CASES, Context, Measured, select_cases  # noqa: E402
from report import summary_line, text_table, write_all  # noqa: E402

FULL_BUDGET_SECONDS = 15 * 60
QUICK_BUDGET_SECONDS = 2 * 60


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run-suite",
        description="Veloq per-core benchmark suite: builds release flavours, runs the cases, "
                    "writes results.json, report.md and charts.")
    parser.add_argument("--quick", action="store_true",
                        help="short runs, 1 repeat, O3 build only (under 2 minutes)")
    parser.add_argument("--case", action="append", default=[], metavar="NAME",
                        help="run only this case (repeatable, or comma-separated); see --list")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default results/<UTC timestamp>/; "
                             "results/latest links to the newest run under results/)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install missing packages (handled by run-suite)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="runs per measurement, median kept (default 3, 1 with --quick)")
    parser.add_argument("--flavour", choices=["auto", *FLAVOURS], default="auto",
                        help="build flavour; auto builds O2, O3 and lto and keeps the fastest "
                             "on veloq-bench-spawn and veloq-bench-nop (O3 only with --quick)")
    parser.add_argument("--build-dir", type=Path, metavar="DIR",
                        help="use this already built meson tree; nothing is built")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.case = [name for entry in args.case for name in entry.split(",") if name]
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def list_cases() -> None:
    width = max(len(c.name) for c in CASES)
    for case in CASES:
        timing = (f" [{case.seconds:g}s per run, {case.quick_seconds:g}s quick]"
                  if case.seconds else "")
        aliases = f" (also: {', '.join(case.aliases)})" if case.aliases else ""
        print(f"{case.name.ljust(width)}  {case.description}{timing}{aliases}")


def first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if done.returncode == 0 and text else None


def machine_info(repo: Path) -> dict:
    cpu_model = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_gib = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "kernel": platform.release(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "liburing": first_line(["pkg-config", "--modversion", "liburing"]),
        "compiler": first_line(["g++", "--version"]),
        "fio": first_line(["fio", "--version"]),
        "git_commit": first_line(["git", "-C", str(repo), "rev-parse", "HEAD"]),
        # Uncommitted changes to tracked files are built and measured too.
        "git_dirty": first_line(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]) is not None,
    }


def user_arguments(argv: list[str]) -> list[str]:
    """argv without the --repo that run-suite adds, as the user typed it."""
    if len(argv) >= 2 and argv[0] == "--repo":
        return argv[2:]
    return argv


def link_latest(repo: Path, out: Path) -> None:
    """results/latest points at the newest run under results/; a run written
    elsewhere (--out /tmp/x) leaves it pointing at the last one there."""
    results = repo / "results"
    if out.resolve().parent != results.resolve():
        return
    latest = results / "latest"
    if latest.exists() and not latest.is_symlink():
        print(f"note: {latest} is not a symlink; left as it is")
        return
    target = os.path.relpath(out.resolve(), results.resolve())
    temporary = results / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, latest)


def pick_build(args: argparse.Namespace, out: Path) -> BuildChoice:
    if args.build_dir is not None:
        return BuildChoice("given", args.build_dir.resolve(), "--build-dir: prebuilt tree, not built")
    if args.flavour != "auto":
        flavours = [args.flavour]
    elif args.quick:
        flavours = ["O3"]
    else:
        flavours = list(FLAVOURS)
    return choose_build(args.repo, flavours, out / "logs", out / "raw")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        list_cases()
        return 0
    selected = select_cases(args.case)
    repo = args.repo.resolve()
    started_at = datetime.now(timezone.utc)
    out = (args.out or repo / "results" / started_at.strftime("%Y%m%dT%H%M%SZ")).resolve()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    print(f"veloq suite: {'quick' if args.quick else 'full'} run of "
          f"{', '.join(c.name for c in selected)} -> {out}")

    # Before building: the commit measured is the one built, even if HEAD moves during the run.
    machine = machine_info(repo)
    choice = pick_build(args, out)
    print(f"build: using {choice.flavour} in {choice.directory} ({choice.reason})")

    repeats = args.repeats or (1 if args.quick else 3)
    ctx = Context(repo=repo, build_dir=choice.directory, out=out, quick=args.quick,
                  repeats=repeats)
    plans = [(case, case.plan(ctx, case.quick_seconds if args.quick else case.seconds))
             for case in selected]
    total = sum(len(plan.steps) for _, plan in plans)
    budget = QUICK_BUDGET_SECONDS if args.quick else FULL_BUDGET_SECONDS

    measuring_started = time.monotonic()

    def measuring_seconds() -> float:
        # A first-time build of tokio-echo happens mid-run; it is not measuring time.
        return time.monotonic() - measuring_started - ctx.cache.get("build_seconds", 0)

    rows = []
    number = 0
    interrupted = False
    try:
        for case, plan in plans:
            results: dict = {}
            try:
                for step in plan.steps:
                    if interrupted:
                        break
                    number += 1
                    print(f"[{number}/{total}] {step.label} ... ", end="", flush=True)
                    step_started = time.monotonic()
                    try:
                        measured = step.run()
                    except KeyboardInterrupt:
                        print("interrupted")
                        interrupted = True
                        break
                    results[step.key] = measured
                    print(f"{measured.progress()}  ({time.monotonic() - step_started:.1f} s)",
                          flush=True)
                    if measuring_seconds() > budget and ctx.repeats > 1:
                        ctx.repeats = 1
                        print(f"note: past the {budget // 60} min budget; one run per "
                              f"measurement from here on")
                for step in plan.steps:
                    results.setdefault(step.key, Measured(status="failed", note="not run"))
                rows.extend(plan.finish(results))
            finally:
                plan.cleanup()
    finally:
        elapsed = measuring_seconds()

    meta = {
        "suite": "veloq per-core benchmark suite",
        "date": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(["bench/run-suite", *user_arguments(argv)]),
        "quick": args.quick,
        "repeats": repeats,
        "cases": [c.name for c in selected],
        "elapsed_seconds": round(elapsed, 1),
        "interrupted": interrupted,
        "machine": machine,
        "build": choice.as_json(),
    }
    for note in write_all(out, meta, rows):
        print(f"note: {note}")
    link_latest(repo, out)

    print()
    print(text_table(rows))
    print()
    print(summary_line(rows) + f"; measured in {elapsed:.0f} s (budget {budget // 60} min)")
    print(f"report: {out / 'report.md'}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
