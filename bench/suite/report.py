"""Everything the suite writes after measuring: results.json, report.md, the charts, the stdout table.

Charts and the report are drawn from the rows alone, so `report.py RESULTS_DIR`
redraws them from a results.json without running anything again.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rows import Row

COLUMNS = ["case", "Veloq", "baseline or peer", "ratio", "goal", "met?"]


def format_number(value: float) -> str:
    magnitude = abs(value)
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= bound:
            return f"{value / bound:.3g}{suffix}"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def table_cells(row: Row) -> list[str]:
    if row["status"] == "ok" and row["veloq"] is not None:
        veloq = f"{format_number(row['veloq'])} {row['metric']}".strip()
    else:
        veloq = row["note"] or row["status"]
    if row.get("baseline") is not None:
        peer = f"{row['baseline_name'] or 'baseline'}: {format_number(row['baseline'])}"
    else:
        peer = row.get("baseline_name") or "—"
    ratio = f"{row['ratio']:.2f}" if row.get("ratio") is not None else "—"
    goal = row.get("goal") or "—"
    if not row.get("goal") or row["status"] != "ok":
        met = "—"
    else:
        met = {True: "yes", False: "NO", None: "?"}[row.get("met")]
    return [row["case"], veloq, peer, ratio, goal, met]


def summary_line(rows: list[Row]) -> str:
    judged = [r for r in rows if r["status"] == "ok" and r.get("goal") and r.get("met") is not None]
    met = sum(1 for r in judged if r["met"])
    missing = sum(1 for r in rows if r["status"] == "missing")
    failed = sum(1 for r in rows if r["status"] == "failed")
    return (f"{len(rows)} rows: {met} of {len(judged)} judged goals met, "
            f"{missing} missing, {failed} failed")


def markdown_table(rows: list[Row]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(escape(c) for c in table_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
    cells = [COLUMNS] + [table_cells(r) for r in rows]
    widths = [min(max(len(line[i]) for line in cells), 60) for i in range(len(COLUMNS))]
    out = []
    for n, line in enumerate(cells):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_report(out: Path, meta: dict, rows: list[Row]) -> None:
    build = meta.get("build", {})
    machine = meta.get("machine", {})
    lines = [
        "# Veloq per-core benchmark suite",
        "",
        f"- date (UTC): {meta.get('date')}",
        f"- command: `{meta.get('command')}`",
        f"- mode: {'quick' if meta.get('quick') else 'full'}, {meta.get('repeats')} run(s) per "
        f"measurement, medians reported; took {meta.get('elapsed_seconds', 0):.0f} s",
        f"- machine: {machine.get('cpu_model')} ({machine.get('cpus')} CPUs), kernel "
        f"{machine.get('kernel')}, {machine.get('memory_gib')} GiB, liburing "
        f"{machine.get('liburing')}, {machine.get('compiler')}",
        f"- build: **{build.get('flavour')}** ({build.get('reason')})",
        f"- commit: {machine.get('git_commit')}{' with uncommitted changes' if machine.get('git_dirty') else ''}",
    ]
    for flavour, info in build.get("candidates", {}).items():
        score = info.get("score")
        lines.append(f"  - {flavour}: {info.get('status')}"
                     + (f", score {score:.4g}" if isinstance(score, (int, float)) else "")
                     + (f" ({info['note']})" if info.get("note") else ""))
    lines += [
        "",
        "Ratio above 1 means Veloq wins (veloq/baseline, or baseline/veloq when lower is better).",
        "",
        markdown_table(rows),
        "",
        summary_line(rows),
        "",
        *client_cpu_lines(rows),
        *round_lines(rows),
        "![ratio per case](ratio_per_case.png)",
        "",
        "![echo throughput vs connections](echo_throughput_vs_conns.png)",
        "",
        "Raw JSON of every run is in `raw/`, every command line and its output in `logs/`.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def client_cpu_lines(rows: list[Row]) -> list[str]:
    """How busy the echo load client's core was: near 100% it, not the server, set the pace."""
    lines = []
    for row in rows:
        extra = row.get("extra") or {}
        ours, theirs = extra.get("veloq_client_cpu_percent"), extra.get("baseline_client_cpu_percent")
        if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
            rounds = extra.get("round_ratios") or []
            within = f"; {within_rounds(rounds)}" if rounds else ""
            lines.append(f"- {row['case']}: load client's core busy {ours:.0f}%"
                         f"{turns_note(extra.get('veloq_client_turns_per_rt'))} against Veloq, "
                         f"{theirs:.0f}%{turns_note(extra.get('baseline_client_turns_per_rt'))} against "
                         f"{row.get('baseline_name')}{within}")
    if lines:
        lines = ["Echo load client CPU (a client near 100% caps every server at the same rate), its loop turns "
                 "per round trip (fewer when replies come in larger batches), and the ratio within each round "
                 "(rounds far apart mean the VM changed speed between runs):", ""] + lines + [""]
    return lines


