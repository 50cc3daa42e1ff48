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
from .conv import AvgPool2d, Conv1d, Conv2d, MaxPool2d
from .fit import GradientWarning, History, evaluate, fit
from .layers import (
    GELU,
    MLP,
    Dropout,
    Embedding,
    Flatten,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    mse_loss,
    nll_loss,
    squared_error,
)
from .module import Module, functional_call
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .utils import clip_grad_norm_

__all__ = [
    "GELU", "MLP", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Dropout",
    "Embedding", "Flatten", "GradientWarning", "History", "LayerNorm", "Linear", "MaxPool2d",
    "Module", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "TrainStep",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "clip_grad_norm_",
    "cross_entropy", "evaluate", "fit", "functional_call", "huber_loss", "mse_loss", "nll_loss",
    "squared_error",
]
