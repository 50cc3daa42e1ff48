"""``glassgrad demo``: the seed's network trained on the diabetes data, end to end.

Standardise the data (with training statistics only), check the network's gradients
against finite differences, train ``MLP([10, 16, 16, 1])`` with per-sample SGD, compare
with predicting the training mean, and plot the loss curve.

``glassgrad demo --task digits`` trains a small convolutional network on the bundled 8x8
digits instead, reports its held-out accuracy and plots each layer's gradient norm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from . import optim
from ._checks import GradientCheckError, check_grad
from ._mode import no_grad
from .datasets import load_diabetes, load_digits
from .nn import (
    MLP,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Sigmoid,
    cross_entropy,
    evaluate,
    fit,
    functional_call,
    mse_loss,
    squared_error,
)

SIZES = [10, 16, 16, 1]
GRAD_CHECK_SAMPLES = 3


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="train the seed's network on the diabetes data (or a CNN on digits)",
        description="Train MLP([10, 16, 16, 1]) (two sigmoid hidden layers, linear output) "
                    "on the diabetes data with per-sample SGD, after checking its gradients "
                    "numerically; report the error against a predict-the-mean baseline and "
                    "plot the loss curve. With --task digits: train a small convolutional "
                    "network on the bundled 8x8 digits, report its held-out accuracy and "
                    "plot each layer's gradient norm per epoch.")
    parser.add_argument("--task", choices=("diabetes", "digits"), default="diabetes",
                        help="diabetes: the seed's network (default); digits: a small CNN")
    parser.add_argument("--epochs", type=_positive_int, default=None, help="passes over the "
                        "training data (default 20 for diabetes, 12 for digits)")
    parser.add_argument("--lr", type=_positive_float, default=None,
                        help="learning rate (default 0.02 for diabetes' SGD, 0.01 for "
                             "digits' Adam)")
    parser.add_argument("--a", type=float, default=1.0,
                        help="sigmoid steepness: phi(s) = 1/(1+exp(-a*s)) (default 1.0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the initial weights and the shuffling (default 0)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="where to write the PNG (default glassgrad-demo-loss.png, or "
                             "glassgrad-demo-digits-gradients.png for digits)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plot")
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable results on stdout (progress stays on stderr)")
    parser.add_argument("--jit", action="store_true",
                        help="run each step as one compiled NumPy program (gg.jit): same "
                             "numbers, faster")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the results: no progress or narration")
    parser.set_defaults(run=run)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    if args.task == "digits":
        return run_digits(args)
    args.epochs = args.epochs or 20
    args.lr = args.lr or 0.02
    args.plot = args.plot or "glassgrad-demo-loss.png"
    say = _printer(args)
    data = _load(args.seed)
    say(f"glassgrad demo: the seed's network MLP({SIZES}), sigmoid a={args.a:g}, on the "
        f"diabetes data\ndata: {len(data['X_train'])} training / {len(data['X_test'])} "
        "held-out samples; features and target standardised with training statistics")
    model = MLP(SIZES, activation=Sigmoid(args.a), rng=args.seed)
    try:
        report = _gradient_check(model, data)
    except GradientCheckError as err:
        print(f"gradient check FAILED: {err}", file=sys.stderr)
        return 1
    say(f"gradient check ({GRAD_CHECK_SAMPLES} samples, {report['parameters']} parameters, "
        f"autodiff vs central differences): max rel error {report['max_rel_error']:.1e}, "
        f"max abs error {report['max_abs_error']:.1e} ... OK")
    say(f"training: per-sample SGD, lr {args.lr:g}, {args.epochs} epochs, loss E = "
        "1/2 (y - f(x))^2")
    start = time.perf_counter()
    try:
        history = _train(model, data, args)
    except FloatingPointError as err:
        print(f"training diverged: {err}", file=sys.stderr)
        return 1
    results = _results(model, data, history, time.perf_counter() - start)
    say(_table(results), essential=True)
    results["plot"] = _plot(history, results["mse"]["baseline_test"], args, say)
    results.update(epochs=args.epochs, lr=args.lr, a=args.a, seed=args.seed,
                   model=f"MLP({SIZES})", gradient_check=report)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _printer(args: argparse.Namespace):
    # With --json, stdout carries the JSON only and the story goes to stderr; --quiet
    # keeps only the essential results (and with --json, nothing but the JSON).
    def say(text: str, essential: bool = False) -> None:
        if args.quiet and not (essential and not args.json):
            return
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    return say


def _load(seed: int) -> dict[str, Any]:
    X, y = load_diabetes()
    order = np.random.default_rng(seed).permutation(len(X))
    n_train = int(round(0.8 * len(X)))
    train, test = order[:n_train], order[n_train:]
    x_mean, x_std = X[train].mean(axis=0), X[train].std(axis=0)
    y_mean, y_std = y[train].mean(), y[train].std()
    return {"X_train": (X[train] - x_mean) / x_std, "X_test": (X[test] - x_mean) / x_std,
            "y_train": (y[train] - y_mean) / y_std, "y_test": (y[test] - y_mean) / y_std,
            "y_std": float(y_std)}


def _gradient_check(model: MLP, data: dict[str, Any]) -> dict[str, Any]:
    """Autodiff against finite differences for the loss on a few training samples."""
    x = data["X_train"][:GRAD_CHECK_SAMPLES]
    y = data["y_train"][:GRAD_CHECK_SAMPLES].reshape(-1, 1)

    def loss(params):
        return squared_error(functional_call(model, params, x), y)

    state = model.state_dict()
    report = check_grad(loss, state)
    return {"max_abs_error": report.max_abs_error, "max_rel_error": report.max_rel_error,
            "parameters": int(sum(v.size for v in state.values())), "passed": True}


def _train(model: MLP, data: dict[str, Any], args: argparse.Namespace) -> Any:
    return fit(model, data["X_train"], data["y_train"], squared_error,
               optim.SGD(model.parameters(), lr=args.lr), epochs=args.epochs,
               progress=not args.quiet, seed=args.seed,
               validation=(data["X_test"], data["y_test"]), jit=args.jit)


def _results(model: MLP, data: dict[str, Any], history: Any, seconds: float) -> dict[str, Any]:
    y_train, y_test = data["y_train"], data["y_test"]
    # Standardised targets have training mean 0, so the baseline predicts 0 everywhere.
    mse = {"train": evaluate(model, data["X_train"], y_train, mse_loss),
           "test": evaluate(model, data["X_test"], y_test, mse_loss),
           "baseline_train": float(np.mean(y_train ** 2)),
           "baseline_test": float(np.mean(y_test ** 2))}
    scale = data["y_std"] ** 2
    return {"n_train": len(y_train), "n_test": len(y_test), "mse": mse,
            "mse_original_units": {k: v * scale for k, v in mse.items()},
            "history": {"loss": history.loss, "val_loss": history.val_loss},
            "steps": history.steps, "train_seconds": seconds,
            "us_per_step": 1e6 * seconds / max(history.steps, 1)}


def _table(r: dict[str, Any]) -> str:
    mse, raw = r["mse"], r["mse_original_units"]
    rows = [("network, training set", "train"), ("network, held-out set", "test"),
            ("baseline (train mean), training set", "baseline_train"),
            ("baseline (train mean), held-out set", "baseline_test")]
    lines = [f"trained in {r['train_seconds']:.1f} s ({r['us_per_step']:.0f} us per step)",
             f"{'mean squared error':38}{'standardised':>14}{'original units':>16}"]
    lines += [f"  {label:36}{mse[key]:14.3f}{raw[key]:16.1f}" for label, key in rows]
    gain = 1.0 - mse["test"] / mse["baseline_test"]
    verdict = "beats" if gain > 0 else "does NOT beat"
    lines.append(f"on held-out data the network {verdict} the baseline: {100 * gain:+.0f}% "
                 "mean squared error reduction")
    return "\n".join(lines)


def _plot(history: Any, baseline_mse: float, args: argparse.Namespace, say) -> str | None:
    if args.no_plot:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no loss plot was written "
              "(pip install 'glassgrad[demo]')", file=sys.stderr)
        return None
    epochs = np.arange(1, len(history.loss) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, history.loss, marker="o", label="training (mean over the epoch)")
    ax.plot(epochs, history.val_loss, marker="s", label="held-out (after the epoch)")
    ax.axhline(baseline_mse / 2, color="gray", linestyle="--",
               label="held-out, predicting the training mean")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="epoch", ylabel="E per sample = 1/2 (y - f(x))^2 (standardised)",
           title=f"MLP({SIZES}), per-sample SGD, lr {args.lr:g}, a {args.a:g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    plt.close(fig)
    say(f"loss curve written to {args.plot}")
    return str(args.plot)


# --- the digits task: a small CNN ------------------------------------------------------

DIGITS_EPOCHS, DIGITS_LR, DIGITS_BATCH = 12, 0.01, 32


class DigitsCNN(Module):
    """Conv(1->16, 3x3) ReLU MaxPool(2), Conv(16->32, 3x3) ReLU MaxPool(2), Linear(128->10).

    >>> import numpy as np
    >>> DigitsCNN(rng=0)(np.zeros((5, 1, 8, 8), np.float32)).shape
    (5, 10)
    """

    def __init__(self, rng: Any = None, dtype: Any = np.float32) -> None:
        super().__init__()
        gen = np.random.default_rng(rng)
        self.conv1 = Conv2d(1, 16, 3, padding=1, rng=gen, dtype=dtype)
        self.conv2 = Conv2d(16, 32, 3, padding=1, rng=gen, dtype=dtype)
        self.fc = Linear(128, 10, rng=gen, dtype=dtype)
        self.relu, self.pool, self.flatten = ReLU(), MaxPool2d(2), Flatten()

    def forward(self, x: Any) -> Any:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(self.flatten(x))


def _digits_data(seed: int) -> dict[str, np.ndarray]:
    """Images (N, 1, 8, 8) scaled to [0, 1], split 80/20 at random."""
    X, y = load_digits()
    images = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(seed).permutation(len(y))
    n_train = int(round(0.8 * len(y)))
    train, test = order[:n_train], order[n_train:]
    return {"X_train": images[train], "y_train": y[train],
            "X_test": images[test], "y_test": y[test]}


def accuracy(model: Module, X: np.ndarray, y: np.ndarray) -> float:
    """The fraction of ``X`` whose largest logit is the label."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits = model(X)
    finally:
        model.train(was_training)
    predicted = np.argmax(getattr(logits, "data", logits), axis=1)
    return float(np.mean(predicted == y))


