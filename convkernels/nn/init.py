"""Weight initialisers: Glorot (LeNet-era nets) and N(0, sigma) (AlexNet)."""

import numpy as np


def fans(shape):
    """(fan_in, fan_out) of a dense (out, in) or conv (K, C/groups, R, S) weight."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def glorot_uniform(shape, rng, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def normal(shape, rng, std=0.01, dtype=np.float32):
    """N(0, std^2), as AlexNet initialised every layer (std 0.01)."""
    return (std * rng.standard_normal(shape)).astype(dtype)


def lecun_uniform(shape, rng, dtype=np.float32):
    """U(-2.4 / fan_in, 2.4 / fan_in), LeCun et al. 1998, appendix C."""
    fan_in, _ = fans(shape)
    limit = 2.4 / fan_in
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
