"""W3: minibatch training in float32.

W3a: digits (X / 16), MLP 64 -> 128 -> 128 -> 10, tanh, mean cross-entropy, batch 64,
SGD lr 0.1; µs per step and training accuracy. Same initial weights (NumPy, seed 0) and
batch order (seed 1) for every implementation.
W3b: batch 4096, MLP 1024 -> 1024 -> 1024 -> 10, ReLU, random data: the time of one SGD
step, its GFLOP/s against NumPy's own float32 matmul, and its peak memory.
glassgrad runs eagerly and compiled (``gg.jit`` of the functional value_and_grad plus the
NumPy update, and ``gg.nn.TrainStep``); the compiled programs are traced in the warm-up,
and each compiled run must end with exactly the parameters of its eager counterpart.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w3_digits.py
"""

from __future__ import annotations

import functools
import importlib
import statistics

import common
import numpy as np

gg = common.load_glassgrad()

F32 = np.float32
DIGITS = (64, 128, 128, 10)
BIG = (1024, 1024, 1024, 10)
BATCH, BIG_BATCH = 64, 4096
LR_DIGITS, LR_BIG = 0.1, 0.01


# --- shared weights, data and reference maths --------------------------------------------------


def init_params(sizes) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        bound = 1.0 / np.sqrt(n_in)
        params += [rng.uniform(-bound, bound, (n_in, n_out)).astype(F32),
                   rng.uniform(-bound, bound, n_out).astype(F32)]
    return params


def relu(z):
    return np.maximum(z, 0.0)


def forward(params, x, act):
    *hidden, w_out, b_out = params
    for w, b in zip(hidden[::2], hidden[1::2], strict=True):
        x = act(x @ w + b)
    return x @ w_out + b_out


def digits_data():
    from glassgrad.datasets import load_digits

    X, y = load_digits()
    return (X / 16.0).astype(F32), y.astype(np.int64)


def big_data():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((BIG_BATCH, BIG[0]), dtype=F32)
    return X, rng.integers(0, BIG[-1], BIG_BATCH)


