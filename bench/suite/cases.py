"""The suite's cases: what each one measures, and the registry `--case` and `--list` read.

A case turns into a Plan: a list of Steps (each printed as one progress line:
a benchmark binary run `ctx.repeats` times, or one round of every server or
reader) and a `finish` that turns the steps' measurements into report rows.
Planning has no side effects, so the suite can count every step before
running the first one.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from processes import (ListeningServer, ServerFailed, free_port, pinned, read_status_kib,
                       run_command)
from report import format_number
from rows import Row, make_row, median_ratio_index, merge_bench_runs, missing_row, ratio_of

SERVER_CPU = "0"
CLIENT_CPU = "1"
MICRO_CPUS = "0,1"
NOT_BUILT = "missing: not built yet"


class Missing(Exception):
    """A binary the step needs is not there (or does not accept a flag yet)."""


class Failed(Exception):
    """The binary is there but the run went wrong (exit code, timeout, bad JSON)."""


@dataclass
class Measured:
    value: float | None = None
    unit: str = ""
    status: str = "ok"
    note: str = ""
    data: Any = None
    text: str = ""  # what the progress line shows, when not the value

    def progress(self) -> str:
        if self.text:
            return self.text
        if self.status != "ok":
            return f"{self.status}: {self.note}" if not self.note.startswith(self.status) else self.note
        if self.value is None:
            return "ok"
        return f"{format_number(self.value)} {self.unit}".strip()


@dataclass
class Step:
    key: Any
    label: str
    run: Callable[[], Measured]


@dataclass
class Plan:
    steps: list[Step]
    finish: Callable[[dict[Any, Measured]], list[Row]]
    cleanup: Callable[[], None] = lambda: None


@dataclass
class Context:
    """What every case may use: where binaries are, where output goes, how long to run."""

    repo: Path
    build_dir: Path
    out: Path
    quick: bool
    repeats: int
    cache: dict = field(default_factory=dict)

    @property
    def raw(self) -> Path:
        return self.out / "raw"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def binary(self, relative: str) -> Path | None:
        """A built program at its contract path in the build dir, or anywhere under it."""
        expected = self.build_dir / relative
        if expected.is_file():
            return expected
        name = Path(relative).name
        if self.build_dir.is_dir():
            for found in sorted(self.build_dir.rglob(name)):
                if found.is_file() and found.stat().st_mode & 0o111:
                    return found
        return None

    def require(self, relative: str) -> Path:
        path = self.binary(relative)
        if path is None:
            raise Missing(f"{NOT_BUILT} ({Path(relative).name})")
        return path

    def tokio_echo(self) -> Path:
        """tokio-echo from the build dir if a build put it there, else its own build.sh."""
        if "tokio" in self.cache:
            found, note = self.cache["tokio"]
        else:
            found, note = self._build_tokio()
            self.cache["tokio"] = (found, note)
        if found is None:
            raise Missing(note)
        return found

    def _build_tokio(self) -> tuple[Path | None, str]:
        prebuilt = self.build_dir / "bench" / "baselines" / "tokio-echo" / "tokio-echo"
        if prebuilt.is_file():
            return prebuilt, ""
        script = self.repo / "bench" / "baselines" / "tokio-echo" / "build.sh"
        if not script.is_file():
            return None, f"{NOT_BUILT} (bench/baselines/tokio-echo/build.sh)"
        outdir = self.repo / "build-bench" / "tokio-echo"
        outdir.mkdir(parents=True, exist_ok=True)
        done = run_command(["bash", str(script), str(outdir)], timeout=30 * 60,
                           log=self.logs / "build-tokio-echo.log", cwd=self.repo)
        # Building is not measuring: the time budget leaves it out.
        self.cache["build_seconds"] = self.cache.get("build_seconds", 0) + done.seconds
        lines = done.stdout.strip().splitlines()
        if not done.ok or not lines or not Path(lines[-1].strip()).is_file():
            return None, "missing: tokio-echo build failed, see logs/build-tokio-echo.log"
        return Path(lines[-1].strip()), ""

    def run_bench(self, name: str, args: list[str], tag: str, cpus: str | None = MICRO_CPUS,
                  quick: bool | None = None, flag_is_new: bool = False) -> list[list[Row]]:
        """Run bench/NAME `repeats` times with --json and return each run's "results" rows.

        With flag_is_new, a run that fails is taken as the binary not accepting
        `args` yet, which is a missing row rather than a failure.
        """
        return [self.run_bench_once(name, args, tag, number, cpus, quick, flag_is_new)
                for number in range(1, self.repeats + 1)]

    def run_bench_once(self, name: str, args: list[str], tag: str, number: int,
                       cpus: str | None = MICRO_CPUS, quick: bool | None = None,
                       flag_is_new: bool = False) -> list[Row]:
        """One run of bench/NAME (run `number` of its tag): its "results" rows."""
        binary = self.require(f"bench/{name}")
        quick = self.quick if quick is None else quick
        timeout = 60 if quick else 180
        out = self.raw / f"{tag}-{number}.json"
        out.unlink(missing_ok=True)
        argv = [str(binary), *args, *(["--quick"] if quick else []), "--json", str(out)]
        done = run_command(pinned(cpus, argv), timeout=timeout, log=self.logs / f"{tag}.log")
        if not done.ok or not out.exists():
            if done.timed_out:
                why = f"timed out after {timeout}s"
            elif done.returncode != 0:
                why = f"exit {done.returncode}"
            else:
                why = "exit 0 without writing --json"
            if flag_is_new:
                raise Missing(f"missing: {name} does not take {' '.join(args)} ({why})")
            raise Failed(f"{name}: {why}, see logs/{tag}.log")
        try:
            rows = json.loads(out.read_text())["results"]
        except (ValueError, KeyError, TypeError) as error:
            raise Failed(f"{name}: bad JSON in {out.name}: {error}") from error
        return [r for r in rows if isinstance(r, dict)]


def guarded(run: Callable[[], Measured]) -> Callable[[], Measured]:
    """Turn Missing/Failed (and stray errors) into a Measured the finish step can report."""
    def step() -> Measured:
        try:
            return run()
        except Missing as why:
            return Measured(status="missing", note=str(why))
        except (Failed, ServerFailed) as why:
            return Measured(status="failed", note=str(why))
        except Exception as why:  # one broken step must not end the whole suite
            return Measured(status="failed", note=f"{type(why).__name__}: {why}")
    return step


def unavailable_rows(suite_case: str, case: str, measured: Measured, **kwargs) -> list[Row]:
    return [missing_row(suite_case, case, measured.note, status=measured.status, **kwargs)]


# micro: the in-process benchmarks, one case per binary


def micro_case(name: str, binary: str) -> Callable[["Context", float], Plan]:
    def plan(ctx: Context, seconds: float) -> Plan:
        def run() -> Measured:
            merged = merge_bench_runs(name, binary, ctx.run_bench(binary, [], f"micro-{name}"),
                                      label=f"{name}: ")
            if not merged:
                raise Failed(f"{binary} wrote no result rows")
            first = merged[0]
            return Measured(first["veloq"], f"{first['metric']} ({first['case']}, {len(merged)} rows)",
                            data=merged)

        def finish(results: dict[Any, Measured]) -> list[Row]:
            measured = results[name]
            if measured.status != "ok":
                return unavailable_rows(name, name, measured, source=binary)
            return measured.data

        return Plan([Step(name, f"{name} ({binary})", guarded(run))], finish)
    return plan


# echo: request/response over loopback against the baselines

ECHO_CONNS = [1, 50, 500]
ECHO_SIZE = 64
# Rounds of a full run. The VM can change speed inside a round and move that
# round's ratios far (seen: 0.54 between rounds of 1.07 and 0.98); the median
# of five short rounds stands two such rounds, where that of three stands one.
ECHO_ROUNDS = 5


def echo_rounds(ctx: Context) -> int:
    """Rounds to run: at least ECHO_ROUNDS, except when one run per measurement was asked for
    (--quick, --repeats 1, or past the time budget)."""
    return max(ctx.repeats, ECHO_ROUNDS) if ctx.repeats > 1 else 1


@dataclass
class EchoServer:
    key: str
    label: str
    find: Callable[[Context], Path]
    args: list[str]
    goal: str | None


ECHO_SERVERS = [
    EchoServer("veloq", "veloq-echo", lambda ctx: ctx.require("examples/echo/veloq-echo"),
               ["--shards", "1"], None),
    EchoServer("raw", "raw-uring-echo", lambda ctx: ctx.require("bench/baselines/raw-uring-echo"),
               [], "ratio >= 1.0"),
    EchoServer("epoll", "epoll-echo", lambda ctx: ctx.require("bench/baselines/epoll-echo"),
               [], "ratio >= 1.3"),
    EchoServer("tokio", "tokio-echo", lambda ctx: ctx.tokio_echo(), [], "ratio >= 1.3"),
]


def echo_run(ctx: Context, server: EchoServer, conns: int, seconds: float, tag: str,
             number: int) -> Measured:
    """One run of the load client against a fresh `server`: round trips per second."""
    client = ctx.require("bench/load/veloq-echo-load")
    program = server.find(ctx)
    port = free_port()
    out = ctx.raw / f"{tag}-{number}.json"
    out.unlink(missing_ok=True)
    argv = pinned(SERVER_CPU, [str(program), *server.args, "--port", str(port)])
    with ListeningServer(argv, log=ctx.logs / f"{tag}-server.log") as running:
        done = run_command(pinned(CLIENT_CPU, [
            str(client), "--host", "127.0.0.1", "--port", str(running.port or port),
            "--conns", str(conns), "--seconds", f"{seconds:g}", "--size", str(ECHO_SIZE),
            "--json", str(out)]), timeout=seconds + 60, log=ctx.logs / f"{tag}-client.log")
    if not done.ok:
        why = "timed out" if done.timed_out else f"exit {done.returncode}"
        raise Failed(f"veloq-echo-load {why}, see logs/{tag}-client.log")
    report = _client_report(out, done.stdout)
    if report.get("rps") is None:
        raise Failed(f"no round_trips/s from veloq-echo-load, see logs/{tag}-client.log")
    return Measured(float(report["rps"]), "rt/s",
                    data={"p99_us": report.get("p99_us"),
                          "client_cpu_percent": report.get("client_cpu_percent"),
                          "client_turns_per_rt": report.get("turns_per_round_trip")})


def run_round(number: int, sides: list[tuple[str, Callable[[], Measured]]]) -> Measured:
    """Round `number` (from 1): one run of every side, back to back, each round
    starting with the next side. The VM switches between fast and slow modes for
    minutes at a time; runs of all sides close together in time meet the same
    mode, where a side's runs taken all in a row could meet another one."""
    shift = (number - 1) % len(sides)
    runs = {key: guarded(run)() for key, run in sides[shift:] + sides[:shift]}
    text = ", ".join(f"{key} {m.progress()}" for key, m in runs.items())
    return Measured(status="ok", data=runs, text=text)


