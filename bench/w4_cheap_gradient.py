"""W4: the cheap-gradient principle, time(value_and_grad) / time(f).

f(x, W1, W2, W3) = sum(tanh(W3 @ tanh(W2 @ tanh(W1 @ x)))), float64, n x n weights and
x of shape (n, 32). The gradient is taken with respect to x, then with respect to the
three weights. "glassgrad jit" compiles all three with ``gg.jit`` (f too, so its ratios
divide by the compiled forward); its results must equal eager glassgrad's bit for bit.
Memory: tracemalloc peak of one call (NumPy-based code only) and the growth of the
resident high-water mark (every framework), each against the forward's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w4_cheap_gradient.py
"""

from __future__ import annotations

import common
import numpy as np

gg = common.load_glassgrad()

COLS = 32
GOAL = 3.0


def f(x, w1, w2, w3, tanh=np.tanh, total=np.sum):
    return total(tanh(w3 @ tanh(w2 @ tanh(w1 @ x))))


def numpy_vg(x, w1, w2, w3, weights):
    """Hand-written reverse pass; with ``weights`` the three weight gradients, else dx."""
    a1 = np.tanh(w1 @ x)
    a2 = np.tanh(w2 @ a1)
    a3 = np.tanh(w3 @ a2)
    value = np.sum(a3)
    d3 = 1.0 - a3 * a3
    d2 = (w3.T @ d3) * (1.0 - a2 * a2)
    d1 = (w2.T @ d2) * (1.0 - a1 * a1)
    if weights:
        return value, (d1 @ x.T, d2 @ a1.T, d3 @ a2.T)
    return value, w1.T @ d1


def numpy_case(args):
    return {"f": lambda: f(*args),
            "dx": lambda: numpy_vg(*args, weights=False),
            "dW": lambda: numpy_vg(*args, weights=True)}


def glassgrad_case(args):
    vx, vw = gg.value_and_grad(f), gg.value_and_grad(f, argnums=(1, 2, 3))
    return {"f": lambda: f(*args), "dx": lambda: vx(*args), "dW": lambda: vw(*args)}


def glassgrad_jit_case(args):
    fns = {"f": gg.jit(f), "dx": gg.jit(gg.value_and_grad(f)),
           "dW": gg.jit(gg.value_and_grad(f, argnums=(1, 2, 3)))}
    return {k: (lambda fn=fn: fn(*args)) for k, fn in fns.items()}


def autograd_case(args):
    autograd, anp = common.load_autograd()
    if autograd is None:
        return None

    def fa(*a):
        return f(*a, tanh=anp.tanh, total=anp.sum)

    vx, vw = autograd.value_and_grad(fa), autograd.value_and_grad(fa, argnum=(1, 2, 3))
    return {"f": lambda: fa(*args), "dx": lambda: vx(*args), "dW": lambda: vw(*args)}


def torch_case(args):
    torch = common.load_torch()
    if torch is None:
        return None
    x, *ws = (torch.from_numpy(a) for a in args)

    def forward():
        with torch.no_grad():
            return f(x, *ws, torch.tanh, torch.sum)

    def vg(which):
        leaves = [t.detach().requires_grad_(i in which) for i, t in enumerate([x, *ws])]
        loss = f(*leaves, torch.tanh, torch.sum)
        grads = torch.autograd.grad(loss, [leaves[i] for i in which])
        return loss.detach(), grads

    return {"f": forward, "dx": lambda: vg((0,)), "dW": lambda: vg((1, 2, 3))}


def jax_case(args):
    jax = common.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy
    a = [jnp.asarray(v) for v in args]

    def fj(*v):
        return f(*v, jnp.tanh, jnp.sum)

    fns = {"f": jax.jit(fj), "dx": jax.jit(jax.value_and_grad(fj)),
           "dW": jax.jit(jax.value_and_grad(fj, argnums=(1, 2, 3)))}
    return {k: (lambda fn=fn: jax.block_until_ready(fn(*a))) for k, fn in fns.items()}


WORKERS = {"numpy": (common.REFERENCE, numpy_case), "glassgrad": ("glassgrad", glassgrad_case),
           "glassgrad-jit": ("glassgrad jit", glassgrad_jit_case),
           "autograd": ("HIPS autograd", autograd_case), "torch": ("PyTorch eager", torch_case),
           "jax": ("JAX jit", jax_case)}
NUMPY_BASED = {"numpy", "glassgrad", "glassgrad-jit", "autograd"}


def sizes() -> list[int]:
    return [64, 256, 1024] if common.is_quick() else [64, 256, 1024, 2048]


def make_args(n: int):
    rng = np.random.default_rng(n)
    scale = 1.0 / np.sqrt(n)
    x = rng.standard_normal((n, COLS))
    return (x, *(rng.standard_normal((n, n)) * scale for _ in range(3)))


def _flat(g) -> list[np.ndarray]:
    return [np.asarray(a) for a in (g if isinstance(g, tuple | list) else (g,))]


