"""What every area of the harness shares: paths, timing statistics, the machine's description,
and processes that are always stopped."""

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
WORK = BENCH / "work"
VENV = WORK / "peers-venv"
DATA_ROOT = Path(os.environ.get("STACDB_BENCH_ROOT", ROOT.parent / "shared" / "data" / "bench"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
STACDB = TARGET / "release" / "stacdb"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


# --- statistics -------------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one figure (after the warm-up)."""

    values: list = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def span(self, fmt) -> str:
        if not self.values:
            return "–"
        return f"{fmt(min(self.values))}–{fmt(max(self.values))}"


def paired_ratio(a: Series, b: Series, higher_is_better: bool) -> float:
    """The median of the run-by-run ratios (A's run i against B's run i), expressed as how many
    times better A is: b/a for times, a/b for rates."""
    pairs = list(zip(a.values, b.values))
    if not pairs:
        return float("nan")
    ratios = []
    for x, y in pairs:
        if higher_is_better:
            ratios.append(x / y if y else float("inf"))
        else:
            ratios.append(y / x if x else float("inf"))
    return statistics.median(ratios)


def fmt_ms(x: float) -> str:
    if x != x:
        return "–"
    if x < 1:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def fmt_rate(x: float) -> str:
    return "–" if x != x else f"{x:,.0f}"


def fmt_ratio(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:,.1f}×" if x < 100 else f"{x:,.0f}×"


# --- the machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict:
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "rustc": out(["rustc", "--version"]),
        "commit": out(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"]),
        "dirty": bool(out(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])),
        "load_before": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# --- processes --------------------------------------------------------------------------------

_RUNNING: list = []


class Service:
    """A server process the harness started: it is stopped at exit whatever happens."""

    def __init__(self, name: str, argv: list, url: str, env=None, log_path=None):
        self.name = name
        self.argv = argv
        self.url = url.rstrip("/")
        self.env = env
        self.log_path = log_path or (WORK / f"{name}.log")
        self.proc = None
        self.started_at = 0.0
        self.ready_after = float("nan")

    def start(self, timeout: float = 180) -> "Service":
        log(f"starting {self.name}: {' '.join(self.argv)}")
        logf = open(self.log_path, "w")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        _RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    if r.status == 200:
                        self.ready_after = time.perf_counter() - self.started_at
                        log(f"{self.name} answered after {self.ready_after:.2f} s")
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s; see {self.log_path}")

    def rss_mib(self) -> float:
        """Resident memory of the process and its children, in MiB."""
        if not self.proc:
            return float("nan")
        total = 0
        pids = [self.proc.pid]
        try:
            children = subprocess.run(
                ["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True
            ).stdout.split()
            pids = sorted(set(pids + [int(p) for p in children]))
        except OSError:
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=15)
        if self in _RUNNING:
            _RUNNING.remove(self)


def stop_all() -> None:
    for s in list(_RUNNING):
        s.stop()


def http_json(url: str, body=None, timeout: float = 60):
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def run(argv, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(argv, **kw)


def timed_rss(argv, stdout=None) -> tuple:
    """Wall seconds and peak resident memory (bytes) of a whole command, which must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return seconds, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def timed(argv, **kw) -> float:
    """Wall seconds of a whole command."""
    t0 = time.perf_counter()
    run(argv, **kw)
    return time.perf_counter() - t0
