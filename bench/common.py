"""Shared helpers for the glassgrad benchmarks: timing, memory, peers, tables, flags.

Run every script as ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/<script>.py``:
those two variables, when set, force OpenBLAS onto a slower kernel and halve matmul speed.

Threads: one per library by default (``--threads N`` to change it). The 2-core machine is
shared with other jobs, and a 2-thread BLAS or OpenMP region whose second thread is
descheduled waits for a whole time slice: timings then swing by 10-100x. With one thread
each, every library gets the same single core and results repeat.

Isolation: each implementation runs in its own worker process (``run_workers``). In one
process, PyTorch's OpenMP threads and OpenBLAS's threads spin against each other on this
2-core machine and slow each other down by up to 100x, which would say nothing about
either library. Ratios are against the hand-written NumPy worker of the same run.

Clock: with one thread per library, times are the process's CPU time
(``time.process_time``): on an idle machine that equals the wall time of single-threaded
code, and it does not count the slices in which other jobs of this shared machine hold
the core. With ``--threads`` above 1, the wall clock (``time.perf_counter``).

Timing: ``measure`` warms the callable up, picks a number of loops so that one repeat
lasts at least ``min_time`` seconds, then reports the median (and best) time per call
over ``repeat`` repeats. The garbage collector stays on, as in real use. Tables quote the
best repeat (timeit's advice: the other processes of a shared machine only ever add time)
and the median beside it where it matters.

Memory, two measures:
- ``traced_peak``: tracemalloc's peak during one call, minus what was allocated before it.
  NumPy reports its array buffers to tracemalloc, so this is exact for NumPy-based code
  (hand-written NumPy, glassgrad, HIPS autograd). PyTorch and JAX allocate outside
  Python's view: tracemalloc sees almost nothing of theirs, so it is not reported for them.
- ``rss_peak``: growth of the process's resident-set high-water mark during one call
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` after a warm-up call and a
  ``malloc_trim``). It covers every framework alike, but also counts page-granular
  overheads, and misses memory a framework keeps cached in its own pool between calls.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import importlib
import importlib.metadata
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "numpy (hand-written)"

_RESULT = "RESULT "
_CONFIG = {"min_time": 0.2, "repeat": 7, "max_total": 20.0, "quick": False, "threads": 1}


# --- flags -----------------------------------------------------------------------------------


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags every script shares: ``--quick`` (a fast smoke run), ``--profile`` and
    ``--threads`` (threads per library, also applied to this process)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile summary of the glassgrad case(s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per library (BLAS, OpenMP, XLA); default 1")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _CONFIG["threads"] = args.threads
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is not None:  # this process too (profiles run here)
        _CONFIG["limits"] = threadpoolctl.threadpool_limits(limits=args.threads)
    if args.quick:
        _CONFIG.update(min_time=0.02, repeat=3, max_total=3.0, quick=True)
    return args


def run_benchmark(script: str, description: str, names: Sequence[str],
                  worker: Callable[[str], object],
                  report: Callable[[dict[str, object]], None],
                  profile: Callable[[], None]) -> None:
    """The main of every benchmark script.

    As a worker (``--worker NAME``) it runs one implementation and emits its answer; as
    the parent it runs every implementation in a process of its own, prints the report,
    the machine's load, and, with ``--profile``, the profile of the glassgrad cases.
    """
    args = parse_args(description)
    if args.worker:
        emit(worker(args.worker))
        return
    environment_report()
    report(run_workers(script, list(names)))
    load_report()
    if args.profile:
        profile()


def is_quick() -> bool:
    return bool(_CONFIG["quick"])


# --- imports ---------------------------------------------------------------------------------


def load_glassgrad():
    """glassgrad from this checkout's ``src`` (the code under test), else the installed one."""
    src = ROOT / "src"
    if (src / "glassgrad").is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module("glassgrad")


