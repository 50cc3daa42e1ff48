"""Backpropagation by hand, next to the same network in glassgrad.

The seed's network f(x, theta) has two sigmoid hidden layers and a linear output:

    z1 = x @ W1 + b1,   h1 = phi(z1)
    z2 = h1 @ W2 + b2,  h2 = phi(z2)
    f  = h2 @ W3 + b3

with phi(s) = 1 / (1 + exp(-a s)), so phi'(s) = a phi(s) (1 - phi(s)), and the error
E = 1/2 (y - f)^2. The chain rule, applied from the output backwards, gives the delta
recursion (delta_l = dE/dz_l):

    delta3 = f - y                               dE/dW3 = outer(h2, delta3), dE/db3 = delta3
    delta2 = (W3 @ delta3) * a h2 (1 - h2)       dE/dW2 = outer(h1, delta2), dE/db2 = delta2
    delta1 = (W2 @ delta2) * a h1 (1 - h1)       dE/dW1 = outer(x, delta1),  dE/db1 = delta1

Every quantity a layer needs going backwards (h1, h2) was computed going forwards: that
is why backpropagation costs about as much as one more forward pass.

Run it: ``python examples/backprop_by_hand.py``.
"""

from __future__ import annotations

import numpy as np

import glassgrad.nn as nn

SIZES = [10, 16, 16, 1]
# The parameter names of nn.MLP(SIZES): Linear layers sit at positions 0, 2 and 4.
NAMES = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
         "layers.4.weight", "layers.4.bias"]


def init_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights, laid out as in ``nn.Linear``: W of shape (in, out), b of shape (out,)."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:], strict=False)):
        params[f"layers.{2 * i}.weight"] = rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out))
        params[f"layers.{2 * i}.bias"] = rng.normal(0.0, 0.1, n_out)
    return params


def phi(s: np.ndarray, a: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a * s))


def forward(params: dict[str, np.ndarray], x: np.ndarray, a: float):
    """f(x, theta) for one sample ``x`` of shape (10,), keeping h1 and h2 for the way back."""
    W1, b1, W2, b2, W3, b3 = (params[name] for name in NAMES)
    h1 = phi(x @ W1 + b1, a)
    h2 = phi(h1 @ W2 + b2, a)
    return h2 @ W3 + b3, h1, h2


def error(params: dict[str, np.ndarray], x: np.ndarray, y: float, a: float) -> float:
    """E = 1/2 (y - f(x, theta))^2."""
    f = forward(params, x, a)[0]
    return float(0.5 * np.sum((y - f) ** 2))


def hand_gradients(params: dict[str, np.ndarray], x: np.ndarray, y: float,
                   a: float) -> dict[str, np.ndarray]:
    """dE/dtheta by the delta recursion, in plain NumPy."""
    f, h1, h2 = forward(params, x, a)
    W2, W3 = params["layers.2.weight"], params["layers.4.weight"]
    delta3 = f - y                                  # dE/df, shape (1,)
    delta2 = (W3 @ delta3) * a * h2 * (1.0 - h2)    # dE/dz2, shape (16,)
    delta1 = (W2 @ delta2) * a * h1 * (1.0 - h1)    # dE/dz1, shape (16,)
    return {"layers.0.weight": np.outer(x, delta1), "layers.0.bias": delta1,
            "layers.2.weight": np.outer(h1, delta2), "layers.2.bias": delta2,
            "layers.4.weight": np.outer(h2, delta3), "layers.4.bias": delta3}


def engine_gradients(params: dict[str, np.ndarray], x: np.ndarray, y: float,
                     a: float) -> dict[str, np.ndarray]:
    """dE/dtheta from glassgrad: the same network as ``nn.MLP``, then ``backward()``."""
    model = nn.MLP(SIZES, activation=nn.Sigmoid(a))
    model.load_state_dict(params)
    loss = nn.squared_error(model(x), np.array([y]))
    loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def max_difference(g1: dict[str, np.ndarray], g2: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(g1[name] - g2[name]))) for name in NAMES)


def main() -> None:
    params = init_params(seed=0)
    x = np.random.default_rng(1).normal(size=SIZES[0])
    y = 0.5
    for a in (0.5, 1.0, 2.0):
        hand, engine = hand_gradients(params, x, y, a), engine_gradients(params, x, y, a)
        print(f"a = {a}: E = {error(params, x, y, a):.6f}")
        for name in NAMES:
            print(f"  dE/d{name:16} hand {hand[name].ravel()[:3].round(6)}  "
                  f"engine {engine[name].ravel()[:3].round(6)}  ...")
        print(f"  max |hand - engine| over all 465 parameters: "
              f"{max_difference(hand, engine):.2e}")


if __name__ == "__main__":
    main()
