"""W10: a small CNN on the digits, float32, one SGD step per batch of 64.

Input 1x8x8 (X / 16); Conv2d 1->16 3x3 padding 1, ReLU, MaxPool2d 2; Conv2d 16->32 3x3
padding 1, ReLU, MaxPool2d 2; Flatten; Linear 128->10; mean cross-entropy; SGD lr 0.1.
Same initial weights (NumPy, seed 0, in PyTorch's layouts) and batch order (seed 1) for
every implementation. Reports µs per step on a fixed batch, the time of an epoch-by-epoch
training run with its training accuracy, and the peak memory of one step. glassgrad runs
eagerly (``gg.nn`` + ``backward`` + ``optim.SGD``) and compiled (``gg.nn.TrainStep``); the
compiled run must end with exactly the eager run's parameters.

Goals (issue "Real networks"): eager step at most 1.5x PyTorch eager's, TrainStep at most
PyTorch eager's, peak memory at most PyTorch's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/w10_cnn.py
"""

from __future__ import annotations

import functools
import importlib

import common
import numpy as np

gg = common.load_glassgrad()

F32 = np.float32
BATCH, LR = 64, 0.1
GOAL_EAGER, GOAL_TRAINSTEP = 1.5, 1.0  # times PyTorch eager's step


def init_params() -> dict[str, np.ndarray]:
    """PyTorch's default bounds (1/sqrt(fan_in)) and layouts, drawn once from seed 0."""
    rng = np.random.default_rng(0)
    shapes = {"conv1.weight": (16, 1, 3, 3), "conv1.bias": (16,),
              "conv2.weight": (32, 16, 3, 3), "conv2.bias": (32,),
              "fc.weight": (10, 128), "fc.bias": (10,)}
    fan_in = {"conv1": 9, "conv2": 144, "fc": 128}
    return {name: rng.uniform(-1, 1, shape).astype(F32) / np.sqrt(fan_in[name.split(".")[0]])
            for name, shape in shapes.items()}


def digits_data():
    from glassgrad.datasets import load_digits

    X, y = load_digits()
    return (X / 16.0).astype(F32).reshape(-1, 1, 8, 8), y.astype(np.int64)


def batches(n: int, epochs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        out += [perm[i:i + BATCH] for i in range(0, n, BATCH)]
    return out


# --- implementations: make() -> (step(x, y), params() in PyTorch's layout) ------------------


@functools.cache
def _gg_model(compiled: bool):
    """One model, optimizer and step per process; runs reload the initial weights in place,
    so a TrainStep's programs are traced once."""
    nn = importlib.import_module("glassgrad.nn")
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, dtype=F32), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1, dtype=F32),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10, dtype=F32))
    opt = gg.optim.SGD(model.parameters(), lr=LR)
    if compiled:
        return model, nn.TrainStep(model, nn.cross_entropy, opt)

    def step(x, y):
        opt.zero_grad()
        nn.cross_entropy(model(x), y).backward()
        opt.step()

    return model, step


_GG_NAMES = {"conv1.weight": "0.weight", "conv1.bias": "0.bias", "conv2.weight": "3.weight",
             "conv2.bias": "3.bias", "fc.weight": "7.weight", "fc.bias": "7.bias"}


def glassgrad_make(compiled: bool = False):
    model, step = _gg_model(compiled)
    state = {_GG_NAMES[k]: (v.T if k == "fc.weight" else v) for k, v in init_params().items()}
    model.load_state_dict(state)  # glassgrad's Linear stores the transpose of PyTorch's

    def params():
        ours = model.state_dict()
        return [ours[_GG_NAMES[k]].T if k == "fc.weight" else ours[_GG_NAMES[k]]
                for k in init_params()]

    return step, params


def torch_make():
    torch = common.load_torch()
    tnn = torch.nn
    model = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                           tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                           tnn.Flatten(), tnn.Linear(128, 10))
    names = dict(zip(["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"],
                     init_params().values(), strict=True))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in names.items()})
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step(x, y):
        opt.zero_grad()
        tnn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()

    return step, lambda: [p.detach().numpy().copy() for p in model.parameters()]


IMPLS = {"glassgrad": ("glassgrad eager gg.nn", glassgrad_make, None),
         "glassgrad-trainstep": ("glassgrad jit gg.nn.TrainStep",
                                 functools.partial(glassgrad_make, compiled=True), None),
         "torch": ("PyTorch eager", torch_make, "torch")}


