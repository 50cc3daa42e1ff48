"""W5: full Jacobians (forward and reverse mode) and Hessians.

Square: f(x) = tanh(A @ x) + x**2 and g(x) = sum(log(1 + exp(A @ x))) for n = 10, 100, 500.
Shape: tall f(x) = tanh(B @ x), B of shape (500, 10), and wide f(x) = tanh(C @ x), C of
shape (10, 500): forward mode should win the tall case, reverse mode the wide one.
The reference is the Jacobian and Hessian written out by hand in NumPy. "glassgrad jit"
is ``gg.jit`` of ``gg.jacobian(fun, mode=...)`` and of ``gg.hessian(g)``: the first call
traces (its time is reported apart, as JAX's compile time is), later calls are timed, and
the results must equal eager glassgrad's bit for bit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w5_jacobians.py
"""

from __future__ import annotations

import common
import numpy as np

gg = common.load_glassgrad()

SLOW = 30.0  # seconds: above this for one call, glassgrad is timed once


def f(x, a, tanh=np.tanh):
    return tanh(a @ x) + x ** 2


def g(x, a, log=np.log, exp=np.exp, total=np.sum):
    return total(log(1.0 + exp(a @ x)))


def h(x, b, tanh=np.tanh):
    return tanh(b @ x)


def cases() -> list[tuple[str, str, int, int]]:
    """(label, kind, rows, cols): kind is jac (f), hess (g) or shape (h)."""
    sizes = [10, 100] if common.is_quick() else [10, 100, 500]
    out = [(f"jacobian f, n={n}", "jac", n, n) for n in sizes]
    out += [(f"hessian g, n={n}", "hess", n, n) for n in sizes]
    out += [("tall f: R^10 -> R^500", "shape", 500, 10),
            ("wide f: R^500 -> R^10", "shape", 10, 500)]
    return out


def make(rows: int, cols: int):
    rng = np.random.default_rng(rows * 1000 + cols)
    return rng.standard_normal((rows, cols)) / np.sqrt(cols), rng.standard_normal(cols)


def numpy_fns(kind, a):
    """Hand-written derivatives: diag(1 - t^2) A (+ 2 diag(x)) and A^T diag(s(1-s)) A."""
    def jac(x):
        t = np.tanh(a @ x)
        j = (1.0 - t * t)[:, None] * a
        if kind == "jac":
            j[np.diag_indices_from(j)] += 2.0 * x
        return j

    def hess(x):
        s = 1.0 / (1.0 + np.exp(-(a @ x)))
        return a.T @ ((s * (1.0 - s))[:, None] * a)

    if kind == "hess":
        return {"hessian": hess}
    return {"jacobian": jac}


def glassgrad_fns(kind, a):
    if kind == "hess":
        return {"hessian": lambda x: gg.hessian(g)(x, a)}
    fun = f if kind == "jac" else h
    return {f"jacobian {m}": (lambda x, m=m: gg.jacobian(fun, mode=m)(x, a))
            for m in ("forward", "reverse")}


def glassgrad_jit_fns(kind, a):
    if kind == "hess":
        jitted = gg.jit(gg.hessian(g))
        return {"hessian": lambda x: jitted(x, a)}
    fun = f if kind == "jac" else h
    out = {}
    for m in ("forward", "reverse"):
        jitted = gg.jit(gg.jacobian(fun, mode=m))
        out[f"jacobian {m}"] = lambda x, jitted=jitted: jitted(x, a)
    return out


def torch_fns(kind, a):
    torch = common.load_torch()
    if torch is None:
        return None
    from torch import func

    at = torch.from_numpy(a)
    if kind == "hess":
        hess = func.hessian(lambda x: g(x, at, torch.log, torch.exp, torch.sum))
        return {"hessian": lambda x: hess(torch.from_numpy(x))}
    fun = (lambda x: f(x, at, torch.tanh)) if kind == "jac" else (lambda x: h(x, at, torch.tanh))
    jf, jr = func.jacfwd(fun), func.jacrev(fun)
    return {"jacobian forward": lambda x: jf(torch.from_numpy(x)),
            "jacobian reverse": lambda x: jr(torch.from_numpy(x))}


