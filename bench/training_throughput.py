"""Training throughput of LeNet-5: convkernels.nn against the same network in PyTorch.

    python bench/training_throughput.py [--batch 64 256] [--threads 2] [--steps 30]

One training step = forward, softmax cross-entropy, backward, SGD with momentum, on a fixed batch
of MNIST-shaped random images. Both run in this process with the same thread count, interleaved
round by round; the table gives the median images/s of each and their ratio.
"""

import argparse
import statistics
import time

import numpy as np

import convkernels
from convkernels import models, nn


def convkernels_step(model, optimizer, x, labels):
    loss, dlogits = nn.softmax_cross_entropy(model.forward(x), labels)
    model.backward(dlogits)
    optimizer.step()
    return loss


def torch_lenet5(torch):
    """The modern LeNet-5 of convkernels.models, layer for layer."""
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 6, 5, padding=2), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(6, 16, 5), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 120, 5), t.ReLU(), t.Flatten(),
        t.Linear(120, 84), t.ReLU(), t.Linear(84, 10),
    )  # fmt: skip


def time_steps(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(batch, threads, steps, rounds):
    convkernels.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    model = models.lenet5("modern")
    optimizer = nn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    runners = {"convkernels": lambda: convkernels_step(model, optimizer, x, labels)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        t_model = torch_lenet5(torch)
        t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
        tx, t_labels = torch.from_numpy(x), torch.from_numpy(labels)

        def torch_step():
            t_opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(t_model(tx), t_labels)
            loss.backward()
            t_opt.step()

        runners["PyTorch"] = torch_step
    for run in runners.values():  # warm up
        time_steps(run, 3)
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            samples[name].append(batch / time_steps(run, steps))
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed sample")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved samples per library")
    args = parser.parse_args()
    info = convkernels.info()
    print(
        f"convkernels {info['version']} ({info['isa']}), {args.threads} threads, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(f"{'batch':>5}  {'convkernels img/s':>18}  {'PyTorch img/s':>14}  {'ratio':>6}")
    for batch in args.batch:
        result = measure(batch, args.threads, args.steps, args.rounds)
        ours, theirs = result["convkernels"], result.get("PyTorch")
        ratio = f"{ours / theirs:5.2f}x" if theirs else "—"
        theirs_text = f"{theirs:14.0f}" if theirs else f"{'—':>14}"
        print(f"{batch:>5}  {ours:18.0f}  {theirs_text}  {ratio:>6}")


if __name__ == "__main__":
    main()
