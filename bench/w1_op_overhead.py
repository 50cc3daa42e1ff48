"""W1: per-operation overhead of reverse mode on tiny arrays.

The chain is 25 repetitions of ``sin, * 1.01, + 0.1, tanh`` (100 elementwise ops) on a
10-element float64 vector, then ``sum`` as the loss. The sum is timed but not counted:
µs per op = time of one value-and-gradient call / 100. glassgrad runs eagerly and
compiled (``gg.jit(gg.value_and_grad(chain))``: traced on the first call, timed after).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w1_op_overhead.py
"""

from __future__ import annotations

import common
import numpy as np

gg = common.load_glassgrad()

REPS = 25
N_OPS = 4 * REPS
GOAL = 2.0  # eager glassgrad, times hand-written NumPy
JIT_GOAL = 1.2  # gg.jit, times hand-written NumPy (then: beat JAX jit)
JIT = "glassgrad jit"
NUMBA = "glassgrad jit numba"  # gg.jit(..., backend="numba"): goal at most 0.5x JAX jit


def chain(x, sin=np.sin, tanh=np.tanh, total=np.sum):
    for _ in range(REPS):
        x = tanh(sin(x) * 1.01 + 0.1)
    return total(x)


def numpy_value_and_grad(x):
    """Forward storing what each op's derivative needs, then local derivatives backward."""
    inputs, outputs = [], []
    for _ in range(REPS):
        inputs.append(x)
        t = np.tanh(np.sin(x) * 1.01 + 0.1)
        outputs.append(t)
        x = t
    value = np.sum(x)
    g = np.ones_like(x)
    for x_in, t in zip(reversed(inputs), reversed(outputs), strict=True):
        g = g * (1.0 - t * t)  # tanh
        # + 0.1: local derivative 1, nothing to do
        g = g * 1.01
        g = g * np.cos(x_in)  # sin
    return value, g


def glassgrad_eager(x):
    t = gg.tensor(x, requires_grad=True)
    loss = chain(t, total=lambda y: y.sum())
    loss.backward()
    return loss.item(), t.grad


def numpy_impls(x):
    return [(common.REFERENCE, lambda: numpy_value_and_grad(x))]


def glassgrad_impls(x):
    vg = gg.value_and_grad(chain)
    jitted = gg.jit(gg.value_and_grad(chain))
    return [("glassgrad value_and_grad", lambda: vg(x)),
            ("glassgrad Tensor.backward", lambda: glassgrad_eager(x)),
            (JIT, lambda: jitted(x))]


def numba_impls(x):
    try:
        import numba  # noqa: F401
    except ImportError:
        common.skip_note("numba")
        return []
    jitted = gg.jit(gg.value_and_grad(chain), backend="numba")
    return [(NUMBA, lambda: jitted(x))]


def torch_impls(x):
    torch = common.load_torch()
    if torch is None:
        common.skip_note("PyTorch")
        return []

    def run():
        t = torch.from_numpy(x).requires_grad_(True)
        loss = chain(t, torch.sin, torch.tanh, torch.sum)
        loss.backward()
        return loss.item(), t.grad.numpy()

    return [("PyTorch eager", run)]


def autograd_impls(x):
    autograd, anp = common.load_autograd()
    if autograd is None:
        common.skip_note("HIPS autograd")
        return []
    vg = autograd.value_and_grad(lambda y: chain(y, anp.sin, anp.tanh, anp.sum))
    return [("HIPS autograd", lambda: vg(x))]


def jax_impls(x):
    jax = common.load_jax()
    if jax is None:
        common.skip_note("JAX")
        return []
    jnp = jax.numpy
    vg = jax.value_and_grad(lambda y: chain(y, jnp.sin, jnp.tanh, jnp.sum))
    jitted = jax.jit(vg)
    xj = jnp.asarray(x)

    def ready(fn):
        return lambda: jax.block_until_ready(fn(xj))

    return [("JAX eager (no jit)", ready(vg)), ("JAX jit", ready(jitted))]


WORKERS = {"numpy": numpy_impls, "glassgrad": glassgrad_impls, "glassgrad-numba": numba_impls,
           "torch": torch_impls,
           "autograd": autograd_impls, "jax": jax_impls}


def worker(name: str) -> dict:
    """Time each implementation of one library; also return its value and gradient."""
    x = np.linspace(-1.0, 1.0, 10)
    out, results = {}, {}
    for label, fn in WORKERS[name](x):
        first = common.clock()
        value, g = results[label] = fn()  # for gg.jit and JAX jit: traces and compiles
        first = common.clock() - first
        t = common.measure(fn)
        out[label] = {"best": t.best, "median": t.median, "first": first,
                      "value": float(value), "grad": np.asarray(g, dtype=float).tolist()}
    if JIT in results:
        out[JIT]["exact"] = common.same_bits("W1 gg.jit(gg.value_and_grad(chain))",
                                             results[JIT], results["glassgrad value_and_grad"])
    return out


def verdict(label: str, ratio: float, results: dict) -> str:
    if label == NUMBA:
        jax = results.get("JAX jit")
        return "" if jax is None else common.goal(results[NUMBA]["best"] / jax["best"], 0.5,
                                                  "x JAX jit")
    if label == JIT:
        jax = results.get("JAX jit")
        vs_jax = "" if jax is None else (
            f"; vs JAX jit {results[JIT]['best'] / jax['best']:.2f}x: "
            f"{'met' if results[JIT]['best'] < jax['best'] else 'missed'}")
        return common.goal(ratio, JIT_GOAL, "x") + vs_jax
    return common.goal(ratio, GOAL, "x") if label.startswith("glassgrad") else ""


def table(results: dict) -> None:
    ref = results[common.REFERENCE]
    rows = []
    for label, r in results.items():
        ratio = r["best"] / ref["best"]
        err = float(np.max(np.abs(np.subtract(r["grad"], ref["grad"]))))
        exact = {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")
        if label == NUMBA and JIT in results:  # within 1e-12 relative, not bit for bit
            rel = np.max(np.abs(np.subtract(r["grad"], results[JIT]["grad"]))
                         / np.abs(results[JIT]["grad"]))
            exact = f"{rel:.0e} rel. to jit"
        rows.append([label, f"{r['best'] / N_OPS * 1e6:.2f}", f"{r['median'] / N_OPS * 1e6:.2f}",
                     common.fmt_time(r["best"]), f"{ratio:.2f}x", common.fmt_time(r["first"]),
                     f"{err:.0e}", exact, verdict(label, ratio, results)])
    common.print_table("W1: value and gradient of a 100-op chain, 10 float64 elements "
                       "(the final sum is timed but not counted: µs/op = per call / 100)",
                       ["implementation", "µs/op (best)", "µs/op (median)", "per call",
                        "vs NumPy", "first call", "max grad diff", "jit vs eager",
                        "goal (eager ≤ 2x; jit ≤ 1.2x, then < JAX jit)"], rows)


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], WORKERS, worker, report, profile)


def report(answers: dict) -> None:
    results = {label: r for answer in answers.values() for label, r in answer.items()}
    if common.REFERENCE in results:
        table(results)


def profile() -> None:
    x = np.linspace(-1.0, 1.0, 10)
    vg = gg.value_and_grad(chain)
    print(common.profile_summary(lambda: vg(x), calls=200))
    jitted = gg.jit(gg.value_and_grad(chain))
    print(f"\nglassgrad jit: {common.jit_breakdown(jitted, (x,), (x,))}; hand-written "
          f"NumPy {common.fmt_time(common.measure(lambda: numpy_value_and_grad(x)).best)}")

if __name__ == "__main__":
    main()
