"""Release builds for the suite and the choice of the fastest one.

Each flavour is its own meson build directory under build-bench/. The suite
builds the candidates, runs the spawn and NOP micro benchmarks (quick, Veloq's
side) in each, and keeps the flavour with the best geometric mean for every
later case.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from processes import pinned, run_command

COMMON_OPTIONS = ["-Dbuildtype=release", "-Dtests=false", "-Dexamples=true", "-Dbenchmarks=true"]
FLAVOURS: dict[str, list[str]] = {
    "O2": ["-Doptimization=2"],
    "O3": ["-Doptimization=3"],
    "lto": ["-Doptimization=3", "-Db_lto=true"],
}
BUILD_TIMEOUT = 45 * 60


@dataclass
class BuildChoice:
    flavour: str
    directory: Path
    reason: str
    candidates: dict[str, dict] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"flavour": self.flavour, "directory": str(self.directory), "reason": self.reason,
                "candidates": self.candidates}


def build_flavour(repo: Path, flavour: str, logs: Path) -> dict:
    """meson setup (first time only) and ninja -k 0, so the binaries that compile
    are usable even while other parts of the tree do not build yet."""
    directory = repo / "build-bench" / flavour
    log = logs / f"build-{flavour}.log"
    if not (directory / "build.ninja").exists():
        setup = run_command(["meson", "setup", str(directory), *COMMON_OPTIONS, *FLAVOURS[flavour]],
                            timeout=600, log=log, cwd=repo)
        if not setup.ok:
            return {"status": "failed", "note": f"meson setup failed, see {log.name}"}
    jobs = str(max(1, len(os.sched_getaffinity(0))))
    ninja = run_command(["ninja", "-C", str(directory), "-k", "0", "-j", jobs],
                        timeout=BUILD_TIMEOUT, log=log, cwd=repo)
    status = "ok" if ninja.ok else "partial"
    return {"status": status, "seconds": round(ninja.seconds, 1),
            "note": "" if ninja.ok else f"some targets failed, see {log.name}"}


# The two paths every case rests on: a task being scheduled (spawn + join) and
# an operation going through the shard's ring (NOPs, Veloq's side only). The
# flavour is chosen on Veloq's own figures; each case then compares it with a
# baseline built with the same flags.
SCORE_RUNS = [("spawn", ["veloq-bench-spawn", "--quick"]),
              ("nop", ["veloq-bench-nop", "--quick", "--only", "veloq"])]


def score_figures(directory: Path, raw: Path, logs: Path, flavour: str) -> list[float] | None:
    """Each row's Veloq figure (inverted when lower is better) from the scoring runs."""
    figures = []
    for name, command in SCORE_RUNS:
        binary = directory / "bench" / command[0]
        if not binary.exists():
            return None
        out = raw / f"flavour-{flavour}-{name}.json"
        done = run_command(pinned("0,1", [str(binary), *command[1:], "--json", str(out)]),
                           timeout=120, log=logs / f"flavour-{flavour}.log")
        if not done.ok or not out.exists():
            return None
        try:
            rows = json.loads(out.read_text()).get("results", [])
        except (OSError, ValueError):
            return None
        for row in rows:
            value = row.get("veloq")
            if isinstance(value, (int, float)) and value > 0:
                figures.append(value if row.get("higher_is_better", True) else 1.0 / value)
    return figures or None


def flavour_score(directory: Path, raw: Path, logs: Path, flavour: str) -> float | None:
    """Geometric mean of the scoring runs' figures: relative between flavours only."""
    figures = score_figures(directory, raw, logs, flavour)
    if figures is None:
        return None
    return math.exp(sum(math.log(f) for f in figures) / len(figures))


def choose_build(repo: Path, flavours: list[str], logs: Path, raw: Path,
                 say=print) -> BuildChoice:
    candidates: dict[str, dict] = {}
    for flavour in flavours:
        say(f"build {flavour}: meson + ninja in build-bench/{flavour} ...")
        candidates[flavour] = build_flavour(repo, flavour, logs)
        say(f"build {flavour}: {candidates[flavour]['status']}")
    usable = [f for f in flavours if candidates[f]["status"] != "failed"]
    if not usable:
        return BuildChoice(flavours[0], repo / "build-bench" / flavours[0],
                           "every build failed; binaries will be reported missing", candidates)
    if len(usable) == 1:
        only = usable[0]
        return BuildChoice(only, repo / "build-bench" / only,
                           "only flavour built" if len(flavours) == 1 else "only flavour that built",
                           candidates)
    for flavour in usable:
        score = flavour_score(repo / "build-bench" / flavour, raw, logs, flavour)
        candidates[flavour]["score"] = score
        say(f"build {flavour}: score {score if score is None else f'{score:.4g}'}")
    scored = [f for f in usable if candidates[f].get("score") is not None]
    if not scored:
        fallback = "O3" if "O3" in usable else usable[0]
        return BuildChoice(fallback, repo / "build-bench" / fallback,
                           "veloq-bench-spawn or veloq-bench-nop missing or failed in every flavour; defaulted",
                           candidates)
    best = max(scored, key=lambda f: candidates[f]["score"])
    return BuildChoice(best, repo / "build-bench" / best,
                       "best geometric mean of Veloq's figures on veloq-bench-spawn and veloq-bench-nop, --quick",
                       candidates)
