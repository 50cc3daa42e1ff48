"""W6: micrograd's moons demo, full-batch SGD, µs per step and final accuracy.

MLP 2 -> 16 -> 16 -> 1, ReLU hidden layers, linear output, on 100 points of the two-moons
data (the make_moons formula, noise 0.1, NumPy seed 0, labels -1 and +1). Loss: the
max-margin (SVM hinge) loss mean(relu(1 - y * score)) plus 1e-4 * sum(p * p) over all
parameters; SGD with lr 1.0 - 0.9 * k / 100 at step k, as in micrograd's demo; 100 steps.
Every implementation starts from the same weights (uniform(-1, 1), zero biases, NumPy
seed 1, layout (in, out)) and ends at the same parameters up to rounding. The loss and
training accuracy are evaluated in NumPy from each run's final parameters. Every step
returns its loss, as a training loop that logs it would.

glassgrad runs eagerly and compiled: ``gg.jit(gg.value_and_grad(loss))`` over the
parameter list plus the NumPy update, and ``gg.nn.TrainStep`` (the L2 term there is the
optimizer's ``weight_decay = 2e-4``, its gradient). Each compiled run must end with
exactly the parameters of its eager counterpart. micrograd works on scalars (about a
second per step): it runs only the first few steps, compared with the hand-written run
after as many.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w6_moons.py
"""

from __future__ import annotations

import functools
import importlib

import common
import numpy as np

gg = common.load_glassgrad()

SIZES = (2, 16, 16, 1)
N_POINTS, NOISE = 100, 0.1
ALPHA = 1e-4
STEPS = 100
JIT_GOAL = 1.2  # compiled glassgrad, times the hand-written NumPy step
MICROGRAD_STEPS = 5
EAGER_OF = {"glassgrad-jit": "glassgrad", "glassgrad-trainstep": "glassgrad-nn"}


# --- shared data, weights, schedule and evaluation --------------------------------------------


def moons() -> tuple[np.ndarray, np.ndarray]:
    """The two-moons points (scikit-learn's make_moons formula) and labels -1 / +1, as a
    column (N, 1)."""
    rng = np.random.default_rng(0)
    n_out = N_POINTS // 2
    n_in = N_POINTS - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   np.column_stack([1.0 - np.cos(t_in), 1.0 - np.sin(t_in) - 0.5])])
    y = np.hstack([-np.ones(n_out), np.ones(n_in)])
    X = X + rng.normal(scale=NOISE, size=X.shape)
    perm = rng.permutation(N_POINTS)
    return X[perm], y[perm].reshape(-1, 1)


def init_params() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    params = []
    for n_in, n_out in zip(SIZES, SIZES[1:], strict=False):
        params += [rng.uniform(-1.0, 1.0, (n_in, n_out)), np.zeros(n_out)]
    return params


def lr(k: int) -> float:
    return 1.0 - 0.9 * k / STEPS


def scores(params, X, relu):
    w1, b1, w2, b2, w3, b3 = params
    h1 = relu(X @ w1 + b1)
    h2 = relu(h1 @ w2 + b2)
    return h2 @ w3 + b3


def loss(params, X, y, relu, total):
    """micrograd's objective: mean hinge loss plus ALPHA * the sum of squared parameters."""
    data_loss = total(relu(1.0 - y * scores(params, X, relu))) * (1.0 / N_POINTS)
    return data_loss + ALPHA * sum(total(p * p) for p in params)


def np_relu(z):
    return np.maximum(z, 0.0)


def accuracy(params) -> float:
    X, y = moons()
    s = scores([np.asarray(p) for p in params], X, np_relu)
    return float(np.mean((s > 0) == (y > 0)))


def objective(params) -> float:
    X, y = moons()
    return float(loss([np.asarray(p) for p in params], X, y, np_relu, np.sum))


# --- implementations: build() -> (step(k), params()) -------------------------------------------