def echo_round(ctx: Context, conns: int, seconds: float, number: int) -> Measured:
    """Round `number` of every echo server at `conns` connections."""
    if number > echo_rounds(ctx):
        return Measured(status="skipped", note="skipped: past the time budget")
    return run_round(number, [
        (server.key, lambda s=server: echo_run(ctx, s, conns, seconds, f"echo-{s.key}-{conns}c", number))
        for server in ECHO_SERVERS])


def echo_median(rounds: list[Measured], key: str) -> Measured:
    """A server's runs over the rounds, as their median."""
    runs = [r.data[key] for r in rounds if r.status == "ok"]
    ok = [m for m in runs if m.status == "ok"]
    if not ok:
        return runs[0] if runs else Measured(status="failed", note="not run")

    def median_of(field: str) -> float | None:
        values = [float(m.data[field]) for m in ok if isinstance(m.data.get(field), (int, float))]
        return statistics.median(values) if values else None

    return Measured(statistics.median(m.value for m in ok), "rt/s",
                    data={"rps_runs": [m.value for m in ok],
                          "p99_us": median_of("p99_us"),
                          # Near 100: the load client's core, not the server, set the pace.
                          "client_cpu_percent": median_of("client_cpu_percent"),
                          # The client's loop turns per round trip: how finely the server's
                          # replies arrive (each turn costs the client a syscall).
                          "client_turns_per_rt": median_of("client_turns_per_rt")})