def max_error(grads: dict, args) -> float:
    """Largest gradient difference against the hand-written NumPy pass (run after timing,
    so that NumPy's BLAS threads do not disturb the other library's timings)."""
    ref = numpy_case(args)
    return max(float(np.max(np.abs(g - w)))
               for key in ("dx", "dW")
               for g, w in zip(grads[key], _flat(ref[key]()[1]), strict=True))


def measure_size(name: str, n: int) -> tuple[dict, dict]:
    args = make_args(n)
    case = WORKERS[name][1](args)
    if case is None:
        raise ImportError(f"{WORKERS[name][0]} is not installed")
    first = {}
    for k, fn in case.items():  # the first call traces (gg.jit) or compiles (JAX)
        first[k] = common.time_once(fn)
    out = {"first": first, "time": {k: common.measure(fn).best for k, fn in case.items()},
           "rss": {k: common.rss_peak(fn) for k, fn in case.items()}}
    if name in NUMPY_BASED:
        out["traced"] = {k: common.traced_peak(fn) for k, fn in case.items()}
    grads = {k: _flat(case[k]()[1]) for k in ("dx", "dW")}
    if name == "glassgrad-jit":
        eager = glassgrad_case(args)
        out["exact"] = all(common.same_bits(f"W4 n={n} gg.jit {k}", case[k](), eager[k]())
                           for k in case)
    return out, grads


def worker(name: str) -> dict:
    results, grads = {}, {}
    for n in sizes():
        results[n], grads[n] = measure_size(name, n)
    for n in sizes():
        results[n]["error"] = max_error(grads[n], make_args(n))
    return results


def _mem(m, key):
    if m is None or m[key] is None:
        return "n/a"
    mib = f"{m[key] / 2**20:.1f} MiB"
    return mib if key == "f" else f"{mib} ({m[key] / max(m['f'], 1):.1f}x)"


def time_row(n, label, r, ref):
    t, tref = r["time"], ref["time"]
    rx, rw = t["dx"] / t["f"], t["dW"] / t["f"]
    verdict = ""
    if label.startswith("glassgrad") and n >= 256:
        verdict = f"x: {common.goal(rx, GOAL)}; W: {common.goal(rw, GOAL)}"
    exact = {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")
    return [n, label, common.fmt_time(t["f"]), common.fmt_time(t["dx"]),
            common.fmt_time(t["dW"]), f"{rx:.2f}", f"{rw:.2f}",
            common.fmt_ratio(t["dx"], tref["dx"]), common.fmt_ratio(t["dW"], tref["dW"]),
            f"{r['error']:.0e}", exact, verdict]


def memory_row(n, label, r, _ref):
    return [n, label, *(_mem(r.get("traced"), k) for k in ("f", "dx", "dW")),
            *(_mem(r["rss"], k) for k in ("f", "dx", "dW"))]


TIME_HEADERS = ["n", "implementation", "f", "vg(x)", "vg(W)", "vg(x)/f", "vg(W)/f",
                "vg(x) vs NumPy", "vg(W) vs NumPy", "max grad diff", "jit vs eager",
                "goal ≤ 3 (n ≥ 256)"]
MEMORY_HEADERS = ["n", "implementation", "traced f", "traced vg(x) (/f)", "traced vg(W) (/f)",
                  "RSS f", "RSS vg(x) (/f)", "RSS vg(W) (/f)"]


def tables(answers: dict) -> None:
    ref = answers["numpy"]
    for title, make, headers in (("time, best of repeats", time_row, TIME_HEADERS),
                                 ("peak memory of one call", memory_row, MEMORY_HEADERS)):
        rows = [make(int(n), WORKERS[name][0], r[n], ref[n])
                for n in map(str, sizes()) for name, r in answers.items()]
        common.print_table(f"W4: {title} (float64, x of shape (n, 32))", headers, rows)
    for name in ("glassgrad-jit", "jax"):
        if name in answers:
            print(f"first call (tracing / compiling included), {WORKERS[name][0]}: " + "; ".join(
                f"n={n}: f {common.fmt_time(answers[name][n]['first']['f'])}, vg(x) "
                f"{common.fmt_time(answers[name][n]['first']['dx'])}, vg(W) "
                f"{common.fmt_time(answers[name][n]['first']['dW'])}"
                for n in map(str, sizes())))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], WORKERS, worker,
                         lambda answers: tables(answers) if "numpy" in answers else None, profile)


def profile() -> None:
    a = make_args(256)
    vw = gg.value_and_grad(f, argnums=(1, 2, 3))
    print(common.profile_summary(lambda: vw(*a), calls=50))
    jw = gg.jit(gg.value_and_grad(f, argnums=(1, 2, 3)))
    print(f"\nglassgrad jit vg(W), n=256: {common.jit_breakdown(jw, a, a)}")

if __name__ == "__main__":
    main()