def run_digits(args: argparse.Namespace) -> int:
    say = _printer(args)
    epochs, lr = args.epochs or DIGITS_EPOCHS, args.lr or DIGITS_LR
    data = _digits_data(args.seed)
    model = DigitsCNN(rng=args.seed)
    n_params = sum(p.size for p in model.parameters())
    say(f"glassgrad demo --task digits: a CNN with {n_params} parameters on the 8x8 digits\n"
        f"data: {len(data['y_train'])} training / {len(data['y_test'])} held-out images\n"
        f"training: Adam, lr {lr:g}, batch {DIGITS_BATCH}, {epochs} epochs, cross-entropy")
    start = time.perf_counter()
    try:
        history = fit(model, data["X_train"], data["y_train"], cross_entropy,
                      optim.Adam(model.parameters(), lr=lr), epochs=epochs,
                      batch_size=DIGITS_BATCH, progress=not args.quiet, seed=args.seed,
                      validation=(data["X_test"], data["y_test"]), monitor=True)
    except FloatingPointError as err:
        print(f"training diverged: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    results = {"task": "digits", "model": "DigitsCNN", "parameters": n_params,
               "epochs": epochs, "lr": lr, "seed": args.seed, "train_seconds": seconds,
               "train_accuracy": accuracy(model, data["X_train"], data["y_train"]),
               "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
               "history": {"loss": history.loss, "val_loss": history.val_loss},
               "grad_norms": history.grad_norms, "warnings": history.warnings}
    say(f"trained in {seconds:.1f} s\n"
        f"accuracy: training {results['train_accuracy']:.4f}, "
        f"held-out {results['test_accuracy']:.4f}", essential=True)
    results["plot"] = _plot_gradients(history, args, say)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _plot_gradients(history: Any, args: argparse.Namespace, say) -> str | None:
    if args.no_plot:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
    except ImportError:
        print("note: matplotlib is not installed, so no plot was written "
              "(pip install 'glassgrad[demo]')", file=sys.stderr)
        return None
    path = args.plot or "glassgrad-demo-digits-gradients.png"
    history.plot_grad_norms(path)
    say(f"gradient norms per layer written to {path}")
    return str(path)
