"""The networks: LeNet-5 (as published, and modern), AlexNet, and small AlexNet-style nets.

Every builder returns an nn.Sequential whose forward maps NCHW float32 images to class scores
(logits for softmax cross-entropy).
"""

import numpy as np

from . import nn
from .nn import init

# LeNet-5's C3 connection table (LeCun et al. 1998, table I): row k lists the S2 maps that C3
# feature map k reads. Maps 0-5 read 3 neighbours, 6-11 read 4 neighbours, 12-14 read 4
# non-contiguous maps, 15 reads all 6.
LENET5_C3_TABLE = [
    [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5],
    [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5],
    [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
    [0, 1, 2, 3, 4, 5],
]  # fmt: skip


# The classic LeNet-5's penalties are sums of 84 squares; at temperature 1 its softmax saturates
# and the net overfits (98.1 % on MNIST after 8 epochs, against 98.8 % with 0.1).
RBF_TEMPERATURE = 0.1


def lenet5(variant="modern", num_classes=10, in_channels=1, seed=0):
    """LeNet-5 for 28x28 images (C1 pads by 2, as the paper's 32x32 frame does).

    variant="classic": LeCun et al. 1998 as published: C1 6@5x5, S2 trainable subsampling
    (2x2 sum x coefficient + bias, squashed by 1.7159 tanh(2x/3)), C3 16@5x5 with the paper's
    partial connection table, S4, C5 120@5x5, F6 84, and an RBF output of 10 units: 60,840
    trainable parameters. The RBF penalties, times -RBF_TEMPERATURE, are the logits of a softmax
    cross-entropy (the paper's MAP loss is that softmax at temperature 1, plus a constant "junk"
    class); the RBF centres start as random +-1 codes, not the paper's hand-drawn bitmaps.
    Initialised as in its appendix C.

    variant="modern": ReLU, 2x2 max-pooling, dense C3, a linear output: 61,706 parameters.
    """
    rng = np.random.default_rng(seed)
    if variant == "classic":
        table = np.zeros((16, 6))
        for k, maps in enumerate(LENET5_C3_TABLE):
            table[k, maps] = 1
        lecun = dict(rng=rng, initializer=init.lecun_uniform)
        return nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2, **lecun), nn.Tanh(),
            nn.Subsample2d(6), nn.Tanh(),
            nn.Conv2d(6, 16, 5, connections=table, **lecun), nn.Tanh(),
            nn.Subsample2d(16), nn.Tanh(),
            nn.Conv2d(16, 120, 5, **lecun), nn.Tanh(),
            nn.Flatten(),
            nn.Linear(120, 84, **lecun), nn.Tanh(),
            nn.RBF(84, num_classes, rng=rng), nn.Scale(-RBF_TEMPERATURE),
        )  # fmt: skip
    if variant == "modern":
        return nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 120, 5, rng=rng), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(120, 84, rng=rng), nn.ReLU(),
            nn.Linear(84, num_classes, rng=rng),
        )  # fmt: skip
    raise ValueError(f"lenet5: variant must be 'classic' or 'modern', got {variant!r}")


def alexnet(num_classes=1000, seed=0):
    """Krizhevsky, Sutskever & Hinton 2012: the two-tower net as one graph with groups=2.

    Input 227x227 (the paper says 224; 227 is what gives its 55x55 conv1 output without
    padding). conv2, conv4 and conv5 see only their own tower (groups=2); LRN after conv1 and
    conv2 with the paper's k=2, n=5, alpha=1e-4, beta=0.75 (alpha=5e-4 in PyTorch's convention);
    overlapping 3x3/2 max-pooling; dropout 0.5 in fc6 and fc7. 60,965,224 parameters. Weights
    N(0, 0.01), biases 1 in conv2, conv4, conv5 and the hidden dense layers, 0 elsewhere.
    """
    rng = np.random.default_rng(seed)
    gauss = dict(rng=rng, initializer=init.normal)

    def lrn():
        return nn.LRN(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)

    layers = [
        nn.Conv2d(3, 96, 11, stride=4, **gauss), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2, **gauss), nn.ReLU(), lrn(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1, **gauss), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2, **gauss), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2, **gauss), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096, **gauss), nn.ReLU(), nn.Dropout(0.5, rng=rng),
        nn.Linear(4096, 4096, **gauss), nn.ReLU(), nn.Dropout(0.5, rng=rng),
        nn.Linear(4096, num_classes, **gauss),
    ]  # fmt: skip
    for i in (4, 10, 12, 16, 19):  # conv2, conv4, conv5, fc6, fc7
        layers[i].bias.data[:] = 1.0
    return nn.Sequential(*layers)


def alexnet_small(num_classes=10, in_channels=3, image_size=32, variant="18pct", seed=0):
    """AlexNet-style nets for 28-32 px images after cuda-convnet's CIFAR-10 configurations.

    variant="18pct" (layers-18pct): conv 32@5x5 - max-pool 3/2 - ReLU - LRN(3) - conv 32@5x5 -
    ReLU - avg-pool 3/2 - LRN(3) - conv 64@5x5 - ReLU - avg-pool 3/2 - fc. Normalization here
    is cross-channel (cuda-convnet's cmrnorm); the original's rnorm is within-channel, which no
    kernel of ours computes.
    variant="80sec" (layers-80sec): the same stack without the normalization layers.
    Works for 28x28 (Fashion-MNIST) and 32x32 (CIFAR-10) inputs.
    """
    if variant not in ("18pct", "80sec"):
        raise ValueError(f"alexnet_small: variant must be '18pct' or '80sec', got {variant!r}")
    rng = np.random.default_rng(seed)
    normalize = variant == "18pct"

    def lrn():
        return [nn.LRN(size=3, alpha=5e-5 * 3, beta=0.75, k=1.0)] if normalize else []

    size = image_size
    for _ in range(3):  # 3x3/2 pooling with ceil_mode, after padded 5x5 convolutions
        size = (size - 3 + 1) // 2 + 1
    gauss = dict(rng=rng, initializer=init.glorot_uniform)
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2, **gauss),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(), *lrn(),
        nn.Conv2d(32, 32, 5, padding=2, **gauss), nn.ReLU(),
        nn.AvgPool2d(3, 2, ceil_mode=True), *lrn(),
        nn.Conv2d(32, 64, 5, padding=2, **gauss), nn.ReLU(),
        nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(64 * size * size, num_classes, **gauss),
    )  # fmt: skip
