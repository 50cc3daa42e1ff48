"""Neural networks on the engine: modules, layers, losses and a training loop.

>>> import numpy as np, glassgrad as gg
>>> net = gg.nn.MLP([10, 16, 16, 1], rng=0)   # the seed's network
>>> x, y = np.ones((1, 10)), np.array([[0.5]])
>>> loss = gg.nn.squared_error(net(x), y)
>>> loss.backward()
>>> net.layers[0].weight.grad.shape
(10, 16)
"""

from .compiled import TrainStep
from .fit import History, evaluate, fit
from .layers import MLP, Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import cross_entropy, mse_loss, squared_error
from .module import Module, functional_call

__all__ = [
    "MLP", "History", "TrainStep", "Linear", "Module", "ReLU", "Sequential", "Sigmoid", "Tanh",
    "cross_entropy", "evaluate", "fit", "functional_call", "mse_loss", "squared_error",
]
