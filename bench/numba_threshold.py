"""Where a fused numba loop stops beating NumPy: the measurement behind
``glassgrad._jit_numba.MAX_FUSED_SIZE``.

For array sizes from 16 to 4M elements, three typical runs of elementwise lines are
compiled with ``gg.jit`` twice, with the NumPy backend and with ``backend="numba"``
(fusion forced on at every size), and timed (process CPU time, one thread, best of 5):

* chain: W1's forward and backward run (sin, * 1.01, + 0.1, tanh, four times), float64;
* relu: a bias add, ReLU as ``np.maximum(z, 0.0)`` and its gradient mask, float32 (W3b);
* sigmoid: a bias add and the sigmoid with its derivative, float64 (W2).

It prints the ratio numba / NumPy per size and, per run, the largest size up to which
numba is at least as fast. Runs that call a transcendental function (sin, exp, tanh, ...:
NumPy's SIMD versions outrun the scalar libm calls of a loop) and runs of arithmetic and
comparisons alone cross over at very different sizes, so ``_jit_numba`` has one threshold
for each (``MAX_FUSED_SIZE_LIBM``, ``MAX_FUSED_SIZE``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        python bench/numba_threshold.py [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import glassgrad as gg
from glassgrad import _jit_numba


def chain(x):
    for _ in range(4):
        x = np.tanh(np.sin(x) * 1.01 + 0.1)
    return x


def relu_run(z, b, g):
    h = np.maximum(z + b, 0.0)
    return h, g * (z + b > 0).astype(z.dtype)


def sigmoid_run(z, b, g):
    s = (z + b).sigmoid()
    return s, g * (s * (1.0 - s))


def cases(n: int, rng) -> list[tuple[str, object, tuple]]:
    cols = 256 if n >= 256 else n
    rows = n // cols
    z64 = rng.standard_normal((rows, cols))
    z32 = z64.astype(np.float32)
    return [
        ("chain", chain, (rng.standard_normal(n),)),
        ("relu", relu_run, (z32, rng.standard_normal(cols).astype(np.float32), z32.copy())),
        ("sigmoid", sigmoid_run, (z64, rng.standard_normal(cols), z64.copy())),
    ]


def best(f, args, repeats: int = 5) -> float:
    f(*args)
    loops = 1
    while True:
        t = time.process_time()
        for _ in range(loops):
            f(*args)
        spent = time.process_time() - t
        if spent > 0.05:
            break
        loops *= 4
    times = []
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(loops):
            f(*args)
        times.append((time.process_time() - t) / loops)
    return min(times)


def main() -> None:
    quick = "--quick" in sys.argv
    _jit_numba.MAX_FUSED_SIZE = _jit_numba.MAX_FUSED_SIZE_LIBM = 1 << 62  # fuse at any size
    rng = np.random.default_rng(0)
    sizes = [1 << k for k in range(4, 23, 4 if quick else 2)]
    names = [name for name, _, _ in cases(16, rng)]
    print(f"{'elements':>10} " + " ".join(f"{name:>22}" for name in names))
    wins_up_to = dict.fromkeys(names, 0)  # largest size up to which numba always won
    losing = set()
    for n in sizes:
        row = []
        for name, f, args in cases(n, rng):
            t_np = best(gg.jit(f), args)
            t_nb = best(gg.jit(f, backend="numba"), args)
            row.append(f"{t_np * 1e6:9.1f} {t_nb * 1e6:9.1f} {t_nb / t_np:4.2f}")
            if t_nb <= t_np and name not in losing:
                wins_up_to[name] = n
            else:
                losing.add(name)
        print(f"{n:>10} " + " ".join(row))
    print("(per case: NumPy µs, numba µs, numba / NumPy)")
    for name in names:
        print(f"{name}: numba at least as fast up to {wins_up_to[name]} elements")
    print(f"in use: MAX_FUSED_SIZE_LIBM = {_jit_numba.__dict__.get('_LIBM_DEFAULT')}, "
          f"MAX_FUSED_SIZE = {_jit_numba.__dict__.get('_ARITH_DEFAULT')}")


if __name__ == "__main__":
    main()
