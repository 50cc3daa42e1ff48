"""W7: a Gaussian process's negative log marginal likelihood and its gradient.

RBF kernel on n = 500 points in 3-D, three hyperparameters in log space (length scale,
signal and noise standard deviations):

    K = sf^2 exp(-|x_i - x_j|^2 / (2 ell^2)) + sn^2 I
    nll = y^T K^-1 y / 2 + log det K / 2 + n log(2 pi) / 2

written once with ``np.linalg.solve`` and ``np.linalg.slogdet`` and differentiated by each
library (value and gradient in one call). The reference is the gradient written by hand
in NumPy: a Cholesky factor, K^-1 from it, and 0.5 tr((K^-1 - a a^T) dK/dtheta). The
squared distances are data, computed once outside the timed call by every implementation.
Goals (issue 10): glassgrad eager at most HIPS autograd's time; jit within 1.2x of the
hand-written gradient.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w7_gp.py
"""

from __future__ import annotations

import math

import common
import numpy as np

gg = common.load_glassgrad()

THETA = np.array([np.log(0.8), np.log(1.3), np.log(0.3)])


def data(n: int):
    rng = np.random.default_rng(7)
    x = rng.uniform(-2.0, 2.0, size=(n, 3))
    y = np.sin(x @ np.array([1.0, -0.7, 0.4])) + 0.1 * rng.standard_normal(n)
    d2 = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    return d2, y


def size() -> int:
    return 200 if common.is_quick() else 500


def nll(theta, d2, y, xp=np):
    """The objective, for any NumPy-like namespace ``xp`` (NumPy, autograd, jax, torch)."""
    ell2, sf2, sn2 = xp.exp(2.0 * theta[0]), xp.exp(2.0 * theta[1]), xp.exp(2.0 * theta[2])
    n = y.shape[0]
    k = sf2 * xp.exp(-0.5 * d2 / ell2) + sn2 * xp.eye(n)
    alpha = xp.linalg.solve(k, y)
    logdet = xp.linalg.slogdet(k)[1]
    return 0.5 * xp.sum(y * alpha) + 0.5 * logdet + 0.5 * n * math.log(2 * math.pi)


def numpy_value_and_grad(theta, d2, y):
    """Hand-written: Cholesky, K^-1 from it, and the trace formula (GPML, eq. 5.9)."""
    ell2, sf2, sn2 = np.exp(2.0 * theta)
    n = y.shape[0]
    kf = sf2 * np.exp(-0.5 * d2 / ell2)
    k = kf + sn2 * np.eye(n)
    chol = np.linalg.cholesky(k)
    chol_inv = np.linalg.solve(chol, np.eye(n))
    k_inv = chol_inv.T @ chol_inv
    alpha = k_inv @ y
    value = (0.5 * y @ alpha + np.sum(np.log(np.diagonal(chol)))
             + 0.5 * n * math.log(2 * math.pi))
    w = k_inv - np.outer(alpha, alpha)
    grad = 0.5 * np.array([np.sum(w * (kf * d2 / ell2)),  # dK/dlog ell
                           np.sum(w * (2.0 * kf)),  # dK/dlog sf
                           2.0 * sn2 * np.trace(w)])  # dK/dlog sn
    return value, grad


def numpy_fn(d2, y):
    return lambda: numpy_value_and_grad(THETA, d2, y)


def glassgrad_fn(d2, y):
    vg = gg.value_and_grad(nll)
    return lambda: vg(THETA, d2, y)


def glassgrad_jit_fn(d2, y):
    vg = gg.jit(gg.value_and_grad(nll))
    return lambda: vg(THETA, d2, y)


def autograd_fn(d2, y):
    autograd, anp = common.load_autograd()
    if autograd is None:
        return None
    vg = autograd.value_and_grad(lambda t: nll(t, d2, y, anp))
    return lambda: vg(THETA)


def jax_fn(d2, y):
    jax = common.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy
    vg = jax.jit(jax.value_and_grad(lambda t, d2, y: nll(t, d2, y, jnp)))
    args = (jnp.asarray(THETA), jnp.asarray(d2), jnp.asarray(y))

    def run():
        v, g = vg(*args)
        return float(v), np.asarray(g)

    return run


def torch_fn(d2, y):
    torch = common.load_torch()
    if torch is None:
        return None
    d2t, yt = torch.from_numpy(d2), torch.from_numpy(y)

    class TorchNS:  # the few names nll uses, from torch
        exp, sum, eye, linalg = torch.exp, torch.sum, staticmethod(
            lambda n: torch.eye(n, dtype=torch.float64)), torch.linalg

    def run():
        theta = torch.tensor(THETA, requires_grad=True)
        value = nll(theta, d2t, yt, TorchNS)
        value.backward()
        return float(value), theta.grad.numpy()

    return run


WORKERS = {"numpy": (common.REFERENCE, numpy_fn), "glassgrad": ("glassgrad eager", glassgrad_fn),
           "glassgrad-jit": ("glassgrad jit", glassgrad_jit_fn),
           "autograd": ("HIPS autograd", autograd_fn), "jax": ("JAX jit", jax_fn),
           "torch": ("PyTorch (eager)", torch_fn)}


def worker(name: str) -> dict:
    d2, y = data(size())
    fn = WORKERS[name][1](d2, y)
    if fn is None:
        raise ImportError(f"{WORKERS[name][0]} is not installed")
    first = common.time_once(fn)
    t = common.measure(fn)
    value, grad = fn()
    ref_value, ref_grad = numpy_value_and_grad(THETA, d2, y)
    out = {"time": t.best, "median": t.median, "repeats": t.repeats, "first": first,
           "error": float(max(abs(float(value) - ref_value),
                              np.max(np.abs(np.asarray(grad) - ref_grad))))}
    if name == "glassgrad-jit":
        out["exact"] = common.same_bits("W7", fn(), gg.value_and_grad(nll)(THETA, d2, y))
    return out


def table(answers: dict) -> None:
    ref = answers["numpy"]["time"]
    rows = []
    for name, m in answers.items():
        note = []
        if "exact" in m:
            note.append("bit-identical to eager" if m["exact"] else "DIFFERS from eager")
        jit = name in ("glassgrad-jit", "jax")
        rows.append([WORKERS[name][0], common.fmt_time(m["time"]),
                     common.fmt_time(m["median"]), common.fmt_ratio(m["time"], ref),
                     common.fmt_time(m["first"]) if jit else "", f"{m['error']:.0e}",
                     "; ".join(note)])
    common.print_table(f"W7: GP negative log marginal likelihood and gradient, n={size()}, "
                       "best of repeats",
                       ["implementation", "time", "median", "vs NumPy", "first call",
                        "max diff", "note"], rows)
    gl, ag, jit = (answers.get(k, {}).get("time") for k in ("glassgrad", "autograd",
                                                             "glassgrad-jit"))
    if gl and ag:
        print(f"\neager vs autograd: {common.goal(gl / ag, 1.0, 'x')}")
    if jit:
        print(f"jit vs hand-written NumPy: {common.goal(jit / ref, 1.2, 'x')}")


def profile() -> None:
    d2, y = data(size())
    print(common.profile_summary(glassgrad_fn(d2, y), calls=5))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], WORKERS, worker,
                         lambda answers: table(answers) if "numpy" in answers else None, profile)


if __name__ == "__main__":
    main()