def jax_fns(kind, a):
    jax = common.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy
    aj = jnp.asarray(a)

    def ready(fn):
        jitted = jax.jit(fn)
        return lambda x: jax.block_until_ready(jitted(jnp.asarray(x)))

    if kind == "hess":
        return {"hessian": ready(jax.hessian(lambda x: g(x, aj, jnp.log, jnp.exp, jnp.sum)))}
    fun = (lambda x: f(x, aj, jnp.tanh)) if kind == "jac" else (lambda x: h(x, aj, jnp.tanh))
    return {"jacobian forward": ready(jax.jacfwd(fun)),
            "jacobian reverse": ready(jax.jacrev(fun))}


WORKERS = {"numpy": (common.REFERENCE, numpy_fns), "glassgrad": ("glassgrad", glassgrad_fns),
           "glassgrad-jit": ("glassgrad jit", glassgrad_jit_fns),
           "torch": ("torch.func (eager)", torch_fns), "jax": ("JAX jit", jax_fns)}


def time_call(fn) -> tuple[float, int, float]:
    """Best time of ``fn``, repeats and the first call's time (for gg.jit and JAX: the
    tracing or compiling). A call slower than SLOW seconds is timed once more, not
    repeated."""
    first = common.time_once(fn)
    second = common.time_once(fn)
    if second > SLOW or (common.is_quick() and second > 2.0):
        return second, 1, first
    t = common.measure(fn)
    return t.best, t.repeats, first


def worker(name: str) -> dict:
    build = WORKERS[name][1]
    out, values = {}, {}
    for label, kind, rows, cols in cases():
        a, x = make(rows, cols)
        fns = build(kind, a)
        if fns is None:
            raise ImportError(f"{WORKERS[name][0]} is not installed")
        for what, fn in fns.items():
            best, repeats, first = time_call(lambda fn=fn, x=x: fn(x))
            out[f"{label}|{what}"] = {"time": best, "repeats": repeats, "first": first}
            values[f"{label}|{what}"] = (fn, x, kind, a)
    for key, (fn, x, kind, a) in values.items():  # checked after every timing is done
        ref = next(iter(numpy_fns(kind, a).values()))(x)
        result = fn(x)
        out[key]["error"] = float(np.max(np.abs(np.asarray(result) - ref)))
        if name == "glassgrad-jit":
            eager = glassgrad_fns(kind, a)[key.split("|")[1]](x)
            out[key]["exact"] = common.same_bits(f"W5 {key}", result, eager)
    return out


def table(answers: dict) -> None:
    ref = answers["numpy"]
    rows = []
    for label, kind, _, _ in cases():
        ref_key = f"{label}|{'hessian' if kind == 'hess' else 'jacobian'}"
        for name, r in answers.items():
            for key, m in r.items():
                if not key.startswith(label + "|"):
                    continue
                note = [] if m["repeats"] > 1 else ["timed once"]
                if "exact" in m:
                    note.append("bit-identical to eager" if m["exact"] else "DIFFERS from eager")
                jit = name in ("glassgrad-jit", "jax")
                rows.append([label, WORKERS[name][0], key.split("|")[1],
                             common.fmt_time(m["time"]),
                             common.fmt_ratio(m["time"], ref[ref_key]["time"]),
                             common.fmt_time(m["first"]) if jit else "",
                             f"{m['error']:.0e}", "; ".join(note)])
    common.print_table("W5: Jacobians and Hessians (float64), best of repeats",
                       ["case", "implementation", "transform", "time", "vs NumPy",
                        "first call (trace/compile)", "max diff", "note"], rows)


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], WORKERS, worker,
                         lambda answers: table(answers) if "numpy" in answers else None, profile)


def profile() -> None:
    a, x = make(100, 100)
    print(common.profile_summary(lambda: gg.jacobian(f, mode="reverse")(x, a), calls=5))
    a, x = make(500, 500)
    for what, jitted, fun in (("jacobian forward", gg.jit(gg.jacobian(f, mode="forward")), f),
                              ("jacobian reverse", gg.jit(gg.jacobian(f, mode="reverse")), f),
                              ("hessian", gg.jit(gg.hessian(g)), g)):
        forward = common.measure(lambda fun=fun: fun(x, a)).best
        print(f"\nglassgrad jit {what}, n=500: {common.jit_breakdown(jitted, (x, a), (x, a))};"
              f" the function itself (NumPy) {common.fmt_time(forward)}")

if __name__ == "__main__":
    main()
