"""W2: the seed article's network, trained by per-sample SGD on the diabetes data.

MLP 10 -> 16 -> 16 -> 1, sigmoid hidden layers, linear output, loss 0.5 * (pred - y)**2
per sample, SGD with lr 0.01, float64; X and y standardised. Every implementation starts
from the same weights (NumPy, seed 0, layout (in, out), x @ W + b) and visits the samples
in the same order (one permutation per epoch from seed 1), so all must end at the same
training MSE up to rounding. glassgrad also runs compiled: ``gg.jit(gg.value_and_grad(loss))``
over the parameter list plus the NumPy update, and ``gg.nn.TrainStep``; each compiled run
must end with exactly the parameters of its eager counterpart. The first step (tracing)
runs before the timed runs.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w2_seed_network.py
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

import common
import numpy as np

gg = common.load_glassgrad()

SIZES = (10, 16, 16, 1)
LR = 0.01
GOAL = 3.0  # eager glassgrad, times hand-written NumPy
JIT_GOAL = 1.2  # gg.jit and TrainStep (then: at or below JAX jit)


# --- shared data, weights, order and evaluation ---------------------------------------------


def data():
    from glassgrad.datasets import load_diabetes

    X, y = load_diabetes()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    return X, y.reshape(-1, 1)


def init_params() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    params = []
    for n_in, n_out in zip(SIZES, SIZES[1:], strict=False):
        bound = 1.0 / np.sqrt(n_in)
        params += [rng.uniform(-bound, bound, (n_in, n_out)), rng.uniform(-bound, bound, n_out)]
    return params


def epochs() -> int:
    return 2 if common.is_quick() else 20


def order(n_samples: int, n_epochs: int) -> list[int]:
    rng = np.random.default_rng(1)
    return [int(i) for _ in range(n_epochs) for i in rng.permutation(n_samples)]


def sigmoid(z, exp=np.exp):
    return 1.0 / (1.0 + exp(-z))


def forward(params, x, sig=sigmoid):
    w1, b1, w2, b2, w3, b3 = params
    a1 = sig(x @ w1 + b1)
    a2 = sig(a1 @ w2 + b2)
    return a2 @ w3 + b3


def mse(params) -> float:
    X, Y = data()
    return float(np.mean((forward([np.asarray(p) for p in params], X) - Y) ** 2))


# --- implementations: each returns (step(x, y), params(), rows) ------------------------------


def numpy_impl(X, Y):
    params = init_params()

    def step(x, y):
        w1, b1, w2, b2, w3, b3 = params
        a1 = sigmoid(x @ w1 + b1)
        a2 = sigmoid(a1 @ w2 + b2)
        d3 = (a2 @ w3 + b3) - y
        d2 = (d3 @ w3.T) * (a2 * (1.0 - a2))
        d1 = (d2 @ w2.T) * (a1 * (1.0 - a1))
        grads = (x.T @ d1, d1.sum(0), a1.T @ d2, d2.sum(0), a2.T @ d3, d3.sum(0))
        for p, g in zip(params, grads, strict=True):
            p -= LR * g

    return step, lambda: params, _rows(X, Y)


def _rows(X, Y, convert=lambda a: a):
    return [(convert(X[i:i + 1]), convert(Y[i:i + 1])) for i in range(len(X))]


def _squared_error(params, x, y, sig=sigmoid):
    diff = forward(params, x, sig) - y
    return 0.5 * (diff * diff).sum()


def glassgrad_impl(X, Y):
    params = init_params()
    vg = gg.value_and_grad(_squared_error)

    def step(x, y):
        _, grads = vg(params, x, y)
        for p, g in zip(params, grads, strict=True):
            p -= LR * g

    return step, lambda: params, _rows(X, Y)


@functools.cache
def _jit_vg():
    """The compiled value_and_grad, one per process: repeated runs reuse its program."""
    return gg.jit(gg.value_and_grad(_squared_error))


def glassgrad_jit_impl(X, Y):
    params = init_params()
    vg = _jit_vg()

    def step(x, y):
        _, grads = vg(params, x, y)
        for p, g in zip(params, grads, strict=True):
            p -= LR * g

    return step, lambda: params, _rows(X, Y)


@functools.cache
def _model(compiled: bool, backend: str = "numpy"):
    """One gg.nn model, optimizer and (compiled) step per process; each run reloads the
    initial weights in place, so a TrainStep's program is traced once."""
    nn = importlib.import_module("glassgrad.nn")
    optim = importlib.import_module("glassgrad.optim")
    model = nn.MLP(list(SIZES), rng=0)
    opt = optim.SGD(model.parameters(), lr=LR)
    if compiled:
        step = nn.TrainStep(model, nn.squared_error, opt)
        if backend != "numpy":  # TrainStep's own program, compiled by another backend
            step._program = gg.jit(gg.value_and_grad(step._objective), backend=backend)
        return model, step

    def step(x, y):
        opt.zero_grad()
        nn.squared_error(model(x), y).backward()
        opt.step()

    return model, step


