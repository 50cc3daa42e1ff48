"""What ``gg.why`` costs: time(why) / time(value_and_grad) on the W3a MLP.

The W3a network of bench/w3_digits.py (64 -> 128 -> 128 -> 10, tanh, mean cross-entropy,
float32, batch 64: the first batch of the shuffled digits) with its parameters as a dict.
Two batches: the digits as they are, whose blank border pixels give whole rows of the
first weight matrix an exactly zero gradient (so ``why`` walks the record and explains
them), and the same batch plus 0.01 (every gradient element ordinary: ``why`` records and
checks, nothing to explain). Goal: at most 3x a plain ``value_and_grad``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/why_cost.py
"""

from __future__ import annotations

import common
import numpy as np

gg = common.load_glassgrad()

SIZES = (64, 128, 128, 10)
BATCH = 64
GOAL = 3.0


def init_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    params = {}
    for k, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:], strict=False)):
        bound = 1.0 / np.sqrt(n_in)
        params[f"W{k}"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
        params[f"b{k}"] = rng.uniform(-bound, bound, n_out).astype(np.float32)
    return params


def loss(p, x, labels):
    h = np.tanh(x @ p["W0"] + p["b0"])
    h = np.tanh(h @ p["W1"] + p["b1"])
    return gg.nn.cross_entropy(h @ p["W2"] + p["b2"], labels)


def batch(shift: float):
    from glassgrad.datasets import load_digits

    X, y = load_digits()
    idx = np.random.default_rng(1).permutation(len(X))[:BATCH]
    return (X[idx] / 16.0 + shift).astype(np.float32), y[idx].astype(np.int64)


def worker(name: str) -> dict:
    params = init_params()
    vg, why = gg.value_and_grad(loss), gg.why(loss)
    out = {}
    for case, shift in (("digits", 0.0), ("shifted", 0.01)):
        x, labels = batch(shift)
        found = why(params, x, labels)
        t_vg = common.measure(lambda x=x, labels=labels: vg(params, x, labels))
        t_why = common.measure(lambda x=x, labels=labels: why(params, x, labels))
        out[case] = {"vg": t_vg.best, "why": t_why.best, "vg_median": t_vg.median,
                     "why_median": t_why.median, "causes": len(found.causes),
                     "zero": found._counts[0]}
    return out


def report(answers: dict) -> None:
    r = answers.get("glassgrad")
    if r is None:
        return
    rows = []
    for case, what in (("digits", "digits batch (zero rows explained)"),
                       ("shifted", "digits + 0.01 (nothing to explain)")):
        a = r[case]
        ratio = a["why"] / a["vg"]
        rows.append([what, common.fmt_time(a["vg"]), common.fmt_time(a["why"]),
                     f"{ratio:.2f}x", f"{a['zero']} / {a['causes']}",
                     common.goal(ratio, GOAL, "x")])
    common.print_table("gg.why on the W3a MLP (float32, batch 64; best of the repeats)",
                       ["batch", "value_and_grad", "why", "ratio", "zero elements / causes",
                        f"goal <= {GOAL:g}x"], rows)


def profile() -> None:
    params, (x, labels) = init_params(), batch(0.0)
    why = gg.why(loss)
    print(common.profile_summary(lambda: why(params, x, labels), calls=50))


def main() -> None:
    common.run_benchmark(__file__, __doc__.splitlines()[0], ["glassgrad"], worker, report,
                         profile)


if __name__ == "__main__":
    main()