def round_lines(rows: list[Row]) -> list[str]:
    """The ratio within each round of rows measured in rounds that the echo lines above leave out."""
    lines = []
    for row in rows:
        extra = row.get("extra") or {}
        rounds = extra.get("round_ratios") or []
        if rounds and not isinstance(extra.get("veloq_client_cpu_percent"), (int, float)):
            lines.append(f"- {row['case']}: {within_rounds(rounds)}")
    if lines:
        lines = ["Rounds (rounds far apart mean the VM changed speed between them):", ""] + lines + [""]
    return lines


def within_rounds(ratios: list[float]) -> str:
    """'ratio within each round 1.07, 0.98, 0.54'."""
    return "ratio within each round " + ", ".join(f"{r:.2f}" for r in ratios)


def turns_note(value) -> str:
    """' (0.040 turns per round trip)', or nothing when the client did not say."""
    return f" ({value:.3f} turns per round trip)" if isinstance(value, (int, float)) else ""


def goal_ratio(goal: str | None) -> float | None:
    match = re.search(r"ratio\s*>=?\s*([0-9.]+)", goal or "")
    return float(match.group(1)) if match else None


def draw_charts(out: Path, rows: list[Row]) -> list[str]:
    """Both PNGs; returns a note per chart that could not be drawn (matplotlib missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["matplotlib not installed: no charts (apt-get install python3-matplotlib)"]
    _ratio_chart(plt, out / "ratio_per_case.png", rows)
    _echo_chart(plt, out / "echo_throughput_vs_conns.png", rows)
    return []


def _ratio_chart(plt, path: Path, rows: list[Row]) -> None:
    shown = [r for r in rows if r.get("ratio") is not None]
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.32 * len(shown) + 1.2)))
    if not shown:
        ax.text(0.5, 0.5, "no ratios measured yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        labels = [r["case"] for r in shown]
        colours = ["#2e7d32" if r.get("met") else "#c62828" if r.get("met") is False else "#78909c"
                   for r in shown]
        positions = range(len(shown))
        ax.barh(positions, [r["ratio"] for r in shown], color=colours)
        for y, row in zip(positions, shown):
            target = goal_ratio(row.get("goal"))
            if target is not None:
                ax.plot([target, target], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ratio (> 1: Veloq wins); black tick: goal")
        ax.set_title("Veloq vs baseline, per case (green: goal met, red: not met, grey: no goal)",
                     fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _echo_chart(plt, path: Path, rows: list[Row]) -> None:
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        conns = (row.get("extra") or {}).get("conns")
        if row.get("suite_case") != "echo" or conns is None:
            continue
        # A row's two figures are its median-ratio round; the chart shows each
        # server's median over the rounds where the row has them.
        extra = row.get("extra") or {}
        ours = extra.get("veloq_median_rps", row.get("veloq"))
        theirs = extra.get("baseline_median_rps", row.get("baseline"))
        if ours is not None:
            series.setdefault("veloq-echo (1 shard)", {})[conns] = ours
        if theirs is not None:
            series.setdefault(row["baseline_name"], {})[conns] = theirs
    fig, ax = plt.subplots(figsize=(8, 5))
    if not series:
        ax.text(0.5, 0.5, "no echo runs measured yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        for name, points in series.items():
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
        ticks = sorted({x for points in series.values() for x in points})
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("connections (client on CPU 1, server on CPU 0)")
        ax.set_ylabel("round trips / s (64-byte messages)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.set_title("Echo throughput vs connection count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out: Path, meta: dict, rows: list[Row]) -> list[str]:
    (out / "results.json").write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    notes = draw_charts(out, rows)
    write_report(out, meta, rows)
    return notes


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: report.py RESULTS_DIR   (redraws report.md and charts from results.json)")
        return 0 if len(argv) == 2 else 2
    out = Path(argv[1])
    data = json.loads((out / "results.json").read_text())
    rows = data.pop("results")
    for note in write_all(out, data, rows):
        print(note)
    print(text_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