def optional(name: str):
    """The module ``name``, or None when it is not installed (peers are optional)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def load_torch():
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(_CONFIG["threads"])
    return torch


def load_jax():
    """JAX on the CPU with float64 enabled (arrays passed as float32 stay float32)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = optional("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
    return jax


def load_autograd():
    """HIPS autograd as ``(autograd, autograd.numpy)``, or ``(None, None)``."""
    autograd = optional("autograd")
    if autograd is None:
        return None, None
    return autograd, importlib.import_module("autograd.numpy")


def skip_note(what: str, err: BaseException | None = None) -> None:
    reason = f"{type(err).__name__}: {err}" if err is not None else "not installed"
    print(f"[skipped] {what}: {reason}")


# --- worker processes ------------------------------------------------------------------------


def emit(result: object) -> None:
    """A worker's answer: one JSON line that ``run_workers`` reads back."""
    print(_RESULT + json.dumps(result), flush=True)


def worker_env() -> dict[str, str]:
    """The environment of a worker: every library limited to ``--threads`` threads."""
    n = str(_CONFIG["threads"])
    env = dict(os.environ, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
               JAX_PLATFORMS="cpu")
    if n == "1":
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def run_workers(script: str, names: Sequence[str]) -> dict[str, object]:
    """Run ``script --worker NAME`` for each name in a fresh process; their answers by name.
    A worker that fails or skips is reported and left out."""
    results = {}
    flags = ["--threads", str(_CONFIG["threads"])] + (["--quick"] if is_quick() else [])
    for name in names:
        cmd = [sys.executable, script, "--worker", name, *flags]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=worker_env())
        answer = None
        for line in proc.stdout.splitlines():
            if line.startswith(_RESULT):
                answer = json.loads(line[len(_RESULT):])
            else:
                print(line)
        if proc.returncode != 0 or answer is None:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            print(f"[failed] worker {name} (exit {proc.returncode}):\n{tail}")
            continue
        results[name] = answer
        print(f"[done] {name}", flush=True)
    return results


# --- timing ----------------------------------------------------------------------------------


@dataclass
class Timing:
    median: float  # seconds per call
    best: float
    loops: int
    repeats: int


def clock() -> float:
    """Seconds: process CPU time with one thread per library, else the wall clock."""
    return time.process_time() if _CONFIG["threads"] == 1 else time.perf_counter()


def clock_name() -> str:
    return "process CPU time" if _CONFIG["threads"] == 1 else "wall clock"


def _run_loops(fn: Callable[[], object], number: int) -> float:
    start = clock()
    for _ in range(number):
        fn()
    return clock() - start


def _calibrate(fn: Callable[[], object], min_time: float) -> tuple[int, float]:
    number = 1
    while True:
        elapsed = _run_loops(fn, number)
        if elapsed >= min_time or number >= 10**6:
            return number, elapsed
        grow = min_time / max(elapsed, 1e-9) * 1.2
        number = int(number * min(max(grow, 2.0), 10.0))


def measure(fn: Callable[[], object], repeat: int | None = None,
            min_time: float | None = None) -> Timing:
    """Time ``fn()``: warm-up, adaptive loops, median and best of the repeats."""
    min_time = _CONFIG["min_time"] if min_time is None else min_time
    repeat = _CONFIG["repeat"] if repeat is None else repeat
    fn()
    number, elapsed = _calibrate(fn, min_time)
    per_repeat = elapsed
    repeat = max(1, min(repeat, int(_CONFIG["max_total"] / max(per_repeat, 1e-9))))
    times = [elapsed / number] + [_run_loops(fn, number) / number for _ in range(repeat - 1)]
    return Timing(statistics.median(times), min(times), number, len(times))


def time_once(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


# --- memory ----------------------------------------------------------------------------------


def traced_peak(fn: Callable[[], object]) -> int:
    """Bytes: tracemalloc's peak during ``fn()`` above what was allocated before it."""
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak - base


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_peak(fn: Callable[[], object]) -> int | None:
    """Bytes: growth of the resident high-water mark during one warm ``fn()`` call, or
    None where Linux's ``clear_refs`` reset is not available."""
    fn()
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = _status_kib("VmRSS")
    except OSError:
        return None
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return (peak - base) * 1024


# --- jit checks ------------------------------------------------------------------------------


def leaves(tree) -> list:
    """The arrays of a (nested) tuple, list or dict result, in order."""
    import numpy as np

    if isinstance(tree, dict):
        return [a for key in sorted(tree) for a in leaves(tree[key])]
    if isinstance(tree, tuple | list):
        return [a for item in tree for a in leaves(item)]
    return [np.asarray(tree)]


def same_bits(what: str, got, want) -> bool:
    """True when ``got`` equals ``want`` exactly (``np.array_equal``, same shapes and
    dtypes); else prints a note naming ``what`` and the largest difference."""
    import numpy as np

    a, b = leaves(got), leaves(want)
    ok = len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype
                                  and np.array_equal(x, y) for x, y in zip(a, b, strict=False))
    if not ok:
        diffs = [float(np.max(np.abs(x.astype(float) - y.astype(float)), initial=0.0))
                 for x, y in zip(a, b, strict=False) if x.shape == y.shape]
        print(f"[note] {what}: the jit result is NOT bit-identical to eager glassgrad "
              f"(largest difference {max(diffs, default=float('nan')):.1e}, "
              f"{len(a)} vs {len(b)} arrays)", flush=True)
    return ok


