"""Child processes for the suite: every one has a timeout and is killed with its group.

Two shapes cover every case: `run_command` for a program that ends by itself
(a bench binary, fio, the load client) and `ListeningServer` for a server that
announces "listening on 127.0.0.1:PORT" and stops on SIGINT.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LISTENING_LINE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


@dataclass
class Finished:
    """What a finished (or timed-out) command left behind."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    """Prefix argv with `taskset -c CPUS`; None runs unpinned.

    On a one-CPU machine every pin collapses to CPU 0 so the suite still runs.
    """
    if cpus is None or shutil.which("taskset") is None:
        return list(argv)
    if cpu_count() < 2:
        cpus = "0"
    return ["taskset", "-c", cpus, *argv]


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_command(argv: list[str], timeout: float, log: Path | None = None,
                cwd: Path | None = None) -> Finished:
    """Run argv to completion; past `timeout` seconds its whole process group is killed.

    The command line and both output streams are appended to `log` when given,
    so a failed run can be read afterwards without re-running it.
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc, signal.SIGKILL)
        out, err = proc.communicate()
    except BaseException:
        # The child has its own session, so a Ctrl-C reached only us: take it down too.
        _kill_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    result = Finished(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                      timed_out, time.monotonic() - started)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n")
            f.write(f"# exit {result.returncode}{' (timed out)' if timed_out else ''}"
                    f" after {result.seconds:.1f}s\n")
            f.write(result.stdout)
            if result.stderr:
                f.write("# stderr\n" + result.stderr)
            f.write("\n")
    return result


def free_port() -> int:
    """A loopback TCP port nobody holds right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


class ListeningServer:
    """A server process started for one measurement and stopped right after it.

    Usage:
        with ListeningServer(argv, log=path) as server:
            run_client(port=server.port)

    Entering waits (bounded) for the "listening on 127.0.0.1:PORT" line; leaving
    sends SIGINT, waits a few seconds, then kills the process group.
    """

    def __init__(self, argv: list[str], log: Path, start_timeout: float = 10.0,
                 stop_timeout: float = 5.0) -> None:
        self._argv = argv
        self._log = log
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None
        self.port: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> "ListeningServer":
        self._logfile = self._log.open("ab")
        self._logfile.write(f"$ {' '.join(self._argv)}\n".encode())
        self._logfile.flush()
        self._proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=self._logfile, start_new_session=True)
        # The reader keeps draining stdout for the server's whole life: a server
        # that logs a lot must never block on a full pipe mid-measurement.
        self._reader = threading.Thread(target=self._drain_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._listening.wait(0.05):
            if self._proc.poll() is not None:
                self._stop()
                raise ServerFailed(f"{Path(self._argv[-1]).name}: exited with "
                                   f"{self._proc.returncode} before listening")
            if time.monotonic() > deadline:
                self._stop()
                raise ServerFailed(f"no 'listening on' line within {self._start_timeout:.0f}s")
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _drain_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._logfile.write(line)
            match = LISTENING_LINE.search(line)
            if match and not self._listening.is_set():
                self.port = int(match.group(1))
                self._listening.set()

    def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _kill_group(proc, signal.SIGINT)
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
                self._logfile.write(b"# did not stop within the SIGINT grace period; killed\n")
        # Children the server may have left in its group go too.
        _kill_group(proc, signal.SIGKILL)
        self.returncode = proc.returncode
        if self._reader is not None:
            self._reader.join(2.0)
        self._logfile.write(f"# exit {proc.returncode}\n".encode())
        self._logfile.close()
        self._proc = None


def read_status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