# --- measurements ----------------------------------------------------------------------------


def epochs() -> int:
    return 1 if common.is_quick() else 5


def train(make, data) -> list[np.ndarray]:
    step, params = make()
    for xb, yb in data:
        step(xb, yb)
    return params()


def accuracy(params: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """The trained network's training accuracy, recomputed in NumPy from its parameters."""
    nn = importlib.import_module("glassgrad.nn")
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(128, 10))
    names = list(_GG_NAMES.values())
    model.load_state_dict({n: (p.T if n == "7.weight" else p) for n, p in
                           zip(names, params, strict=True)})
    with gg.no_grad():
        logits = model(X.astype(np.float64)).data
    return float(np.mean(np.argmax(logits, axis=1) == y))


def worker(name: str) -> dict:
    label, make, module = IMPLS[name]
    if module and common.optional(module) is None:
        raise ImportError(f"{module} is not installed")
    X, y = digits_data()
    data = [(X[idx], y[idx]) for idx in batches(len(X), epochs())]
    step, _ = make()
    xb, yb = data[0]
    timing = common.measure(lambda: step(xb, yb))
    runs = []
    for _ in range(1 if common.is_quick() else 3):
        start = common.clock()
        params = train(make, data)
        runs.append(common.clock() - start)
    out = {"label": label, "best": timing.best, "median": timing.median,
           "train": min(runs) / len(data), "steps": len(data),
           "accuracy": accuracy(params, X, y), "rss": common.rss_peak(lambda: step(xb, yb))}
    if name.startswith("glassgrad"):
        out["traced"] = common.traced_peak(lambda: step(xb, yb))
    if name == "glassgrad-trainstep":
        out["exact"] = common.same_bits(f"W10 {label}, final parameters", params,
                                        train(glassgrad_make, data))
    return out


def _goal(name: str, r: dict, torch: dict | None) -> str:
    if torch is None or not name.startswith("glassgrad"):
        return ""
    limit = GOAL_TRAINSTEP if name == "glassgrad-trainstep" else GOAL_EAGER
    text = common.goal(r["best"] / torch["best"], limit, "x")
    if r["rss"] and torch["rss"]:
        ratio = r["rss"] / torch["rss"]
        text += f"; RSS {ratio:.2f}x PyTorch's: {'met' if ratio <= 1.0 else 'missed'}"
    return text


def tables(answers: dict) -> None:
    torch = answers.get("torch")
    rows = []
    for name, r in answers.items():
        exact = {True: "bit-identical", False: "DIFFERS"}.get(r.get("exact"), "")
        rows.append([r["label"], f"{r['best'] * 1e6:.0f}", f"{r['median'] * 1e6:.0f}",
                     common.fmt_ratio(r["best"], torch["best"]) if torch else "",
                     f"{r['train'] * 1e6:.0f}", f"{r['accuracy']:.4f}",
                     common.fmt_bytes(r.get("traced")), common.fmt_bytes(r["rss"]), exact,
                     _goal(name, r, torch)])
    common.print_table(
        f"W10: digits CNN (conv 16, conv 32, linear), batch {BATCH}, float32, SGD; "
        f"{epochs()} epochs for the training run",
        ["implementation", "µs/step (best)", "µs/step (median)", "vs PyTorch",
         "µs/step (training run)", "train accuracy", "traced peak", "RSS peak",
         "jit vs eager", "goal (eager ≤ 1.5x, TrainStep ≤ 1x PyTorch; RSS ≤ PyTorch's)"], rows)


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], IMPLS, worker, tables, profile)


def profile() -> None:
    X, y = digits_data()
    step, _ = glassgrad_make()
    print("\nglassgrad eager gg.nn, one step per call:")
    print(common.profile_summary(lambda: step(X[:BATCH], y[:BATCH]), calls=200))
    step, _ = glassgrad_make(compiled=True)
    step(X[:BATCH], y[:BATCH])
    lines, calls = common.program_lines(step.source(X[:BATCH], y[:BATCH]))
    print(f"\nglassgrad TrainStep: a program of {lines} lines, {calls} NumPy calls")
    print(common.profile_summary(lambda: step(X[:BATCH], y[:BATCH]), calls=200))


if __name__ == "__main__":
    main()
