"""Softmax cross-entropy."""

from .._device import array_module


def softmax_cross_entropy(logits, labels):
    """(mean loss, d loss / d logits) for logits (N, classes) and integer labels (N,).

    NumPy or CuPy arrays (labels are moved to the logits' device); the loss is a Python float.
    """
    xp = array_module(logits)
    labels = xp.asarray(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    n = logits.shape[0]
    rows = xp.arange(n)
    loss = -log_probs[rows, labels].mean()
    grad = xp.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), (grad / n).astype(logits.dtype)