def program_lines(source: str) -> tuple[int, int]:
    """Lines of a jitted program's source and the NumPy calls among them."""
    body = source.splitlines()[1:]
    return len(source.splitlines()), sum(1 for line in body if " = " in line)


def jit_breakdown(jitted, args: Sequence[object], flat: Sequence[object],
                  call: Callable[[], object] | None = None) -> str:
    """Where a jitted call's time goes: the program itself (``jitted.lower(*args).run``
    on the flat inputs) against the whole call (signature look-up, flattening and
    unflattening around it), with the program's size."""
    program = jitted.lower(*args)
    lines, calls = program_lines(program.source)
    whole = measure(call if call is not None else (lambda: jitted(*args))).best
    run = measure(lambda: program.run(*flat)).best
    around = max(whole - run, 0.0)  # best-of timings: can come out slightly negative
    return (f"program: {lines} lines, {calls} NumPy calls; one call {fmt_time(whole)} = "
            f"program {fmt_time(run)} ({fmt_time(run / max(calls, 1))} per NumPy call) + "
            f"around it {fmt_time(around)} ({around / whole:.0%})")


# --- profile ---------------------------------------------------------------------------------


def np_file() -> str:
    import numpy as np

    return np.__file__


def profile_summary(fn: Callable[[], object], calls: int = 50, top: int = 15) -> str:
    """cProfile of ``calls`` calls of ``fn``: the top functions by total own time."""
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    head = next((line for line in lines if "function calls" in line), "").strip()
    root = str(ROOT) + os.sep
    site = str(Path(np_file()).parent.parent) + os.sep
    body = [line.replace(root, "").replace(site, "") for line in lines[start:] if line.strip()]
    return "\n".join([f"cProfile, {calls} calls: {head}"] + body)


# --- tables ----------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    us = seconds * 1e6
    if us < 1000:
        return f"{us:.1f} µs"
    if us < 1e6:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**20:.2f} MiB"


def fmt_ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "n/a"
    return f"{value / reference:.2f}x"


def goal(value: float | None, limit: float, what: str = "") -> str:
    """'met' or 'missed' with the factor, for a ratio that must stay at most ``limit``."""
    if value is None:
        return "n/a"
    verdict = "met" if value <= limit else "missed"
    return f"{verdict} ({value:.2f}{what} vs ≤ {limit:g})"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, ready to paste into docs/benchmarks.md."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


# --- environment -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _blas_kernel() -> str:
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is None:
        return "unknown (threadpoolctl not installed)"
    info = [
        f"{p.get('internal_api')} {p.get('version')}, kernel {p.get('architecture')}"
        for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"
    ]
    return "; ".join(info) or "none found"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> None:
    """Machine, versions and BLAS kernel, printed at the top of every script."""
    import numpy as np

    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores; Python "
          f"{platform.python_version()}; NumPy {np.__version__}; torch {_version('torch')}; "
          f"jax {_version('jax')}; autograd {_version('autograd')}; "
          f"micrograd {_version('micrograd')}")
    print(f"NumPy BLAS: {_blas_kernel()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set and slows OpenBLAS; run with "
                  f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
    print(f"mode: {'--quick smoke run' if is_quick() else 'full run'}; "
          f"{_CONFIG['threads']} thread(s) per library, each library in its own process; "
          f"timer: {clock_name()}")
    load_report()


def load_report() -> None:
    """The 1/5/15-minute load averages: other processes on a 2-core machine show up here."""
    print("load average: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