def batches(n: int, epochs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        out += [perm[i:i + BATCH] for i in range(0, n, BATCH)]
    return out


# --- implementations: make(params, act, lr) -> (step(x, y), params()) --------------------------


def numpy_make(params, act, lr):
    params = [p.copy() for p in params]

    def step(x, y):
        acts = [x]
        for w, b in zip(params[:-2:2], params[1:-2:2], strict=True):
            acts.append(np.tanh(acts[-1] @ w + b) if act == "tanh" else relu(acts[-1] @ w + b))
        logits = acts[-1] @ params[-2] + params[-1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        d = e / e.sum(axis=1, keepdims=True)
        d[np.arange(len(y)), y] -= 1.0
        d /= len(y)
        grads = []
        for i in range(len(params) // 2 - 1, -1, -1):
            a = acts[i]
            grads[:0] = [a.T @ d, d.sum(axis=0)]
            if i:
                d = d @ params[2 * i].T
                d *= (1.0 - a * a) if act == "tanh" else (a > 0)
        for p, g in zip(params, grads, strict=True):
            p -= lr * g

    return step, lambda: params


def _loss(params, x, y, act, log_softmax):
    logp = log_softmax(forward(params, x, act))
    return -logp[np.arange(len(y)), y].mean()


def glassgrad_make(params, act, lr):
    params = [p.copy() for p in params]
    fn = np.tanh if act == "tanh" else relu
    vg = gg.value_and_grad(lambda p, x, y: _loss(p, x, y, fn, gg.log_softmax))

    def step(x, y):
        _, grads = vg(params, x, y)
        for p, g in zip(params, grads, strict=True):
            p -= lr * g

    return step, lambda: params


@functools.cache
def _jit_vg(act: str):
    """The compiled value_and_grad, one per process and activation: runs reuse it."""
    fn = np.tanh if act == "tanh" else relu
    return gg.jit(gg.value_and_grad(lambda p, x, y: _loss(p, x, y, fn, gg.log_softmax)))


def glassgrad_jit_make(params, act, lr):
    params = [p.copy() for p in params]
    vg = _jit_vg(act)

    def step(x, y):
        _, grads = vg(params, x, y)
        for p, g in zip(params, grads, strict=True):
            p -= lr * g

    return step, lambda: params


def glassgrad_nn_make(params, act, lr, compiled=False):
    sizes = (params[0].shape[0], *(p.shape[0] for p in params[1::2]))
    model, step = _model(sizes, act, lr, compiled)
    names = [name for name, _ in model.named_parameters()]
    model.load_state_dict(dict(zip(names, params, strict=True)))
    return step, lambda: [p.data.copy() for p in model.parameters()]


@functools.cache
def _model(sizes: tuple, act: str, lr: float, compiled: bool):
    """One model, optimizer and step per process and shape; a run reloads the initial
    weights in place (``load_state_dict``), so a TrainStep's programs are traced once."""
    nn = importlib.import_module("glassgrad.nn")
    optim = importlib.import_module("glassgrad.optim")
    model = nn.MLP(sizes, activation=nn.Tanh() if act == "tanh" else nn.ReLU(), dtype=F32)
    opt = optim.SGD(model.parameters(), lr=lr)
    if compiled:
        return model, nn.TrainStep(model, nn.cross_entropy, opt)

    def step(x, y):
        opt.zero_grad()
        nn.cross_entropy(model(x), y).backward()
        opt.step()

    return model, step


def torch_make(params, act, lr):
    torch = common.load_torch()
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    opt = torch.optim.SGD(tp, lr=lr)
    fn = torch.tanh if act == "tanh" else torch.relu

    def step(x, y):
        opt.zero_grad()
        logits = forward(tp, torch.from_numpy(x), fn)
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
        opt.step()

    return step, lambda: [p.detach().numpy() for p in tp]


@functools.cache
def _jax_update(act: str, lr: float):
    """The jitted SGD update, built once per process so that repeated runs reuse it."""
    jax = common.load_jax()
    jnp = jax.numpy
    fn = jnp.tanh if act == "tanh" else jax.nn.relu

    def loss(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x, fn))
        return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()

    @jax.jit
    def update(p, x, y):
        grads = jax.grad(loss)(p, x, y)
        return [a - lr * g for a, g in zip(p, grads, strict=True)]

    return update


def jax_make(params, act, lr):
    jax = common.load_jax()
    update = _jax_update(act, lr)
    state = {"p": [jax.numpy.asarray(p) for p in params]}

    def step(x, y):
        state["p"] = jax.block_until_ready(update(state["p"], x, y))

    return step, lambda: state["p"]


IMPLS = {"numpy": (common.REFERENCE, numpy_make, None),
         "glassgrad": ("glassgrad functional", glassgrad_make, None),
         "glassgrad-nn": ("glassgrad gg.nn", glassgrad_nn_make, "glassgrad.nn"),
         "glassgrad-jit": ("glassgrad jit functional", glassgrad_jit_make, None),
         "glassgrad-trainstep": ("glassgrad jit gg.nn.TrainStep",
                                 functools.partial(glassgrad_nn_make, compiled=True), None),
         "torch": ("PyTorch eager", torch_make, "torch"),
         "jax": ("JAX jit", jax_make, "jax")}
EAGER_OF = {"glassgrad-jit": "glassgrad", "glassgrad-trainstep": "glassgrad-nn"}
NUMPY_BASED = {"numpy", "glassgrad", "glassgrad-nn", "glassgrad-jit", "glassgrad-trainstep"}
GOAL_3B = 1.05  # TrainStep, times hand-written NumPy (and RSS peak at most PyTorch's)


# --- W3a and W3b measurements ----------------------------------------------------------------


def epochs() -> int:
    return 2 if common.is_quick() else 20


def digits_train(make, data) -> list[np.ndarray]:
    step, get = make(init_params(DIGITS), "tanh", LR_DIGITS)
    for xb, yb in data:
        step(xb, yb)
    return [np.asarray(p) for p in get()]


def digits_run(make) -> dict:
    X, y = digits_data()
    order = batches(len(X), epochs())
    data = [(X[idx], y[idx]) for idx in order]
    warm, _ = make(init_params(DIGITS), "tanh", LR_DIGITS)
    start = common.clock()
    for xb, yb in (data[0], data[-1]):  # JIT compilation (tracing) for both batch shapes
        warm(xb, yb)
    first = common.clock() - start
    runs = []
    for _ in range(2 if common.is_quick() else 3):
        step, get = make(init_params(DIGITS), "tanh", LR_DIGITS)
        start = common.clock()
        for xb, yb in data:
            step(xb, yb)
        runs.append((common.clock() - start, [np.asarray(p) for p in get()]))
    params = runs[0][1]
    logits = forward(params, X, np.tanh)
    return {"per_step": min(t for t, _ in runs) / len(data), "steps": len(data),
            "accuracy": float(np.mean(np.argmax(logits, axis=1) == y)), "first": first,
            "params": params, "data": data}


def big_run(make, numpy_based: bool) -> dict:
    X, y = big_data()
    step, _ = make(init_params(BIG), "relu", LR_BIG)
    first = common.time_once(lambda: step(X, y))
    times = [common.time_once(lambda: step(X, y)) for _ in range(2 if common.is_quick() else 5)]
    out = {"time": min(times), "median": statistics.median(times), "first": first,
           "rss": common.rss_peak(lambda: step(X, y))}
    if numpy_based:
        out["traced"] = common.traced_peak(lambda: step(X, y))
    return out


def big_one_step(make) -> list[np.ndarray]:
    X, y = big_data()
    step, get = make(init_params(BIG), "relu", LR_BIG)
    step(X, y)
    return [np.asarray(p).copy() for p in get()]


def matmul_gflops() -> float:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((BIG_BATCH, 1024), dtype=F32)
    b = rng.standard_normal((1024, 1024), dtype=F32)
    return 2 * BIG_BATCH * 1024 * 1024 / common.measure(lambda: a @ b).best / 1e9


def step_flops() -> float:
    """2*M*N*K for each layer's forward and weight-gradient matmuls, and for the input
    gradient of every layer but the first (the data needs no gradient): the useful work."""
    layers = [2 * BIG_BATCH * n_in * n_out for n_in, n_out in zip(BIG, BIG[1:], strict=False)]
    return 3 * sum(layers) - layers[0]


def worker(name: str) -> dict:
    label, make, module = IMPLS[name]
    if module and common.optional(module) is None:
        raise ImportError(f"{module} is not installed")
    w3a = digits_run(make)
    params, data = w3a.pop("params"), w3a.pop("data")
    out = {"label": label, "w3a": w3a}
    out["w3b"] = big_run(make, name in NUMPY_BASED)
    if name == "numpy":
        out["matmul_gflops"] = matmul_gflops()
    if name in EAGER_OF:
        eager = IMPLS[EAGER_OF[name]][1]
        out["w3a"]["exact"] = common.same_bits(f"W3a {label}, final parameters", params,
                                               digits_train(eager, data))
        out["w3b"]["exact"] = common.same_bits(f"W3b {label}, parameters after one step",
                                               big_one_step(make), big_one_step(eager))
    return out


def _exact(r: dict) -> str:
    return {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")


def _first(name: str, r: dict) -> str:
    return common.fmt_time(r["first"]) if name in EAGER_OF or name == "jax" else ""


def goal_3a(name: str, r: dict, answers: dict) -> str:
    if name not in EAGER_OF or "jax" not in answers:
        return ""
    vs = r["w3a"]["per_step"] / answers["jax"]["w3a"]["per_step"]
    return f"{vs:.2f}x"


def goal_3b(name: str, r: dict, answers: dict) -> str:
    if name != "glassgrad-trainstep":
        return ""
    text = common.goal(r["w3b"]["time"] / answers["numpy"]["w3b"]["time"], GOAL_3B, "x")
    torch = answers.get("torch")
    if torch is not None and torch["w3b"]["rss"] and r["w3b"]["rss"]:
        ratio = r["w3b"]["rss"] / torch["w3b"]["rss"]
        text += f"; RSS {ratio:.2f}x PyTorch's: {'met' if ratio <= 1.0 else 'missed'}"
    return text


def tables(answers: dict) -> None:
    ref = answers["numpy"]
    rows = [[r["label"], r["w3a"]["steps"], f"{r['w3a']['per_step'] * 1e6:.1f}",
             common.fmt_ratio(r["w3a"]["per_step"], ref["w3a"]["per_step"]),
             _first(name, r["w3a"]), f"{r['w3a']['accuracy']:.4f}", _exact(r["w3a"]),
             goal_3a(name, r, answers)] for name, r in answers.items()]
    common.print_table(f"W3a: digits, MLP 64-128-128-10 tanh, batch 64, float32, {epochs()} "
                       "epochs", ["implementation", "steps", "µs/step", "vs NumPy",
                                  "first 2 steps (trace/compile)", "train accuracy",
                                  "jit vs eager", "vs JAX jit"], rows)
    peak = ref["matmul_gflops"]
    rows = []
    for name, r in answers.items():
        b = r["w3b"]
        gflops = step_flops() / b["time"] / 1e9
        rows.append([r["label"], common.fmt_time(b["time"]), common.fmt_time(b["median"]),
                     common.fmt_ratio(b["time"], ref["w3b"]["time"]), _first(name, b),
                     f"{gflops:.1f}", f"{gflops / peak:.0%}", common.fmt_bytes(b.get("traced")),
                     common.fmt_bytes(b["rss"]), _exact(b), goal_3b(name, r, answers)])
    common.print_table(f"W3b: one SGD step, batch 4096, MLP 1024-1024-1024-10 ReLU, float32; "
                       f"NumPy float32 matmul 4096x1024 @ 1024x1024: {peak:.1f} GFLOP/s; "
                       f"{step_flops() / 1e9:.1f} GFLOP of matmul per step",
                       ["implementation", "step (best)", "step (median)", "vs NumPy",
                        "first step (trace/compile)", "GFLOP/s", "of matmul GFLOP/s",
                        "traced peak", "RSS peak", "jit vs eager",
                        "goal (TrainStep ≤ 1.05x, RSS ≤ PyTorch's)"], rows)


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], IMPLS, worker,
                         lambda answers: tables(answers) if "numpy" in answers else None, profile)


def profile() -> None:
    X, y = digits_data()
    step, _ = glassgrad_make(init_params(DIGITS), "tanh", LR_DIGITS)
    print("\nglassgrad functional, W3a, one step per call:")
    print(common.profile_summary(lambda: step(X[:BATCH], y[:BATCH]), calls=300))
    profile_jit(X, y)

def profile_jit(X, y) -> None:
    """Where the compiled steps' time goes (W3a batch and W3b)."""
    xb, yb = X[:BATCH], y[:BATCH]
    hand, _ = numpy_make(init_params(DIGITS), "tanh", LR_DIGITS)
    print(f"\nW3a hand-written NumPy step: "
          f"{common.fmt_time(common.measure(lambda: hand(xb, yb)).best)}")
    params = init_params(DIGITS)
    vg = _jit_vg("tanh")
    print(f"W3a glassgrad jit functional, value_and_grad: "
          f"{common.jit_breakdown(vg, (params, xb, yb), (*params, xb, yb))}")
    step, _ = glassgrad_nn_make(init_params(DIGITS), "tanh", LR_DIGITS, compiled=True)
    lg = common.measure(lambda: step.loss_and_grads(xb, yb)).best
    whole = common.measure(lambda: step(xb, yb)).best
    lines, calls = common.program_lines(step.source(xb, yb))
    print(f"W3a glassgrad jit gg.nn.TrainStep: step {common.fmt_time(whole)} = loss_and_grads "
          f"{common.fmt_time(lg)} (program of {lines} lines, {calls} NumPy calls) + optimizer "
          f"{common.fmt_time(whole - lg)}")
    Xb, Yb = big_data()
    step, _ = glassgrad_nn_make(init_params(BIG), "relu", LR_BIG, compiled=True)
    step(Xb, Yb)
    print("\nW3b glassgrad jit gg.nn.TrainStep, the program:")
    print(step.source(Xb, Yb))
    print(common.profile_summary(lambda: step(Xb, Yb), calls=3, top=12))


if __name__ == "__main__":
    main()
