"""Result rows: the contract's row shape plus the suite's own bookkeeping.

A row is a plain dict so it goes to results.json unchanged:
  case, metric, veloq, baseline_name, baseline, ratio, higher_is_better, goal, runs, extra
  (as in the contract) and
  suite_case  which registry case produced it
  source      the binary the figure came from
  status      "ok", "missing" (binary not built, or it rejects a flag) or "failed"
  note        why a row is missing or failed
  met         True/False when the goal could be judged, None otherwise
"""

from __future__ import annotations

import re
import statistics
from typing import Any

Row = dict[str, Any]

_CLAUSE = re.compile(r"^\s*(ratio|veloq|baseline)\s*(>=|<=|>|<|==)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)"
                     r"\s*([kMG](?![a-zA-Z]))?")
_SCALE = {None: 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def ratio_of(veloq: float | None, baseline: float | None, higher_is_better: bool) -> float | None:
    """Contract ratio: above 1 always means Veloq wins."""
    if veloq is None or baseline is None or veloq <= 0 or baseline <= 0:
        return None
    return veloq / baseline if higher_is_better else baseline / veloq


def judge_goal(goal: str | None, row: Row) -> bool | None:
    """Judge a goal such as "ratio >= 0.33 and veloq >= 30M/s" against a row.

    Clauses are joined by "and"; numbers may carry k/M/G and any unit after it
    (the unit is not checked, the row's metric is assumed). A goal the suite
    cannot read gives None ("?" in the report) instead of a guess.
    """
    if not goal:
        return None
    verdict = True
    for clause in re.split(r"\band\b", goal):
        match = _CLAUSE.match(clause)
        if match is None:
            return None
        name, op, number, suffix = match.groups()
        value = row.get(name)
        if value is None:
            return None
        bound = float(number) * _SCALE[suffix]
        holds = {">=": value >= bound, "<=": value <= bound, ">": value > bound,
                 "<": value < bound, "==": value == bound}[op]
        verdict = verdict and holds
    return verdict


def goal_subjects(goal: str) -> set[str]:
    """What the readable clauses of a goal judge: "ratio", "veloq" or "baseline"."""
    return {match.group(1) for clause in re.split(r"\band\b", goal) if (match := _CLAUSE.match(clause))}


def make_row(suite_case: str, case: str, metric: str, veloq: float | None, *,
             baseline_name: str | None = None, baseline: float | None = None,
             higher_is_better: bool = True, goal: str | None = None, runs: int = 0,
             source: str = "", status: str = "ok", note: str = "",
             extra: dict | None = None) -> Row:
    row: Row = {
        "suite_case": suite_case, "case": case, "metric": metric, "veloq": veloq,
        "baseline_name": baseline_name, "baseline": baseline,
        "ratio": ratio_of(veloq, baseline, higher_is_better),
        "higher_is_better": higher_is_better, "goal": goal, "runs": runs,
        "source": source, "status": status, "note": note, "extra": extra or {},
    }
    row["met"] = judge_goal(goal, row) if status == "ok" else None
    return row


def missing_row(suite_case: str, case: str, note: str, *, metric: str = "",
                status: str = "missing", **fields: Any) -> Row:
    """A row whose Veloq figure could not be measured; `note` says why."""
    return make_row(suite_case, case, metric, None, status=status, note=note, **fields)


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def median_ratio_index(ratios: list[float]) -> int:
    """The index of the median ratio (the lower one of an even count): how a
    ratio goal picks the run it shows, both figures from that one run."""
    order = sorted(range(len(ratios)), key=lambda i: ratios[i])
    return order[(len(order) - 1) // 2]


def merge_bench_runs(suite_case: str, source: str, runs: list[list[Row]],
                     label: str = "") -> list[Row]:
    """Fold the "results" rows of several runs of one bench binary into median rows.

    Rows are matched by their "case". When every run measured both sides and
    the row's goal (if any) judges the ratio, the row is the run with the
    median ratio (the lower one of an even count): a run alternates Veloq and
    its baseline within one stretch of time, while the VM may change speed
    between runs, and separate medians of the two columns could pair one run's
    Veloq figure with another run's baseline. Otherwise (a goal on Veloq's own
    figure alone, or a run without a baseline) veloq and baseline are the
    medians over the runs. Either way the ratio is recomputed from the two
    figures shown, so the three numbers in the report agree with each other,
    and "met" is judged on them. The row's extra is the median run's (or the
    first run's), plus `run_ratios` with every run's ratio. A binary's own
    "met" (the majority over the runs) counts only when its goal text cannot
    be parsed.
    """
    by_case: dict[str, list[Row]] = {}
    for run in runs:
        for row in run:
            by_case.setdefault(str(row.get("case", "?")), []).append(row)
    merged = []
    for case, rows in by_case.items():
        first = rows[0]
        higher = bool(first.get("higher_is_better", True))
        ratios = [ratio_of(_number(r.get("veloq")), _number(r.get("baseline")), higher) for r in rows]
        run_ratios = {}
        shown = first  # the run whose extra the row carries
        goal = first.get("goal")
        if all(ratio is not None for ratio in ratios) and (not goal or "ratio" in goal_subjects(goal)):
            shown = rows[median_ratio_index(ratios)]
            veloq, baseline = _number(shown.get("veloq")), _number(shown.get("baseline"))
            run_ratios = {"run_ratios": [round(ratio, 4) for ratio in ratios]}
        else:
            veloq = median_or_none([_number(r.get("veloq")) for r in rows])
            baseline = median_or_none([_number(r.get("baseline")) for r in rows])
        # "spawn: spawn_join" says nothing more than "spawn_join": the label goes
        # only where the row's own name does not already start with it.
        name = case if label and case.startswith(label.split(":")[0]) else f"{label}{case}"
        row = make_row(suite_case, name, str(first.get("metric", "")), veloq,
                       baseline_name=first.get("baseline_name"), baseline=baseline,
                       higher_is_better=higher, goal=goal, runs=len(rows),
                       source=source,
                       extra={"inner_runs": shown.get("runs"), **(shown.get("extra") or {}), **run_ratios})
        if row["ratio"] is None and veloq is not None:
            row["ratio"] = median_or_none([_number(r.get("ratio")) for r in rows])
            row["met"] = judge_goal(row["goal"], row)
        if row["met"] is None and isinstance(first.get("met"), bool):
            row["met"] = sum(bool(r.get("met")) for r in rows) * 2 > len(rows)
        merged.append(row)
    return merged


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
