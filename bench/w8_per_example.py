"""W8: per-example gradients of the W3a MLP (64-128-128-10, tanh, cross-entropy), float32.

One batch of 64 digits; the loss of one example is logsumexp(logits) - logits[y], and the
transform gives its gradient for each of the 64 examples at once (a list of four weight
and bias arrays, each with a leading axis of 64):
``gg.vmap(gg.grad(loss), in_axes=(None, 0, 0))``, eagerly and under ``gg.jit``, against
``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))`` (eager) and
``jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))``. The reference is the same
gradients written out by hand in NumPy (one batched backward pass, outer products for the
weights). The compiled result must equal the eager one bit for bit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w8_per_example.py
"""

from __future__ import annotations

import common
import numpy as np
import w3_digits as w3

gg = common.load_glassgrad()

F32 = np.float32


def data():
    X, y = w3.digits_data()
    rng = np.random.default_rng(1)
    pick = rng.permutation(len(y))[:w3.BATCH]
    return w3.init_params(w3.DIGITS), X[pick], y[pick]


def loss(params, x, y, tanh=np.tanh, logsumexp=None):
    """One example's cross-entropy: logsumexp(logits) - logits[y]."""
    logits = w3.forward(params, x, tanh)
    return (logsumexp or gg.logsumexp)(logits) - logits[y]


def numpy_fn(params, X, y):
    """Hand-written per-example gradients: one batched backward pass."""
    def grads(params, X, y):
        acts = [X]
        for w, b in zip(params[:-2:2], params[1:-2:2], strict=True):
            acts.append(np.tanh(acts[-1] @ w + b))
        logits = acts[-1] @ params[-2] + params[-1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        d = e / e.sum(axis=1, keepdims=True)
        d[np.arange(len(y)), y] -= 1.0
        out = []
        for i in range(len(params) // 2 - 1, -1, -1):
            a = acts[i]
            out[:0] = [a[:, :, None] * d[:, None, :], d]
            if i:
                d = (d @ params[2 * i].T) * (1.0 - a * a)
        return out

    return lambda: grads(params, X, y)


def glassgrad_fn(params, X, y):
    per_example = gg.vmap(gg.grad(loss), in_axes=(None, 0, 0))
    return lambda: per_example(params, X, y)


def glassgrad_jit_fn(params, X, y):
    per_example = gg.jit(gg.vmap(gg.grad(loss), in_axes=(None, 0, 0)))
    return lambda: per_example(params, X, y)


def torch_fn(params, X, y):
    torch = common.load_torch()
    if torch is None:
        return None
    from torch import func

    def tloss(p, x, t):
        # As torch.func's per-sample-gradients tutorial writes it: a batch of one.
        logits = w3.forward(p, x, torch.tanh)
        return torch.nn.functional.cross_entropy(logits.unsqueeze(0), t.unsqueeze(0))

    per_example = func.vmap(func.grad(tloss), in_dims=(None, 0, 0))
    pt = [torch.from_numpy(p) for p in params]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    return lambda: per_example(pt, Xt, yt)


def jax_fn(params, X, y):
    jax = common.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy

    def jloss(p, x, t):
        return loss(p, x, t, jnp.tanh, jax.nn.logsumexp)

    per_example = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
    pj = [jnp.asarray(p) for p in params]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    return lambda: jax.block_until_ready(per_example(pj, Xj, yj))


WORKERS = {"numpy": (common.REFERENCE, numpy_fn), "glassgrad": ("glassgrad", glassgrad_fn),
           "glassgrad-jit": ("glassgrad jit", glassgrad_jit_fn),
           "torch": ("torch.func (eager)", torch_fn), "jax": ("JAX jit", jax_fn)}


def worker(name: str) -> dict:
    params, X, y = data()
    fn = WORKERS[name][1](params, X, y)
    if fn is None:
        raise ImportError(f"{WORKERS[name][0]} is not installed")
    first = common.time_once(fn)
    t = common.measure(fn)
    result = [np.asarray(g) for g in fn()]
    ref = numpy_fn(params, X, y)()
    out = {"time": t.best, "median": t.median, "first": first,
           "error": max(float(np.max(np.abs(r - g))) for r, g in zip(ref, result, strict=True)),
           "dtypes": sorted({str(g.dtype) for g in result})}
    if name == "glassgrad-jit":
        out["exact"] = common.same_bits("W8", result, glassgrad_fn(params, X, y)())
    return out


def table(answers: dict) -> None:
    ref = answers["numpy"]["time"]
    rows = []
    for name, m in answers.items():
        note = ""
        if "exact" in m:
            note = "bit-identical to eager" if m["exact"] else "DIFFERS from eager"
        jit = name in ("glassgrad-jit", "jax")
        rows.append([WORKERS[name][0], common.fmt_time(m["time"]), common.fmt_time(m["median"]),
                     common.fmt_ratio(m["time"], ref), common.fmt_time(m["first"]) if jit else "",
                     f"{m['error']:.0e}", ", ".join(m["dtypes"]), note])
    common.print_table("W8: per-example gradients, MLP 64-128-128-10, batch 64, float32",
                       ["implementation", "best", "median", "vs NumPy",
                        "first call (trace/compile)", "max diff", "dtype", "note"], rows)
    goals = []
    if "glassgrad" in answers and "torch" in answers:
        goals.append("eager vs torch.func: " + common.goal(
            answers["glassgrad"]["time"] / answers["torch"]["time"], 1.0))
    if "glassgrad-jit" in answers and "jax" in answers:
        goals.append("gg.jit vs JAX jit: " + common.goal(
            answers["glassgrad-jit"]["time"] / answers["jax"]["time"], 1.0))
    if goals:
        print("\nGoals (at most 1x): " + "; ".join(goals))


def profile() -> None:
    params, X, y = data()
    print(common.profile_summary(glassgrad_fn(params, X, y), calls=50))
    jitted = gg.jit(gg.vmap(gg.grad(loss), in_axes=(None, 0, 0)))
    print(f"\nglassgrad jit: {common.jit_breakdown(jitted, (params, X, y), (*params, X, y))}")
    print("\n" + jitted.source(params, X, y))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], WORKERS, worker,
                         lambda answers: table(answers) if "numpy" in answers else None, profile)


if __name__ == "__main__":
    main()
