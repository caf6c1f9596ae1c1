"""Training throughput of LeNet-5: convkernels.nn against the same network in PyTorch.

    python bench/training_throughput.py [--model modern classic] [--batch 64 256] [--threads 2]

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


def torch_lenet5_classic(torch, model):
    """The classic LeNet-5 of convkernels.models in PyTorch, with the same parameters: scaled
    tanh, trainable subsampling (2x2 sum x coefficient + bias), C3's partial connection table as
    a masked weight, an RBF output whose penalties times -RBF_TEMPERATURE are the logits."""
    t, F = torch.nn, torch.nn.functional
    params = {name: torch.from_numpy(a.copy()) for name, a in model.state_dict().items()}

    def squash(v):
        return 1.7159 * torch.tanh(v * (2.0 / 3.0))

    class Classic(t.Module):
        def __init__(self):
            super().__init__()
            self.p = t.ParameterDict(
                {k.replace(".", "_"): t.Parameter(v) for k, v in params.items()}
            )
            c3 = model.layers[4]
            self.register_buffer("c3_mask", torch.from_numpy(c3.mask))

        def subsample(self, v, layer):
            coefficient, bias = self.p[f"{layer}_coefficient"], self.p[f"{layer}_bias"]
            return F.avg_pool2d(v, 2) * 4 * coefficient[:, None, None] + bias[:, None, None]

        def forward(self, x):
            p = self.p
            v = squash(F.conv2d(x, p["0_weight"], p["0_bias"], padding=2))
            v = squash(self.subsample(v, 2))
            v = squash(F.conv2d(v, p["4_weight"] * self.c3_mask, p["4_bias"]))
            v = squash(self.subsample(v, 6))
            v = squash(F.conv2d(v, p["8_weight"], p["8_bias"])).flatten(1)
            v = squash(F.linear(v, p["11_weight"], p["11_bias"]))
            penalties = ((v[:, None, :] - p["13_centres"][None]) ** 2).sum(-1)
            return -models.RBF_TEMPERATURE * penalties

    return Classic()


def time_steps(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(variant, batch, threads, steps, rounds):
    convkernels.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    model = models.lenet5(variant)
    optimizer = nn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    runners = {"convkernels": lambda: convkernels_step(model, optimizer, x, labels)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        t_model = torch_lenet5(torch) if variant == "modern" else torch_lenet5_classic(torch, model)
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
    parser.add_argument(
        "--model",
        nargs="+",
        default=["modern", "classic"],
        choices=["modern", "classic"],
        help="LeNet-5 variants (default: both)",
    )
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
    print(f"{'LeNet-5':>7}  {'batch':>5}  {'convkernels img/s':>18}  {'PyTorch img/s':>14}  "
          f"{'ratio':>6}")  # fmt: skip
    for variant in args.model:
        for batch in args.batch:
            result = measure(variant, batch, args.threads, args.steps, args.rounds)
            ours, theirs = result["convkernels"], result.get("PyTorch")
            ratio = f"{ours / theirs:5.2f}x" if theirs else "—"
            theirs_text = f"{theirs:14.0f}" if theirs else f"{'—':>14}"
            print(f"{variant:>7}  {batch:>5}  {ours:18.0f}  {theirs_text}  {ratio:>6}")


if __name__ == "__main__":
    main()
