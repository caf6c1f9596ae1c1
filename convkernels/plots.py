"""Figures for a training run (matplotlib, imported only when plotting)."""

import matplotlib.pyplot as plt
import numpy as np


def curves(history, path):
    """Loss and accuracy per epoch, training and test."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h["test_accuracy"] for h in history], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def filters(weight, path):
    """The first layer's filters as a grid of images, each scaled to its own range (colour when
    it reads three channels)."""
    K, C = weight.shape[:2]
    cols = int(np.ceil(np.sqrt(K)))
    rows = int(np.ceil(K / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= K:
            continue
        w = weight[k]
        w = (w - w.min()) / (np.ptp(w) + 1e-12)
        if C == 3:
            ax.imshow(np.transpose(w, (1, 2, 0)), interpolation="nearest")
        else:
            ax.imshow(w[0], cmap="gray", interpolation="nearest")
    fig.suptitle("first-layer filters")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def misclassified(images, labels, predictions, classes, path):
    """Up to 16 test images the model got wrong, with true and predicted class."""
    n = len(labels)
    if n == 0:
        return
    cols = min(n, 8)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i]
        if image.shape[0] == 3:
            ax.imshow(np.transpose(image, (1, 2, 0)))
        else:
            ax.imshow(image[0], cmap="gray")
        ax.set_title(f"{classes[labels[i]]}→{classes[predictions[i]]}", fontsize=8)
    fig.suptitle("misclassified (true→predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