def numpy_build():
    """Forward and backward by hand: d/ds of mean(relu(1 - y s)) is -y / N where the
    margin is positive; the L2 term adds 2 * ALPHA * p."""
    X, y = moons()
    params = init_params()
    neg_y = -y / N_POINTS

    def step(k):
        w1, b1, w2, b2, w3, b3 = params
        z1 = X @ w1 + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0.0)
        margin = 1.0 - y * (h2 @ w3 + b3)
        value = np.sum(np.maximum(margin, 0.0)) * (1.0 / N_POINTS)
        value += ALPHA * sum(np.sum(p * p) for p in params)
        ds = neg_y * (margin > 0)
        dz2 = (ds @ w3.T) * (z2 > 0)
        dz1 = (dz2 @ w2.T) * (z1 > 0)
        grads = (X.T @ dz1, dz1.sum(0), h1.T @ dz2, dz2.sum(0), h2.T @ ds, ds.sum(0))
        rate = lr(k)
        for p, g in zip(params, grads, strict=True):
            g += (2.0 * ALPHA) * p
            g *= rate
            p -= g
        return value

    return step, lambda: params


def _gg_loss(params, X, y):
    return loss(params, X, y, lambda z: z.relu(), np.sum)


def _functional(vg):
    X, y = moons()
    params = init_params()

    def step(k):
        value, grads = vg(params, X, y)
        rate = lr(k)
        for p, g in zip(params, grads, strict=True):
            p -= rate * g
        return value

    return step, lambda: params


def glassgrad_build():
    return _functional(gg.value_and_grad(_gg_loss))


@functools.cache
def _jit_vg():
    """One compiled value_and_grad per process: repeated runs reuse its program."""
    return gg.jit(gg.value_and_grad(_gg_loss))


def glassgrad_jit_build():
    return _functional(_jit_vg())


def _hinge(pred, target):
    return (1.0 - target * pred).relu().sum() * (1.0 / N_POINTS)


@functools.cache
def _model(compiled: bool):
    """One gg.nn model, optimizer and step per process; every run reloads the initial
    weights in place, so a TrainStep's program is traced once."""
    nn = importlib.import_module("glassgrad.nn")
    optim = importlib.import_module("glassgrad.optim")
    model = nn.MLP(list(SIZES), activation=nn.ReLU())
    opt = optim.SGD(model.parameters(), lr=1.0, weight_decay=2.0 * ALPHA)
    if compiled:
        return model, opt, nn.TrainStep(model, _hinge, opt)

    def step(x, y):
        opt.zero_grad()
        value = _hinge(model(x), y)
        value.backward()
        opt.step()
        return value.item()

    return model, opt, step


def glassgrad_nn_build(compiled=False):
    X, y = moons()
    model, opt, train_step = _model(compiled)
    names = [name for name, _ in model.named_parameters()]
    model.load_state_dict(dict(zip(names, init_params(), strict=True)))

    def step(k):
        opt.lr = lr(k)
        return train_step(X, y)

    return step, lambda: [p.data.copy() for p in model.parameters()]


def torch_build():
    torch = common.load_torch()
    if torch is None:
        return None
    X, y = (torch.from_numpy(a) for a in moons())
    params = [torch.tensor(p, requires_grad=True) for p in init_params()]

    def step(k):
        value = loss(params, X, y, torch.relu, torch.sum)
        for p in params:
            p.grad = None
        value.backward()
        rate = lr(k)
        with torch.no_grad():
            for p in params:
                p -= rate * p.grad
        return value.item()

    return step, lambda: [p.detach().numpy() for p in params]


def autograd_build():
    autograd, anp = common.load_autograd()
    if autograd is None:
        return None
    vg = autograd.value_and_grad(
        lambda p, X, y: loss(p, X, y, lambda z: anp.maximum(z, 0.0), anp.sum))
    return _functional(vg)


