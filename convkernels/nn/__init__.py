"""convkernels.nn: thin layers over the kernels, a loss, SGD.

model = Sequential(Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), ...)
logits = model.forward(x)
loss, dlogits = softmax_cross_entropy(logits, labels)
model.backward(dlogits)          # fills every parameter's .grad
optimizer.step()
"""

from . import init
from .layers import (
    LCN,
    LRN,
    RBF,
    AvgPool2d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    Parameter,
    ReLU,
    Scale,
    Sequential,
    Sigmoid,
    Subsample2d,
    Tanh,
)
from .losses import softmax_cross_entropy
from .optim import SGD, StepLR

__all__ = [
    "AvgPool2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "LCN",
    "LRN",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Parameter",
    "RBF",
    "ReLU",
    "SGD",
    "Scale",
    "Sequential",
    "Sigmoid",
    "StepLR",
    "Subsample2d",
    "Tanh",
    "init",
    "softmax_cross_entropy",
]