def glassgrad_nn_impl(X, Y, compiled=False, backend="numpy"):
    if backend == "numba" and importlib.util.find_spec("numba") is None:
        return None
    model, step = _model(compiled, backend)
    names = [name for name, _ in model.named_parameters()]
    model.load_state_dict(dict(zip(names, init_params(), strict=True)))
    return step, lambda: [p.data.copy() for p in model.parameters()], _rows(X, Y)


def torch_impl(X, Y):
    torch = common.load_torch()
    if torch is None:
        return None
    params = [torch.tensor(p, requires_grad=True) for p in init_params()]
    opt = torch.optim.SGD(params, lr=LR)

    def step(x, y):
        opt.zero_grad()
        _squared_error(params, x, y, torch.sigmoid).backward()
        opt.step()

    rows = _rows(X, Y, torch.from_numpy)
    return step, lambda: [p.detach().numpy() for p in params], rows


def autograd_impl(X, Y):
    autograd, anp = common.load_autograd()
    if autograd is None:
        return None
    params = init_params()
    vg = autograd.value_and_grad(
        lambda p, x, y: _squared_error(p, x, y, lambda z: sigmoid(z, anp.exp)))

    def step(x, y):
        _, grads = vg(params, x, y)
        for p, g in zip(params, grads, strict=True):
            p -= LR * g

    return step, lambda: params, _rows(X, Y)


@functools.cache
def _jax_step(jit: bool):
    """The update, built (and with ``jit`` compiled) once per process, so repeats reuse it."""
    jax = common.load_jax()
    vg = jax.value_and_grad(lambda p, x, y: _squared_error(p, x, y, jax.nn.sigmoid))

    def update(params, x, y):
        _, grads = vg(params, x, y)
        return [p - LR * g for p, g in zip(params, grads, strict=True)]

    return jax.jit(update) if jit else update


def jax_impl(X, Y, jit=True):
    jax = common.load_jax()
    if jax is None:
        return None
    update = _jax_step(jit)
    state = {"params": [jax.numpy.asarray(p) for p in init_params()]}

    def step(x, y):
        state["params"] = update(state["params"], x, y)

    rows = _rows(X, Y, jax.numpy.asarray)
    return step, lambda: jax.block_until_ready(state["params"]), rows


IMPLS = {"numpy": (common.REFERENCE, numpy_impl), "glassgrad": ("glassgrad functional",
         glassgrad_impl), "glassgrad-nn": ("glassgrad gg.nn", glassgrad_nn_impl),
         "glassgrad-jit": ("glassgrad jit functional", glassgrad_jit_impl),
         "glassgrad-trainstep": ("glassgrad jit gg.nn.TrainStep",
                                 lambda X, Y: glassgrad_nn_impl(X, Y, compiled=True)),
         "glassgrad-numba": ("glassgrad jit numba gg.nn.TrainStep",
                             lambda X, Y: glassgrad_nn_impl(X, Y, True, "numba")),
         "torch": ("PyTorch eager", torch_impl), "autograd": ("HIPS autograd", autograd_impl),
         "jax": ("JAX jit (per-sample steps)", jax_impl),
         "jax-eager": ("JAX eager (no jit)", lambda X, Y: jax_impl(X, Y, jit=False))}
JAX_EAGER_STEPS = 200
EAGER_OF = {"glassgrad-jit": "glassgrad", "glassgrad-trainstep": "glassgrad-nn",
            "glassgrad-numba": "glassgrad-nn"}
NUMBA = "glassgrad-numba"  # within 1e-12 relative of the NumPy program, not bit for bit
JAX_JIT = "jax"


# --- worker and table ------------------------------------------------------------------------


def train(build, seq) -> tuple[float, list]:
    """Seconds for the whole run of ``seq`` steps and the final parameters."""
    built = build(*data())
    if built is None:
        raise ImportError("this implementation's library is not installed")
    step, get_params, rows = built
    batches = [rows[i] for i in seq]
    start = common.clock()
    for x, y in batches:
        step(x, y)
    params = get_params()
    elapsed = common.clock() - start
    return elapsed, [np.asarray(p) for p in params]