def round_pairs(rounds: list[Measured], key: str) -> list[tuple[Measured, Measured]]:
    """(Veloq's run, `key`'s run) of each round where both ran (echo's and odirect's rounds)."""
    pairs = []
    for r in rounds:
        if r.status != "ok":
            continue
        ours, peer = r.data.get("veloq"), r.data.get(key)
        if ours and peer and ours.status == "ok" and peer.status == "ok" and ours.value and peer.value:
            pairs.append((ours, peer))
    return pairs


def median_round(pairs: list[tuple[Measured, Measured]]) -> tuple[Measured, Measured, list[float]]:
    """The pair of the round with the median ratio (Veloq over the peer), and every round's ratio.

    A row shows both figures of that one round, as the micro benchmarks' rows
    are folded: a round's runs are close in time, while the VM may change speed
    between rounds, and separate medians could pair Veloq's run in one mode
    with the peer's in another."""
    ratios = [ratio_of(ours.value, theirs.value, True) for ours, theirs in pairs]
    ours, theirs = pairs[median_ratio_index(ratios)]
    return ours, theirs, ratios




def _client_report(path: Path, stdout: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    match = re.search(r"round_trips/s:\s*([0-9.eE+]+)", stdout)
    return {"rps": float(match.group(1))} if match else {}


def echo_plan(ctx: Context, seconds: float) -> Plan:
    rounds = echo_rounds(ctx)
    steps = [Step((conns, number), f"echo {conns} conns, round {number} of {rounds}",
                  lambda c=conns, n=number: echo_round(ctx, c, seconds, n))
             for conns in ECHO_CONNS for number in range(1, rounds + 1)]

    def finish(results: dict[Any, Measured]) -> list[Row]:
        rows = []
        for conns in ECHO_CONNS:
            per_round = [results[(conns, number)] for number in range(1, rounds + 1)]
            ours = echo_median(per_round, "veloq")
            for server in ECHO_SERVERS[1:]:
                peer = echo_median(per_round, server.key)
                case = f"echo {ECHO_SIZE}B {conns} conns vs {server.key}"
                common = dict(baseline_name=server.label, goal=server.goal, source="veloq-echo")
                unavailable = ours if ours.status != "ok" else peer
                pairs = round_pairs(per_round, server.key)
                if unavailable.status == "ok" and not pairs:
                    unavailable = Measured(status="failed", note="no round where both servers ran")
                if unavailable.status != "ok":
                    # The peer's figure is kept when it exists, so the throughput
                    # chart still shows the baselines while Veloq's side is missing.
                    row = missing_row("echo", case, unavailable.note, metric="round_trips/s",
                                      status=unavailable.status, **common,
                                      baseline=peer.value if peer.status == "ok" else None,
                                      extra={"conns": conns, "size": ECHO_SIZE})
                else:
                    # The client's readings come from the same round as the
                    # figures; each server's median is kept for the chart.
                    mine, theirs, ratios = median_round(pairs)
                    row = make_row("echo", case, "round_trips/s", mine.value, baseline=theirs.value,
                                   runs=len(pairs), **common,
                                   extra={"conns": conns, "size": ECHO_SIZE,
                                          "round_ratios": [round(r, 3) for r in ratios],
                                          "veloq_median_rps": ours.value,
                                          "baseline_median_rps": peer.value,
                                          "veloq_p99_us": mine.data.get("p99_us"),
                                          "baseline_p99_us": theirs.data.get("p99_us"),
                                          "veloq_client_cpu_percent": mine.data.get("client_cpu_percent"),
                                          "baseline_client_cpu_percent": theirs.data.get("client_cpu_percent"),
                                          "veloq_client_turns_per_rt": mine.data.get("client_turns_per_rt"),
                                          "baseline_client_turns_per_rt": theirs.data.get("client_turns_per_rt")})
                rows.append(row)
        return rows

    return Plan(steps, finish)


# odirect: 4 KiB random O_DIRECT reads, Veloq against fio on the same file

FIO_GOAL = "ratio >= 0.95"


def odirect_plan(ctx: Context, seconds: float) -> Plan:
    workspace: dict[str, Path] = {}

    def prepare() -> Measured:
        if shutil.which("fio") is None:
            raise Missing("missing: fio not installed")
        # Next to the build tree rather than /tmp: /tmp may be tmpfs, which has no O_DIRECT.
        parent = ctx.repo / "build-bench"
        parent.mkdir(exist_ok=True)
        workspace["dir"] = Path(tempfile.mkdtemp(prefix="odirect-", dir=parent))
        workspace["file"] = workspace["dir"] / "data.bin"
        started = time.monotonic()
        # Written for real: a fallocated file has unwritten extents, which ext4 answers
        # with zeros without reading the disk, and both readers would look far too fast.
        done = run_command(["fio", "--name=layout", f"--filename={workspace['file']}", "--size=1G",
                            "--rw=write", "--bs=1M", "--ioengine=psync", "--direct=1",
                            "--fallocate=none", "--end_fsync=1"],
                           timeout=300, log=ctx.logs / "odirect-prepare.log")
        if not done.ok or not workspace["file"].exists():
            raise Failed("fio could not lay out the 1 GiB file, see logs/odirect-prepare.log")
        return Measured(time.monotonic() - started, "s to lay out 1 GiB")

    def fio(number: int) -> Measured:
        out = ctx.raw / f"odirect-fio-{number}.json"
        done = run_command([
            "fio", "--name=randread", f"--filename={workspace['file']}", "--ioengine=io_uring",
            "--direct=1", "--rw=randread", "--bs=4k", "--iodepth=32", "--size=1G",
            f"--runtime={seconds:g}", "--time_based", "--numjobs=1", "--cpus_allowed=0",
            "--output-format=json", f"--output={out}"],
            timeout=seconds + 120, log=ctx.logs / "odirect-fio.log")
        if not done.ok:
            raise Failed("fio failed, see logs/odirect-fio.log")
        try:
            job = json.loads(out.read_text())["jobs"][0]["read"]
        except (OSError, ValueError, KeyError, IndexError) as error:
            raise Failed(f"fio JSON: {error}") from error
        p99 = job.get("clat_ns", {}).get("percentile", {}).get("99.000000")
        return Measured(float(job["iops"]), "IOPS",
                        data={"p99_us": p99 / 1000.0 if p99 is not None else None})

    def veloq(number: int) -> Measured:
        # One run of each side (Veloq, then its in-binary raw liburing loop) per round.
        rows = ctx.run_bench_once("veloq-bench-odirect",
                                  ["--file", str(workspace["file"]), "--runs", "1",
                                   "--seconds", f"{seconds:g}"],
                                  "odirect-veloq", number, cpus=SERVER_CPU)
        figure = _iops_row(rows)
        if figure is None:
            raise Failed("veloq-bench-odirect wrote no IOPS row")
        return Measured(figure["veloq"], "IOPS", data={"rows": rows, "figure": figure})

    def odirect_round(number: int) -> Measured:
        """fio and veloq-bench-odirect once each, the order swapped every round, so
        both readers of a round meet the same VM speed mode (as echo's rounds do)."""
        if number > ctx.repeats:
            return Measured(status="skipped", note="skipped: past the time budget")
        if "file" not in workspace:
            raise Missing("missing: no data file")
        return run_round(number, [("fio", lambda: fio(number)), ("veloq", lambda: veloq(number))])

    def finish(results: dict[Any, Measured]) -> list[Row]:
        case = "odirect 4k randread qd32 vs fio"
        common = dict(metric="IOPS", baseline_name="fio io_uring", goal=FIO_GOAL,
                      source="veloq-bench-odirect")
        per_round = [results[("round", n)] for n in range(1, rounds + 1)]
        done = [r.data for r in per_round if r.status == "ok"]
        pairs = round_pairs(per_round, "fio")
        rows = []
        if results["prepare"].status != "ok":
            rows.append(missing_row("odirect", case, results["prepare"].note,
                                    status=results["prepare"].status, **common))
        elif not pairs:
            runs = [m for r in done for m in r.values() if m.status != "ok"]
            why = runs[0] if runs else next((r for r in per_round if r.status != "ok"),
                                            Measured(status="failed", note="not run"))
            rows.append(missing_row("odirect", case, why.note, status=why.status, **common))
        else:
            ours, theirs, ratios = median_round(pairs)
            rows.append(make_row("odirect", case, veloq=ours.value, baseline=theirs.value,
                                 runs=len(pairs), **common,
                                 extra={"veloq_row": ours.data["figure"]["case"],
                                        "round_ratios": [round(r, 3) for r in ratios],
                                        "fio_p99_us": theirs.data["p99_us"]}))
        bench_runs = [r["veloq"].data["rows"] for r in done if r["veloq"].status == "ok"]
        if bench_runs:
            rows.extend(merge_bench_runs("odirect", "veloq-bench-odirect", bench_runs))
        return rows

    def cleanup() -> None:
        if "dir" in workspace:
            shutil.rmtree(workspace["dir"], ignore_errors=True)

    rounds = ctx.repeats
    steps = [Step("prepare", "odirect lay out 1 GiB file", guarded(prepare)),
             *(Step(("round", n), f"odirect fio and veloq-bench-odirect, round {n} of {rounds}",
                    guarded(lambda n=n: odirect_round(n)))
               for n in range(1, rounds + 1))]
    return Plan(steps, finish, cleanup)


def _iops_row(rows: list[Row]) -> Row | None:
    for row in rows:
        if "iops" in str(row.get("metric", "")).lower() and row.get("veloq") is not None:
            return row
    for row in rows:
        if row.get("higher_is_better", True) and row.get("veloq") is not None:
            return row
    return None


# scaling: the same work on more shards, and the cost of idle shards

SCALING_SHARDS = [1, 2]
IDLE_SHARDS = [2, 4, 8, 16, 32, 64]
IDLE_SHARDS_QUICK = [2, 8, 64]


def scaling_plan(ctx: Context, seconds: float) -> Plan:
    steps = []
    for bench in ("spawn", "mesh"):
        for shards in SCALING_SHARDS:
            def run(bench=bench, shards=shards) -> Measured:
                # Always the quick variant: only the ratio between shard counts matters here,
                # and 12 full runs would not fit the suite's time budget.
                runs = ctx.run_bench(f"veloq-bench-{bench}", ["--shards", str(shards)],
                                     f"scaling-{bench}-{shards}", quick=True, flag_is_new=True)
                merged = merge_bench_runs("scaling", f"veloq-bench-{bench}", runs,
                                          label=f"{bench}: ")
                if not merged:
                    raise Failed(f"veloq-bench-{bench} wrote no result rows")
                return Measured(merged[0]["veloq"], merged[0]["metric"], data=merged)
            steps.append(Step((bench, shards), f"scaling {bench} at {shards} shard(s)",
                              guarded(run)))
    idle_shards = IDLE_SHARDS_QUICK if ctx.quick else IDLE_SHARDS
    for shards in idle_shards:
        def run(shards=shards) -> Measured:
            # Quick sizes but 5 runs, not 2: a serial round trip's CPU cost moves by 2x
            # between identical runs on a shared VM.
            runs = ctx.run_bench("veloq-bench-idle", ["--poll-cost", "--shards", str(shards), "--runs", "5"],
                                 f"scaling-idle-{shards}", cpus=None, quick=True,
                                 flag_is_new=True)
            merged = merge_bench_runs("scaling", "veloq-bench-idle", runs,
                                      label=f"idle poll cost, {shards} shards: ")
            if not merged:
                raise Failed("veloq-bench-idle --poll-cost wrote no result rows")
            return Measured(merged[0]["veloq"], merged[0]["metric"], data=merged)
        steps.append(Step(("idle", shards), f"scaling idle poll cost at {shards} shards",
                          guarded(run)))

    def finish(results: dict[Any, Measured]) -> list[Row]:
        rows = []
        for bench in ("spawn", "mesh"):
            one, two = results[(bench, 1)], results[(bench, 2)]
            unavailable = one if one.status != "ok" else two
            if unavailable.status != "ok":
                rows.append(missing_row("scaling", f"{bench}: 2 shards / 1 shard", unavailable.note,
                                        status=unavailable.status, baseline_name="1 shard",
                                        source=f"veloq-bench-{bench}"))
                continue
            singles = {r["case"]: r for r in one.data}
            for row in two.data:
                single = singles.get(row["case"])
                if single is None:
                    continue
                rows.append(make_row("scaling", f"{row['case']}: 2 shards / 1 shard",
                                     row["metric"], row["veloq"], baseline_name="1 shard",
                                     baseline=single["veloq"],
                                     higher_is_better=row["higher_is_better"],
                                     runs=row["runs"], source=f"veloq-bench-{bench}"))
        for shards in idle_shards:
            measured = results[("idle", shards)]
            if measured.status != "ok":
                rows.append(missing_row("scaling", f"idle poll cost, {shards} shards",
                                        measured.note, status=measured.status,
                                        source="veloq-bench-idle"))
            else:
                rows.extend(measured.data)
        return rows

    return Plan(steps, finish)


# memory: resident memory of the echo server per shard, and per idle connection

SETTLE_SECONDS = 0.5


def server_rss(ctx: Context, program: Path, args: list[str], tag: str) -> Measured:
    samples = []
    for i in range(ctx.repeats):
        argv = [str(program), *args, "--port", str(free_port())]
        with ListeningServer(argv, log=ctx.logs / f"{tag}.log") as running:
            time.sleep(SETTLE_SECONDS)
            rss = read_status_kib(running.pid, "VmRSS")
        if rss is None:
            raise Failed(f"could not read VmRSS of {program.name}")
        samples.append(rss)
    return Measured(statistics.median(samples), "KiB RSS", data=samples)


def memory_plan(ctx: Context, seconds: float) -> Plan:
    steps = [
        Step(("veloq", 1), "memory veloq-echo 1 shard", guarded(lambda: server_rss(
            ctx, ctx.require("examples/echo/veloq-echo"), ["--shards", "1"], "memory-veloq-1"))),
        Step(("veloq", 2), "memory veloq-echo 2 shards", guarded(lambda: server_rss(
            ctx, ctx.require("examples/echo/veloq-echo"), ["--shards", "2"], "memory-veloq-2"))),
        Step("raw", "memory raw-uring-echo", guarded(lambda: server_rss(
            ctx, ctx.require("bench/baselines/raw-uring-echo"), [], "memory-raw"))),
        Step("conns", "memory idle connections (veloq-bench-idle-conns)", guarded(
            lambda: _idle_conns(ctx))),
    ]

    def finish(results: dict[Any, Measured]) -> list[Row]:
        one, two, raw = results[("veloq", 1)], results[("veloq", 2)], results["raw"]
        rows = []
        common = dict(metric="KiB", higher_is_better=False, source="veloq-echo")
        if one.status != "ok":
            rows.append(missing_row("memory", "RSS of echo server, 1 shard", one.note,
                                    status=one.status, baseline_name="raw-uring-echo", **common))
        else:
            rows.append(make_row("memory", "RSS of echo server, 1 shard", veloq=one.value,
                                 baseline_name="raw-uring-echo",
                                 baseline=raw.value if raw.status == "ok" else None,
                                 runs=len(one.data), note=raw.note, **common))
        per_shard = "RSS added per extra shard"
        if two.status != "ok" or one.status != "ok":
            bad = one if one.status != "ok" else two
            rows.append(missing_row("memory", per_shard, bad.note, status=bad.status, **common))
        else:
            rows.append(make_row("memory", per_shard, veloq=two.value - one.value,
                                 runs=len(two.data), **common,
                                 extra={"rss_1_shard_kib": one.value, "rss_2_shards_kib": two.value}))
        conns = results["conns"]
        if conns.status != "ok":
            rows.append(missing_row("memory", "idle connections", conns.note, status=conns.status,
                                    source="veloq-bench-idle-conns"))
        else:
            rows.extend(conns.data)
        return rows

    return Plan(steps, finish)


def _idle_conns(ctx: Context) -> Measured:
    merged = merge_bench_runs("memory", "veloq-bench-idle-conns",
                              ctx.run_bench("veloq-bench-idle-conns", [], "memory-idle-conns"))
    if not merged:
        raise Failed("veloq-bench-idle-conns wrote no result rows")
    return Measured(merged[0]["veloq"], merged[0]["metric"], data=merged)


# the registry


@dataclass
class Case:
    name: str
    description: str
    plan: Callable[[Context, float], Plan]
    seconds: float
    quick_seconds: float
    aliases: tuple[str, ...] = ()


MICRO = [("spawn", "veloq-bench-spawn", "task spawn + join throughput against a bare coroutine loop"),
         ("mesh", "veloq-bench-mesh", "cross-shard messages through the SPSC mesh"),
         ("submit", "veloq-bench-submit", "submit_to round trips between two shards: pipelined, busy and parked ping-pong"),
         ("idle", "veloq-bench-idle", "CPU use of an idle 2-shard runtime"),
         ("nop", "veloq-bench-nop", "IORING_OP_NOP round trips through the driver vs raw liburing"),
         ("sched", "veloq-bench-sched", "task classes (cost, fairness of shares) and ping delay "
          "under a maybe_yield loop")]

CASES: list[Case] = [
    *(Case(name, f"micro: {what} ({binary})", micro_case(name, binary), 0, 0, ("micro",))
      for name, binary, what in MICRO),
    Case("echo", "64-byte TCP echo at 1/50/500 conns: veloq-echo (1 shard, CPU 0) vs raw liburing, "
         "epoll and tokio; load client on CPU 1", echo_plan, 3, 1),
    Case("odirect", "4 KiB O_DIRECT random reads at QD 32 on a 1 GiB file: "
         "veloq-bench-odirect vs fio (io_uring engine)", odirect_plan, 10, 3, ("odirect-fio",)),
    Case("scaling", "spawn and mesh at 1 and 2 shards; idle poll cost at 2..64 shards "
         "(2, 8, 64 with --quick); always --quick runs of the binaries",
         scaling_plan, 0, 0),
    Case("memory", "RSS of veloq-echo at 1 and 2 shards vs raw-uring-echo; "
         "memory per idle connection (veloq-bench-idle-conns)", memory_plan, 0, 0, ("idle-conns",)),
]


def select_cases(names: list[str]) -> list[Case]:
    """Cases by name or alias ("micro" is every micro case), in registry order."""
    if not names:
        return list(CASES)
    wanted = set()
    for name in names:
        matches = [c for c in CASES if name == c.name or name in c.aliases]
        if not matches:
            known = ", ".join([c.name for c in CASES] + ["micro", "odirect-fio", "idle-conns"])
            raise SystemExit(f"unknown case {name!r}; known: {known}")
        wanted.update(c.name for c in matches)
    return [c for c in CASES if c.name in wanted]