@functools.cache
def _jax_update(jit: bool):
    jax = common.load_jax()
    vg = jax.value_and_grad(lambda p, X, y: loss(p, X, y, jax.nn.relu, jax.numpy.sum))

    def update(params, X, y, rate):
        value, grads = vg(params, X, y)
        return value, [p - rate * g for p, g in zip(params, grads, strict=True)]

    return jax.jit(update) if jit else update


def jax_build(jit=True):
    jax = common.load_jax()
    if jax is None:
        return None
    X, y = (jax.numpy.asarray(a) for a in moons())
    update = _jax_update(jit)
    state = {"p": [jax.numpy.asarray(p) for p in init_params()]}

    def step(k):
        value, state["p"] = jax.block_until_ready(update(state["p"], X, y, lr(k)))
        return value

    return step, lambda: state["p"]


def micrograd_build():
    engine, mnn = common.optional("micrograd.engine"), common.optional("micrograd.nn")
    if engine is None or mnn is None:
        return None
    value_cls = engine.Value
    X, y = moons()
    rows, labels = X.tolist(), y[:, 0].tolist()
    model = mnn.MLP(SIZES[0], list(SIZES[1:]))
    weights = init_params()
    for layer, w, b in zip(model.layers, weights[::2], weights[1::2], strict=True):
        for j, neuron in enumerate(layer.neurons):
            for i, wi in enumerate(neuron.w):
                wi.data = float(w[i, j])
            neuron.b.data = float(b[j])

    def step(k):  # micrograd's demo, line for line
        inputs = [list(map(value_cls, row)) for row in rows]
        out = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(labels, out, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        total = data_loss + ALPHA * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        rate = lr(k)
        for p in model.parameters():
            p.data -= rate * p.grad
        return total.data

    def params():
        out = []
        for layer in model.layers:
            out.append(np.array([[wi.data for wi in n.w] for n in layer.neurons]).T)
            out.append(np.array([n.b.data for n in layer.neurons]))
        return out

    return step, params


IMPLS = {"numpy": (common.REFERENCE, numpy_build),
         "glassgrad": ("glassgrad functional", glassgrad_build),
         "glassgrad-nn": ("glassgrad gg.nn", glassgrad_nn_build),
         "glassgrad-jit": ("glassgrad jit functional", glassgrad_jit_build),
         "glassgrad-trainstep": ("glassgrad jit gg.nn.TrainStep",
                                 lambda: glassgrad_nn_build(compiled=True)),
         "torch": ("PyTorch eager", torch_build),
         "jax": ("JAX jit", jax_build),
         "jax-eager": ("JAX eager (no jit)", lambda: jax_build(jit=False)),
         "autograd": ("HIPS autograd", autograd_build),
         "micrograd": ("micrograd (scalar Values)", micrograd_build)}


# --- worker and table ------------------------------------------------------------------------


def train(build, steps: int) -> tuple[float, list[np.ndarray]]:
    """Seconds for ``steps`` steps and the final parameters."""
    built = build()
    if built is None:
        raise ImportError("this implementation's library is not installed")
    step, get_params = built
    start = common.clock()
    for k in range(steps):
        step(k)
    params = get_params()
    elapsed = common.clock() - start
    return elapsed, [np.array(p, dtype=float) for p in params]


def steps_for(name: str) -> int:
    if name == "micrograd":
        return 2 if common.is_quick() else MICROGRAD_STEPS
    return 10 if common.is_quick() else STEPS


def worker(name: str) -> dict:
    label, build = IMPLS[name]
    steps = steps_for(name)
    first = None
    if name in EAGER_OF or name == "jax":  # trace or compile outside the timed runs
        first = train(build, 1)[0]
    once, params = train(build, steps)
    runs = [once]
    if name != "micrograd":  # runs until ~2 s are spent, at least 3, at most 50
        budget = 0.5 if common.is_quick() else 2.0
        more = max(2, min(49, int(budget / max(once, 1e-9))))
        runs += [train(build, steps)[0] for _ in range(more)]
    ref = train(numpy_build, steps)[1]  # the reference run, after the timed runs
    diff = max(float(np.max(np.abs(p - r))) for p, r in zip(params, ref, strict=True))
    out = {"label": label, "steps": steps, "time": min(runs), "median": float(np.median(runs)),
           "runs": len(runs), "first": first, "loss": objective(params), "diff": diff,
           "accuracy": accuracy(params)}
    if name in EAGER_OF:
        eager = train(IMPLS[EAGER_OF[name]][1], steps)[1]
        out["exact"] = common.same_bits(f"W6 {label}, final parameters", params, eager)
    return out


def verdict(name: str, ratio: float, per_step: float, answers: dict) -> str:
    if name not in EAGER_OF:
        return ""
    text = common.goal(ratio, JIT_GOAL, "x")
    jax = answers.get("jax")
    if jax is not None:
        text += f"; vs JAX jit {per_step / (jax['time'] / jax['steps']):.2f}x"
    return text


def table(answers: dict) -> None:
    ref = answers["numpy"]
    ref_step = ref["time"] / ref["steps"]
    rows = []
    for name, r in answers.items():
        per_step = r["time"] / r["steps"]
        ratio = per_step / ref_step
        full = r["steps"] == ref["steps"]
        exact = {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")
        rows.append([r["label"], r["steps"], f"{per_step * 1e6:.1f}",
                     f"{r['median'] / r['steps'] * 1e6:.1f}", f"{ratio:.2f}x",
                     common.fmt_time(r["first"]) if r.get("first") is not None else "",
                     f"{r['loss']:.9f}" if full else "n/a (partial run)",
                     f"{r['accuracy']:.2f}" if full else "n/a (partial run)",
                     f"{r['diff']:.1e}", exact, verdict(name, ratio, per_step, answers)])
    common.print_table(f"W6: micrograd's moons demo, MLP 2-16-16-1 ReLU, {N_POINTS} points, "
                       f"full batch, {ref['steps']} SGD steps, float64",
                       ["implementation", "steps", "µs/step (best)", "µs/step (median)",
                        "vs NumPy", "first step (trace/compile)", "final loss",
                        "train accuracy", "max param diff vs NumPy", "jit vs eager",
                        "goal (jit ≤ 1.2x)"], rows)


def profile() -> None:
    """Where the compiled steps' time goes, against the hand-written step."""
    X, y = moons()
    hand, _ = numpy_build()
    print(f"\nhand-written NumPy step: {common.fmt_time(common.measure(lambda: hand(50)).best)}")
    params = init_params()
    vg = _jit_vg()
    step, _ = glassgrad_jit_build()
    whole = common.measure(lambda: step(50)).best
    print(f"glassgrad jit functional: step {common.fmt_time(whole)}; value_and_grad "
          f"{common.jit_breakdown(vg, (params, X, y), (*params, X, y))}")
    step, _ = glassgrad_nn_build(compiled=True)
    train_step = _model(True)[2]
    whole = common.measure(lambda: step(50)).best
    lg = common.measure(lambda: train_step.loss_and_grads(X, y)).best
    lines, calls = common.program_lines(train_step.source(X, y))
    print(f"glassgrad jit gg.nn.TrainStep: step {common.fmt_time(whole)} = loss_and_grads "
          f"{common.fmt_time(lg)} (program of {lines} lines, {calls} NumPy calls) + optimizer "
          f"and checks {common.fmt_time(whole - lg)}")
    print(common.profile_summary(lambda: step(50), calls=2000, top=12))
    print("\nthe functional program:\n" + vg.source(params, X, y))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], IMPLS, worker,
                         lambda answers: table(answers) if "numpy" in answers else None, profile)

if __name__ == "__main__":
    main()
