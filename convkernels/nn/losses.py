"""Softmax cross-entropy."""

import numpy as np


def softmax_cross_entropy(logits, labels):
    """(mean loss, d loss / d logits) for logits (N, classes) and integer labels (N,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_z
    n = logits.shape[0]
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), (grad / n).astype(logits.dtype)
