"""One way to time things and print them, used by every `bench_*.py`.

Each benchmark module exposes ``run(quick: bool) -> list[Row]``. A Row holds a
measured figure and, where there is one, its anchor measured in the same run;
the ratio is printed beside both. Times are medians of repeated runs with min
and max, because the machine is shared and noisy.
"""

from __future__ import annotations

import gc
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds per run over ``len(runs)`` repetitions."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def rate(self, n: int) -> Timing:
        """As events per second for ``n`` events per run (median is still the middle)."""
        return Timing(tuple(n / t for t in self.runs))


def measure(fn: Callable[[], Any], *, repeat: int = 3, setup: Callable[[], Any] | None = None) -> Timing:
    """Run ``fn`` ``repeat`` times (after ``setup`` each time) and keep the wall-clock seconds."""
    runs = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return Timing(tuple(runs))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mib(field: str, pid: int | str = "self") -> float:
    """A memory field of ``/proc/<pid>/status`` in MiB (Linux): ``VmRSS`` now, ``VmHWM`` its peak.

    Unlike ``ru_maxrss``, ``VmHWM`` of a child started by ``fork`` + ``exec``
    is its own, and it can be read for any process while it runs.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"`{field}` is not in the status of process {pid}")


class MemoryLimitExceeded(RuntimeError):
    """A child process passed its memory limit and was killed (see :func:`in_child`)."""


def in_child(module: str, function: str, *args: Any, memory_limit_mib: float | None = None) -> Any:
    """``module.function(*args)`` in a fresh interpreter (for its own peak memory); returns its result.

    Arguments and result travel by pickle; the child's stderr is passed on.
    With ``memory_limit_mib`` the child's resident memory is watched (every
    0.1 s) and the child is killed when it passes the limit, raising
    :class:`MemoryLimitExceeded`, so that a benchmark too big for a shared
    machine stops itself instead of pushing others into swap or the OOM killer.
    """
    code = (
        "import pickle, sys, importlib; args = pickle.loads(sys.stdin.buffer.read());"
        f"r = getattr(importlib.import_module({module!r}), {function!r})(*args);"
        "sys.stdout.buffer.write(pickle.dumps(r))"
    )
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdin=subprocess.PIPE, stdout=out, stderr=err)
        proc.stdin.write(pickle.dumps(args))  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        peak = 0.0
        while proc.poll() is None:
            if memory_limit_mib is not None:
                try:
                    peak = max(peak, proc_status_mib("VmRSS", proc.pid))
                except (OSError, RuntimeError):  # exited between poll and read
                    continue
                if peak > memory_limit_mib:
                    proc.kill()
                    proc.wait()
                    raise MemoryLimitExceeded(f"`{module}.{function}` passed {memory_limit_mib:,.0f} MiB resident and was stopped")
            time.sleep(0.1)
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace"))
        if proc.returncode != 0:
            raise RuntimeError(f"`{module}.{function}` failed in its child process (exit code {proc.returncode})")
        out.seek(0)
        return pickle.loads(out.read())  # noqa: S301 - our own child process


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@dataclass(frozen=True)
class Row:
    """One line of a benchmark table.

    ``value`` and ``anchor`` are Timings or plain numbers in ``unit``. When
    ``higher_is_better`` the ratio is value/anchor, else anchor/value, so a
    ratio above 1 always means lithair_lab did better than the anchor.
    """

    area: str
    name: str
    value: Timing | float
    unit: str
    anchor_name: str = ""
    anchor: Timing | float | None = None
    higher_is_better: bool = False
    target: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _mid(v: Timing | float) -> float:
        return v.median if isinstance(v, Timing) else float(v)

    @property
    def ratio(self) -> float | None:
        if self.anchor is None:
            return None
        a, v = self._mid(self.anchor), self._mid(self.value)
        if a == 0 or v == 0:
            return None
        return v / a if self.higher_is_better else a / v

    @staticmethod
    def fmt(v: Timing | float | None) -> str:
        if v is None:
            return ""
        if isinstance(v, Timing):
            return f"{_num(v.median)} [{_num(v.min)}–{_num(v.max)}]"
        return _num(v)

    def as_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "name": self.name,
            "value": self.fmt(self.value),
            "unit": self.unit,
            "anchor": f"{self.anchor_name}: {self.fmt(self.anchor)}" if self.anchor is not None else "",
            "ratio": _ratio(self.ratio),
            "target": self.target,
        }


def _ratio(r: float | None) -> str:
    if r is None:
        return ""
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"  # two significant digits, not 0.00×, for far-off anchors


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table (medians with [min–max])."""
    cols = ["area", "name", "value", "unit", "anchor", "ratio", "target"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        d = r.as_dict()
        out.append("| " + " | ".join(str(d[c]) for c in cols) + " |")
    return "\n".join(out)