def worker(name: str) -> dict:
    label, build = IMPLS[name]
    X, _ = data()
    seq = order(len(X), epochs())
    if name == "jax-eager":
        seq = seq[:50 if common.is_quick() else JAX_EAGER_STEPS]
    repeats = 1 if name == "jax-eager" else 2 if common.is_quick() else 3
    first = train(build, seq[:1])[0] if name in EAGER_OF else None  # traces the program
    runs = [train(build, seq) for _ in range(repeats)]
    best = min(t for t, _ in runs)
    params = runs[0][1]
    ref = train(numpy_impl, seq)[1]  # the reference run, after the timed runs
    diff = max(float(np.max(np.abs(p - r))) for p, r in zip(params, ref, strict=True))
    out = {"label": label, "steps": len(seq), "time": best, "repeats": repeats,
           "mse": mse(params), "diff": diff, "first": first}
    if name in EAGER_OF:
        eager = train(IMPLS[EAGER_OF[name]][1], seq)[1]
        if name == NUMBA:
            out["rel"] = max(float(np.max(np.abs(p - e) / np.maximum(np.abs(e), 1e-300)))
                             for p, e in zip(params, eager, strict=True))
        else:
            out["exact"] = common.same_bits(f"W2 {label}, final parameters", params, eager)
    return out


def verdict(name: str, ratio: float, per_step: float, answers: dict) -> str:
    if name in EAGER_OF:
        jax = answers.get(JAX_JIT)
        text = common.goal(ratio, JIT_GOAL, "x")
        if jax is not None:
            vs = per_step / (jax["time"] / jax["steps"])
            text += f"; vs JAX jit {vs:.2f}x: {'met' if vs <= 1.0 else 'missed'}"
        return text
    return common.goal(ratio, GOAL, "x") if name.startswith("glassgrad") else ""


def table(answers: dict) -> None:
    ref = answers["numpy"]
    ref_step = ref["time"] / ref["steps"]
    rows = []
    for name, r in answers.items():
        per_step = r["time"] / r["steps"]
        ratio = per_step / ref_step
        mse_text = f"{r['mse']:.12f}" if r["steps"] == ref["steps"] else "n/a (partial run)"
        exact = {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")
        if "rel" in r:
            exact = f"{r['rel']:.0e} rel."
        first = common.fmt_time(r["first"]) if r.get("first") is not None else ""
        rows.append([r["label"], r["steps"], f"{per_step * 1e6:.1f}", f"{ratio:.2f}x", first,
                     mse_text, f"{r['diff']:.1e}", exact,
                     verdict(name, ratio, per_step, answers)])
    common.print_table(f"W2: seed network, per-sample SGD, {epochs()} epochs of 442 samples",
                       ["implementation", "steps", "µs/step", "vs NumPy", "first step (trace)",
                        "training MSE", "max param diff vs NumPy", "jit vs eager",
                        "goal (eager ≤ 3x; jit ≤ 1.2x, then ≤ JAX jit)"], rows)


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], IMPLS, worker,
                         lambda answers: table(answers) if "numpy" in answers else None, profile)

def profile() -> None:
    X, Y = data()
    for label, build in (("functional", glassgrad_impl), ("gg.nn", glassgrad_nn_impl)):
        step, _, rows = build(X, Y)
        print(f"\nglassgrad {label}, one SGD step per call:")
        print(common.profile_summary(lambda step=step, rows=rows: step(*rows[0]), calls=2000))
    profile_jit(X, Y)


def profile_jit(X, Y) -> None:
    """Where a compiled step's time goes: program, call overhead and the update."""
    x, y = X[:1], Y[:1]
    hand, _, _ = numpy_impl(X, Y)
    print(f"\nhand-written NumPy step: {common.fmt_time(common.measure(lambda: hand(x, y)).best)}")
    params = init_params()
    vg = _jit_vg()
    step, _, _ = glassgrad_jit_impl(X, Y)
    whole = common.measure(lambda: step(x, y)).best
    print(f"glassgrad jit functional: step {common.fmt_time(whole)}; value_and_grad "
          f"{common.jit_breakdown(vg, (params, x, y), (*params, x, y))}")
    step, _, _ = glassgrad_nn_impl(X, Y, compiled=True)
    lg = common.measure(lambda: step.loss_and_grads(x, y)).best
    whole = common.measure(lambda: step(x, y)).best
    lines, calls = common.program_lines(step.source(x, y))
    print(f"glassgrad jit gg.nn.TrainStep: step {common.fmt_time(whole)} = loss_and_grads "
          f"{common.fmt_time(lg)} (program of {lines} lines, {calls} NumPy calls) + optimizer "
          f"and checks {common.fmt_time(whole - lg)}")
    print(common.profile_summary(lambda: step(x, y), calls=2000, top=12))


if __name__ == "__main__":
    main()
