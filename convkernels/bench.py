"""convkernels against PyTorch and the NumPy reference: one table of real layers.

``convkernels bench`` (see ``convkernels bench --help`` and bench/README.md) times every layer
preset below in each direction -- forward, backward-input and backward-weight for convolutions,
forward and backward for the memory-bound ops -- with convkernels, PyTorch (when importable)
and, for small shapes, the naive NumPy reference, all in one process on the same thread count.
Before anything is timed, each convkernels result is checked against PyTorch (or the reference
where PyTorch has no such op or is missing). Runs are interleaved: every round times each
implementation once, alternating the order, after a warm-up; the table reports medians.

The presets (CONV_LAYERS, MEMORY_OPS, GEMMS) are the one registry of benchmark shapes: the
pytest-benchmark suites in bench/ import them from here through `cases()`.

Work is counted as:

* convolution: 2 * N * K * (C / groups) * R * S * P * Q flops in every direction (taps that fall
  on zero padding included), as GFLOP/s and as % of the FP32 peak (see convkernels.probe);
* memory-bound ops: the bytes each op must read plus the bytes it must write (max-pool forward
  writes its int64 indices too, its backward reads them), as GB/s and as % of an np.copyto
  moving as many bytes on as many threads, timed in the same rounds (BASELINE.md: DRAM is the
  noisiest figure, and 18 MB activations may sit in a large L3); the JSON also has the % of
  the probe's 256 MiB copy ('pct_dram_copy');
* SGEMM M x N x K: 2 * M * N * K flops.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gc
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

__all__ = [
    "CONV_LAYERS",
    "GEMMS",
    "MEMORY_OPS",
    "Case",
    "ConvLayer",
    "GemmShape",
    "MemoryOp",
    "Prepared",
    "Settings",
    "ValidationError",
    "cases",
    "environment",
    "format_markdown",
    "format_text",
    "import_torch",
    "run",
]

# ----------------------------------------------------------------------------- the registry


CONV_DIRECTIONS = ("fwd", "bwd-input", "bwd-weight")


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """A convolution layer: x (N, C, H, W) * w (K, C/groups, R, S), square stride/padding."""

    name: str
    label: str
    family: str
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    batches: tuple = (64,)
    reference: bool = False  # small enough to time the NumPy reference too
    quick: bool = False  # part of --quick (first batch only)
    # Also a "fwd+ReLU" row: bias and ReLU fused into conv2d against PyTorch's conv2d + relu_.
    # Not among the conv rows of the geometric mean (which compares the convolutions alone).
    fused_relu: bool = False

    kind = "conv"

    @property
    def directions(self):
        return CONV_DIRECTIONS + (("fwd+ReLU",) if self.fused_relu else ())

    @property
    def output_size(self):
        P = (self.H + 2 * self.padding - self.R) // self.stride + 1
        Q = (self.W + 2 * self.padding - self.S) // self.stride + 1
        return P, Q

    def flops(self, batch):
        P, Q = self.output_size
        return 2 * batch * self.K * (self.C // self.groups) * self.R * self.S * P * Q


@dataclasses.dataclass(frozen=True)
class MemoryOp:
    """A memory-bound op (pooling, ReLU, tanh, LRN, LCN) on activations (N, C, H, W)."""

    name: str
    label: str
    family: str
    kind: str  # "pool" or "elementwise" (ReLU, tanh and the normalizations)
    op: str  # "max_pool2d", "avg_pool2d", "relu", "tanh", "lrn" or "lcn"
    C: int
    H: int
    W: int
    batches: tuple = (16,)
    kernel: int = 0  # pooling window
    stride: int = 0  # pooling stride
    size: int = 0  # LRN / LCN window
    reference: bool = False
    quick: bool = False

    directions = ("fwd", "bwd")

    @property
    def output_size(self):
        if self.op in ("max_pool2d", "avg_pool2d"):
            return (
                (self.H - self.kernel) // self.stride + 1,
                (self.W - self.kernel) // self.stride + 1,
            )
        return self.H, self.W

    def nbytes(self, batch, direction):
        """Bytes the op must read plus write (float32 data, int64 max-pool indices)."""
        P, Q = self.output_size
        x = 4 * batch * self.C * self.H * self.W
        y = 4 * batch * self.C * P * Q
        idx = 2 * y if self.op == "max_pool2d" else 0
        if self.op in ("max_pool2d", "avg_pool2d"):
            # fwd: read x, write y (+ indices); bwd: read dy (+ indices), write dx
            return x + y + idx
        if direction == "fwd":
            return 2 * x  # read x, write y
        return 3 * x  # read dy and x, write dx


@dataclasses.dataclass(frozen=True)
class GemmShape:
    """C (M, N) = A (M, K) @ B (K, N), float32, no transposes."""

    name: str
    label: str
    M: int
    N: int
    K: int
    reference: bool = True  # NumPy's matmul (its BLAS) in the NumPy column
    quick: bool = False

    family = "gemm"
    kind = "gemm"
    batches = (None,)
    directions = ("NN",)

    def flops(self, batch=None):
        return 2 * self.M * self.N * self.K


LENET, CIFAR, ALEXNET = "lenet", "cifar", "alexnet"
FAMILIES = (LENET, CIFAR, ALEXNET)

CONV_LAYERS = (
    # LeNet-5 (LeCun et al. 1998), at batch 64 and 256
    ConvLayer("lenet-c1", "LeNet C1 1→6 5×5 32²", LENET, 1, 6, 32, 32, 5, 5,
              batches=(64, 256), reference=True, quick=True, fused_relu=True),
    ConvLayer("lenet-c3", "LeNet C3 6→16 5×5 14²", LENET, 6, 16, 14, 14, 5, 5,
              batches=(64, 256), reference=True, quick=True),
    ConvLayer("lenet-c5", "LeNet C5 16→120 5×5 5²", LENET, 16, 120, 5, 5, 5, 5,
              batches=(64, 256), reference=True, quick=True),
    # cuda-convnet's CIFAR-10 net (layers-18pct), batch 128
    ConvLayer("cifar-c1", "CIFAR c1 3→32 5×5 p2 32²", CIFAR, 3, 32, 32, 32, 5, 5,
              padding=2, batches=(128,), fused_relu=True),
    ConvLayer("cifar-c2", "CIFAR c2 32→32 5×5 p2 16²", CIFAR, 32, 32, 16, 16, 5, 5,
              padding=2, batches=(128,), quick=True),
    ConvLayer("cifar-c3", "CIFAR c3 32→64 5×5 p2 8²", CIFAR, 32, 64, 8, 8, 5, 5,
              padding=2, batches=(128,)),
    # AlexNet (Krizhevsky et al. 2012), the two towers as groups=2, batch 16 (--batch alexnet=32)
    ConvLayer("alexnet-conv1", "AlexNet conv1 3→96 11×11 s4 p2 224²", ALEXNET,
              3, 96, 224, 224, 11, 11, stride=4, padding=2, batches=(16,), fused_relu=True),
    ConvLayer("alexnet-conv2", "AlexNet conv2 96→256 5×5 p2 g2 27²", ALEXNET,
              96, 256, 27, 27, 5, 5, padding=2, groups=2, batches=(16,)),
    ConvLayer("alexnet-conv3", "AlexNet conv3 256→384 3×3 p1 13²", ALEXNET,
              256, 384, 13, 13, 3, 3, padding=1, batches=(16,), fused_relu=True),
    ConvLayer("alexnet-conv4", "AlexNet conv4 384→384 3×3 p1 g2 13²", ALEXNET,
              384, 384, 13, 13, 3, 3, padding=1, groups=2, batches=(16,)),
    ConvLayer("alexnet-conv5", "AlexNet conv5 384→256 3×3 p1 g2 13²", ALEXNET,
              384, 256, 13, 13, 3, 3, padding=1, groups=2, batches=(16,), quick=True),
)  # fmt: skip

MEMORY_OPS = (
    # on AlexNet's first activations, 96×55×55, batch 16
    MemoryOp("alexnet-maxpool3x3s2", "max-pool 3×3/2 96×55²", ALEXNET, "pool", "max_pool2d",
             96, 55, 55, kernel=3, stride=2),
    MemoryOp("alexnet-relu", "ReLU 96×55²", ALEXNET, "elementwise", "relu", 96, 55, 55,
             quick=True),
    MemoryOp("alexnet-lrn5", "LRN(5) 96×55²", ALEXNET, "elementwise", "lrn", 96, 55, 55,
             size=5),
    MemoryOp("alexnet-lcn9", "LCN(9) 96×55²", ALEXNET, "elementwise", "lcn", 96, 55, 55,
             size=9, reference=True),
    # on LeNet's C1 output, 6×28×28, batch 256
    MemoryOp("lenet-maxpool2x2", "max-pool 2×2 6×28²", LENET, "pool", "max_pool2d", 6, 28, 28,
             batches=(256,), kernel=2, stride=2, reference=True, quick=True),
    MemoryOp("lenet-avgpool2x2", "avg-pool 2×2 6×28²", LENET, "pool", "avg_pool2d", 6, 28, 28,
             batches=(256,), kernel=2, stride=2, reference=True),
    MemoryOp("lenet-tanh", "tanh 6×28²", LENET, "elementwise", "tanh", 6, 28, 28,
             batches=(256,), reference=True),
)  # fmt: skip

GEMMS = (GemmShape("sgemm-1024", "SGEMM 1024³", 1024, 1024, 1024, quick=True),)

LRN_PARAMS = {"alpha": 1e-4, "beta": 0.75, "k": 2.0}  # AlexNet's n=5, as torch's alpha (÷ n)
LCN_PARAMS = {"sigma": 2.0, "eps": 1e-4}

SPECS = CONV_LAYERS + MEMORY_OPS + GEMMS
KINDS = ("conv", "pool", "elementwise", "gemm")


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: a preset at one batch size in one direction."""

    spec: object
    batch: int | None
    direction: str

    @property
    def id(self):
        batch = "" if self.batch is None else f"/b{self.batch}"
        return f"{self.spec.name}{batch}/{self.direction}"

    @property
    def kind(self):
        return self.spec.kind

    @property
    def label(self):
        return self.spec.label + ("" if self.batch is None else f" b{self.batch}")

    @property
    def metric(self):
        """'GFLOP/s' (compute-bound) or 'GB/s' (memory-bound)."""
        return "GB/s" if isinstance(self.spec, MemoryOp) else "GFLOP/s"

    @property
    def work(self):
        """Flops (GFLOP/s rows) or bytes read + written (GB/s rows) of one call."""
        if isinstance(self.spec, MemoryOp):
            return self.spec.nbytes(self.batch, self.direction)
        return self.spec.flops(self.batch)

    @property
    def has_torch(self):
        """Whether PyTorch has this op (LCN has none)."""
        return not (isinstance(self.spec, MemoryOp) and self.spec.op == "lcn")

    @property
    def has_reference_timing(self):
        """Whether the NumPy column is timed (small shapes; the reference always validates)."""
        return self.spec.reference

    def __str__(self):
        return self.id

    def prepare(self, torch=None, seed=0):
        """The callables to time and validate, on fresh random float32 data."""
        rng = np.random.default_rng(seed)
        if isinstance(self.spec, ConvLayer):
            return _prepare_conv(self, rng, torch)
        if isinstance(self.spec, MemoryOp):
            return _prepare_memory(self, rng, torch)
        return _prepare_gemm(self, rng, torch)


def cases(kinds=None, quick=False, filters=(), batch=None):
    """The rows of the table, in registry order.

    kinds: subset of KINDS; quick: only the presets marked quick, at their first batch size;
    filters: keep a case when any string is a case-insensitive substring of its id or label;
    batch: an int (every preset with a batch runs at it) or {family: int}.
    """
    overrides = {}
    if isinstance(batch, int):
        overrides = dict.fromkeys(FAMILIES, batch)
    elif batch:
        overrides = dict(batch)
    unknown = set(overrides) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown family {sorted(unknown)}: expected one of {FAMILIES}")
    for n in overrides.values():
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"batch sizes must be positive ints, got {n!r}")
    result = []
    for spec in SPECS:
        if kinds is not None and spec.kind not in kinds:
            continue
        if quick and not spec.quick:
            continue
        batches = spec.batches
        if spec.family in overrides:
            batches = (overrides[spec.family],)
        elif quick:
            batches = batches[:1]
        for b in batches:
            for direction in spec.directions:
                case = Case(spec, b, direction)
                text = f"{case.id} {case.label} {direction}".lower()
                if filters and not any(f.lower() in text for f in filters):
                    continue
                result.append(case)
    return result


# ----------------------------------------------------------------------- preparing a case


class ValidationError(AssertionError):
    """A convkernels result disagrees with PyTorch or the reference."""


@dataclasses.dataclass
class Prepared:
    """A case ready to run: `convkernels`, `torch` and `reference` callables (None if absent).

    `validate()` runs convkernels once and compares it with PyTorch when it has the op, else
    with the reference; it raises ValidationError on a mismatch and returns what it compared.
    """

    case: Case
    convkernels: Callable
    torch: Callable | None
    reference: Callable | None
    compare: Callable  # compare(actual, expected) -> relative error; raises ValidationError
    expected_reference: Callable | None = None  # the reference, when not timed
    copy: Callable | None = None  # memory-bound rows: np.copyto moving as many bytes

    def implementations(self, copy=True):
        """{name: callable} to time: convkernels, then torch, reference and copy if present."""
        impls = {"convkernels": self.convkernels}
        if self.torch is not None:
            impls["torch"] = self.torch
        if self.reference is not None:
            impls["reference"] = self.reference
        if copy and self.copy is not None:
            impls["copy"] = self.copy
        return impls

    def validate(self):
        actual = self.convkernels()
        if self.torch is not None:
            against, expected = "PyTorch", _to_numpy(self.torch())
        else:
            oracle = self.reference or self.expected_reference
            if oracle is None:
                raise ValidationError(f"{self.case.id}: nothing to validate against")
            against, expected = (
                "NumPy" if isinstance(self.case.spec, GemmShape) else "reference",
                oracle(),
            )
        try:
            err = self.compare(actual, expected)
        except ValidationError as e:
            raise ValidationError(f"{self.case.id} vs {against}: {e}") from None
        return {"against": against, "max_rel_err": err}


def _to_numpy(value):
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if hasattr(value, "detach"):
        return value.detach().numpy()
    return np.asarray(value)


def _rel_err(actual, expected):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise ValidationError(f"shape {actual.shape} != {expected.shape}")
    if not np.all(np.isfinite(actual)):
        raise ValidationError("non-finite values in the result")
    if actual.size == 0:
        return 0.0
    diff = np.max(np.abs(actual.astype(np.float64) - expected))
    return float(diff / max(1.0, float(np.max(np.abs(expected)))))


def _close(reduction):
    """A compare() allowing float32 rounding over sums of `reduction` terms."""
    tol = 1e-5 * max(1.0, math.sqrt(reduction))

    def compare(actual, expected):
        err = _rel_err(actual, expected)
        if not err <= tol:
            raise ValidationError(f"max relative error {err:.3g} exceeds {tol:.3g}")
        return err

    return compare


def _randn(rng, shape):
    return rng.standard_normal(shape, dtype=np.float32)


def _prepare_conv(case, rng, torch):
    import convkernels as ck
    from convkernels import reference

    L, N = case.spec, case.batch
    P, Q = L.output_size
    g, s, p = L.groups, L.stride, L.padding
    x = _randn(rng, (N, L.C, L.H, L.W))
    w = _randn(rng, (L.K, L.C // g, L.R, L.S)) / np.float32(math.sqrt(L.C // g * L.R * L.S))
    dy = _randn(rng, (N, L.K, P, Q))
    if torch is not None:
        tx, tw, tdy = (torch.from_numpy(a) for a in (x, w, dy))
        F = torch.nn.functional
    if case.direction == "fwd":
        ck_fn = lambda: ck.conv2d(x, w, None, s, p, 1, g)  # noqa: E731
        torch_fn = lambda: F.conv2d(tx, tw, None, s, p, 1, g)  # noqa: E731
        ref_fn = lambda: reference.conv2d(x, w, None, s, p, 1, g)  # noqa: E731
        reduction = L.C // g * L.R * L.S
    elif case.direction == "fwd+ReLU":
        b = _randn(rng, (L.K,))
        tb = None if torch is None else torch.from_numpy(b)
        ck_fn = lambda: ck.conv2d(x, w, b, s, p, 1, g, relu=True)  # noqa: E731
        torch_fn = lambda: torch.relu_(F.conv2d(tx, tw, tb, s, p, 1, g))  # noqa: E731
        ref_fn = lambda: np.maximum(reference.conv2d(x, w, b, s, p, 1, g), 0)  # noqa: E731
        reduction = L.C // g * L.R * L.S + 1
    elif case.direction == "bwd-input":
        ck_fn = lambda: ck.conv2d_backward_input(dy, w, x.shape, s, p, 1, g)  # noqa: E731
        torch_fn = lambda: torch.nn.grad.conv2d_input(x.shape, tw, tdy, s, p, 1, g)  # noqa: E731
        ref_fn = lambda: reference.conv2d_backward_input(dy, w, x.shape, s, p, 1, g)  # noqa: E731
        reduction = L.K // g * L.R * L.S
    else:
        ck_fn = lambda: ck.conv2d_backward_weight(x, dy, w.shape, s, p, 1, g)  # noqa: E731
        torch_fn = lambda: torch.nn.grad.conv2d_weight(tx, w.shape, tdy, s, p, 1, g)  # noqa: E731
        ref_fn = lambda: reference.conv2d_backward_weight(x, dy, w.shape, s, p, 1, g)  # noqa: E731
        reduction = N * P * Q
    return Prepared(
        case,
        ck_fn,
        None if torch is None else torch_fn,
        ref_fn if L.reference else None,
        _close(reduction),
        expected_reference=ref_fn,
    )


@functools.cache
def _copy_pool(threads):
    return ThreadPoolExecutor(threads, thread_name_prefix="convkernels-bench-copy")


def same_size_copy(nbytes, threads):
    """np.copyto reading and writing nbytes in all (nbytes / 2 each way), on `threads` threads.

    The yardstick of a memory-bound row: the same traffic, timed in the same rounds, so that
    its % does not depend on whether the tensors fit in the caches.
    """
    n = max(1, int(nbytes) // 8)
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)
    if threads <= 1:
        return lambda: np.copyto(dst, src)
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    chunks = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    pool = _copy_pool(threads)

    def copy():
        for f in [pool.submit(np.copyto, d, s) for d, s in chunks]:
            f.result()

    return copy


def _prepare_memory(case, rng, torch):
    import convkernels as ck
    from convkernels import reference

    op, N = case.spec, case.batch
    fwd = case.direction == "fwd"
    x = _randn(rng, (N, op.C, op.H, op.W))
    P, Q = op.output_size
    dy = _randn(rng, (N, op.C, P, Q))
    F = torch.nn.functional if torch is not None else None
    tx = tdy = None
    if torch is not None:
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    compare = _close(16)
    torch_fn = None
    if op.op == "max_pool2d":
        k, s = op.kernel, op.stride
        if fwd:
            ck_fn = lambda: ck.max_pool2d(x, k, s)  # noqa: E731
            ref_fn = lambda: reference.max_pool2d(x, k, s)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: F.max_pool2d(tx, k, s, return_indices=True)  # noqa: E731
            compare = _max_pool_compare(x)
        else:
            _, idx = ck.max_pool2d(x, k, s)
            ck_fn = lambda: ck.max_pool2d_backward(dy, idx, x.shape)  # noqa: E731
            ref_fn = lambda: reference.max_pool2d_backward(dy, idx, x.shape)  # noqa: E731
            if torch is not None:
                tidx = torch.from_numpy(idx)
                torch_fn = lambda: torch.ops.aten.max_pool2d_with_indices_backward(  # noqa: E731
                    tdy, tx, [k, k], [s, s], [0, 0], [1, 1], False, tidx
                )
    elif op.op == "avg_pool2d":
        k, s = op.kernel, op.stride
        if fwd:
            ck_fn = lambda: ck.avg_pool2d(x, k, s)  # noqa: E731
            ref_fn = lambda: reference.avg_pool2d(x, k, s)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: F.avg_pool2d(tx, k, s)  # noqa: E731
        else:
            ck_fn = lambda: ck.avg_pool2d_backward(dy, x.shape, k, s)  # noqa: E731
            ref_fn = lambda: reference.avg_pool2d_backward(dy, x.shape, k, s)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: torch.ops.aten.avg_pool2d_backward(  # noqa: E731
                    tdy, tx, [k, k], [s, s], [0, 0], False, True, None
                )
    elif op.op == "relu":
        if fwd:
            ck_fn = lambda: ck.relu(x)  # noqa: E731
            ref_fn = lambda: reference.relu(x)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: F.relu(tx)  # noqa: E731
        else:
            ck_fn = lambda: ck.relu_backward(dy, x)  # noqa: E731
            ref_fn = lambda: reference.relu_backward(dy, x)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: torch.ops.aten.threshold_backward(tdy, tx, 0.0)  # noqa: E731
    elif op.op == "tanh":  # amplitude 1, slope 1: the same math as torch.tanh
        if fwd:
            ck_fn = lambda: ck.tanh(x)  # noqa: E731
            ref_fn = lambda: reference.tanh(x)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: torch.tanh(tx)  # noqa: E731
        else:
            y = np.tanh(x)
            ck_fn = lambda: ck.tanh_backward(dy, y)  # noqa: E731
            ref_fn = lambda: reference.tanh_backward(dy, y)  # noqa: E731
            if torch is not None:
                ty = torch.from_numpy(y)
                torch_fn = lambda: torch.ops.aten.tanh_backward(tdy, ty)  # noqa: E731
    elif op.op == "lrn":
        n, prm = op.size, LRN_PARAMS
        if fwd:
            ck_fn = lambda: ck.lrn(x, n, **prm)  # noqa: E731
            ref_fn = lambda: reference.lrn(x, n, **prm)  # noqa: E731
            if torch is not None:
                torch_fn = lambda: F.local_response_norm(tx, n, **prm)  # noqa: E731
        else:
            ck_fn = lambda: ck.lrn_backward(dy, x, n, **prm)  # noqa: E731
            ref_fn = lambda: reference.lrn_backward(dy, x, n, **prm)  # noqa: E731
            if torch is not None:
                # PyTorch's LRN is a composite op: its backward is autograd's, on a graph kept
                # alive between calls so that only the backward pass is timed.
                tleaf = tx.clone().requires_grad_(True)
                ty = F.local_response_norm(tleaf, n, **prm)

                def torch_fn():
                    return torch.autograd.grad(ty, tleaf, tdy, retain_graph=True)[0]

    elif op.op == "lcn":
        n, prm = op.size, LCN_PARAMS
        # no PyTorch op: validated against (and timed with) the reference
        if fwd:
            ck_fn = lambda: ck.lcn(x, n, **prm)  # noqa: E731
            ref_fn = lambda: reference.lcn(x, n, **prm)  # noqa: E731
        else:
            ck_fn = lambda: ck.lcn_backward(dy, x, n, **prm)  # noqa: E731
            ref_fn = lambda: reference.lcn_backward(dy, x, n, **prm)  # noqa: E731
        compare = _close(n * n * op.C)
    else:  # pragma: no cover - the registry only holds the ops above
        raise ValueError(f"unknown memory-bound op {op.op!r}")
    return Prepared(
        case,
        ck_fn,
        torch_fn,
        ref_fn if op.reference else None,
        compare,
        expected_reference=ref_fn,
        copy=same_size_copy(case.work, ck.get_num_threads()),
    )


def _max_pool_compare(x):
    """y must match; every index must point at an element of x equal to its maximum."""
    N, C = x.shape[:2]
    flat = x.reshape(N, C, -1)
    values_close = _close(1)

    def compare(actual, expected):
        y, idx = actual
        err = values_close(y, expected[0])
        idx = np.asarray(idx)
        if idx.shape != y.shape or idx.dtype != np.int64:
            raise ValidationError(f"indices: {idx.dtype} {idx.shape}, expected int64 {y.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= flat.shape[2]):
            raise ValidationError("indices outside the input")
        picked = np.take_along_axis(flat, idx.reshape(N, C, -1), axis=2).reshape(y.shape)
        if not np.array_equal(picked, y):
            raise ValidationError("indices do not point at the maxima")
        return err

    return compare


def _prepare_gemm(case, rng, torch):
    import convkernels as ck

    G = case.spec
    a = _randn(rng, (G.M, G.K))
    b = _randn(rng, (G.K, G.N))
    torch_fn = None
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        torch_fn = lambda: torch.mm(ta, tb)  # noqa: E731
    ref_fn = lambda: a @ b  # noqa: E731
    return Prepared(
        case,
        lambda: ck.gemm(a, b),
        torch_fn,
        ref_fn if G.reference else None,
        _close(G.K),
        expected_reference=ref_fn,
    )


# ----------------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Settings:
    """How to time. The defaults are the full table's; quick() the CI smoke run's."""

    threads: int = 2
    warmup: int = 2  # untimed calls of each implementation before the first round
    repeats: int = 9  # timed rounds; the table shows the median
    min_sample_s: float = 0.02  # a sample repeats a call until it lasts this long
    reference_repeats: int = 3  # the slow NumPy reference runs in the first rounds only
    gap_s: float = 0.0  # pause before each sample (sleeping lets this VM's cores clock down)
    torch: bool = True
    reference: bool = True

    @classmethod
    def quick(cls, **kw):
        return cls(**{"warmup": 1, "repeats": 3, "min_sample_s": 0.002, "reference_repeats": 1,
                      **kw})  # fmt: skip


def import_torch():
    """torch, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _calls_per_sample(fn, min_sample_s):
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    if once >= min_sample_s:
        return 1
    return int(min(1000, math.ceil(min_sample_s / max(once, 1e-7))))


def measure(impls, settings):
    """{name: {'median_ms', 'min_ms', 'samples', 'calls_per_sample'}}, rounds interleaved."""
    numbers = {}
    for name, fn in impls.items():
        for _ in range(settings.warmup if name != "reference" else min(settings.warmup, 1)):
            fn()
        numbers[name] = 1 if name == "reference" else _calls_per_sample(fn, settings.min_sample_s)
    samples = {name: [] for name in impls}
    order = list(impls)
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_ in range(settings.repeats):
            for name in order if round_ % 2 == 0 else order[::-1]:
                if name == "reference" and len(samples[name]) >= settings.reference_repeats:
                    continue
                fn, number = impls[name], numbers[name]
                if settings.gap_s:
                    time.sleep(settings.gap_s)
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - t0) / number)
    finally:
        if gc_enabled:
            gc.enable()
    return {
        name: {
            "median_ms": 1e3 * statistics.median(times),
            "min_ms": 1e3 * min(times),
            "samples": len(times),
            "calls_per_sample": numbers[name],
        }
        for name, times in samples.items()
        if times
    }


# ------------------------------------------------------------------------------ a whole run


def environment(threads, torch=None):
    """Which machine, threads, versions and ISA a run used, and when."""
    import convkernels as ck
    from convkernels import probe

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": probe.cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "convkernels": ck.__version__,
        "convkernels_isa": ck.get_isa(),
        "torch": None,
        "torch_cpu_capability": None,
        "onednn": None,
        "load_average": _load_average(),
    }
    if torch is not None:
        meta["torch"] = torch.__version__
        try:
            meta["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except AttributeError:  # older PyTorch
            pass
        found = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)", torch.__config__.show())
        meta["onednn"] = found.group(1) if found else None
    return meta


def _load_average():
    """1-minute load average (a busy shared machine shows here), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _rate(work, ms, metric):
    if ms is None or ms <= 0:
        return None
    return work / (ms * 1e-3) / 1e9


def run(case_list, settings=None, probe_result=None, progress=None):
    """Validate and time every case; the result is what --json writes.

    probe_result: convkernels.probe.probe()'s dict, or None (then the peak is measured here and
    memory-bound rows have no %). progress: called with (i, n, case) before each case.
    """
    import convkernels as ck
    from convkernels import probe

    settings = settings or Settings()
    torch = import_torch() if settings.torch else None
    threads = settings.threads
    ck_threads_before = ck.get_num_threads()
    torch_threads_before = torch.get_num_threads() if torch is not None else None
    ck.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        meta = environment(threads, torch)
        if probe_result is None:
            peak, copy_gbs = probe.peak_gflops(threads), None
        else:
            peak, copy_gbs = probe_result["peak"], probe_result["copy"]["gbs"]
        meta["peak_gflops"] = peak["gflops"]
        meta["peak_source"] = peak["source"]
        meta["copy_gbs"] = copy_gbs
        meta["probe"] = probe_result
        meta["settings"] = dataclasses.asdict(settings)
        rows = []
        for i, case in enumerate(case_list):
            if progress is not None:
                progress(i, len(case_list), case)
            rows.append(_run_case(case, settings, torch, peak["gflops"], copy_gbs))
            gc.collect()
    finally:
        ck.set_num_threads(ck_threads_before)
        if torch is not None:
            torch.set_num_threads(torch_threads_before)
    meta["seconds"] = time.perf_counter() - started
    meta["load_average_after"] = _load_average()
    return {"meta": meta, "rows": rows, "summary": summarize(rows)}


def _run_case(case, settings, torch, peak_gflops, copy_gbs):
    row = {
        "id": case.id,
        "layer": case.label,
        "name": case.spec.name,
        "kind": case.kind,
        "family": case.spec.family,
        "batch": case.batch,
        "direction": case.direction,
        "metric": case.metric,
        "work": case.work,
        "validated_against": None,
        "max_rel_err": None,
        "error": None,
    }
    for impl in ("convkernels", "torch", "reference", "copy"):
        row[f"{impl}_ms"] = row[f"{impl}_min_ms"] = None
    try:
        prepared = case.prepare(torch if settings.torch else None)
        if not settings.reference:
            prepared.reference = None
        checked = prepared.validate()
        row["validated_against"] = checked["against"]
        row["max_rel_err"] = checked["max_rel_err"]
        timings = measure(prepared.implementations(), settings)
    except ValidationError as e:
        row["error"] = f"validation failed: {e}"
        return row
    except Exception as e:  # a kernel refusing a shape is a result too, not a crash
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    for impl, t in timings.items():
        row[f"{impl}_ms"] = t["median_ms"]
        row[f"{impl}_min_ms"] = t["min_ms"]
        row[f"{impl}_calls_per_sample"] = t["calls_per_sample"]
        row[f"{impl}_samples"] = t["samples"]
    ck_ms, torch_ms = row["convkernels_ms"], row["torch_ms"]
    row["speedup"] = torch_ms / ck_ms if torch_ms and ck_ms else None
    row["rate"] = _rate(case.work, ck_ms, case.metric)
    row["torch_rate"] = _rate(case.work, torch_ms, case.metric)
    row["copy_rate"] = _rate(case.work, row["copy_ms"], case.metric)
    # compute-bound: the FP32 peak; memory-bound: the same-size copy of this round
    yardstick = peak_gflops if case.metric == "GFLOP/s" else row["copy_rate"]
    for key, rate in (("pct_peak", row["rate"]), ("torch_pct_peak", row["torch_rate"])):
        row[key] = 100.0 * rate / yardstick if rate is not None and yardstick else None
    if case.metric == "GB/s":  # and against the large (DRAM) copy of the probe
        row["pct_dram_copy"] = 100.0 * row["rate"] / copy_gbs if copy_gbs else None
    return row


def summarize(rows):
    """Geometric mean of the speed-ups over the conv rows; the row with the lowest speed-up."""
    conv = [
        r["speedup"]
        for r in rows
        if r["kind"] == "conv" and r["direction"] in CONV_DIRECTIONS and r.get("speedup")
    ]
    timed = [r for r in rows if r.get("speedup")]
    worst = min(timed, key=lambda r: r["speedup"]) if timed else None
    return {
        "conv_rows": len(conv),
        "conv_geomean_speedup": math.exp(sum(map(math.log, conv)) / len(conv)) if conv else None,
        "worst": None
        if worst is None
        else {k: worst[k] for k in ("id", "layer", "direction")} | {"speedup": worst["speedup"]},
        "failed": [r["id"] for r in rows if r["error"]],
    }


# ----------------------------------------------------------------------------------- output

HEADERS = ("layer", "dir", "convkernels ms", "PyTorch ms", "NumPy ms", "speed-up", "rate",
           "% peak")  # fmt: skip
_RIGHT = (False, False, True, True, True, True, True, True)


def _ms(v):
    if v is None:
        return "—"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _cells(row):
    if row["error"]:
        return [row["layer"], row["direction"], "FAILED", "", "", "", "", ""]
    rate = row["rate"]
    return [
        row["layer"],
        row["direction"],
        _ms(row["convkernels_ms"]),
        _ms(row["torch_ms"]),
        _ms(row["reference_ms"]),
        "—" if row["speedup"] is None else f"{row['speedup']:.2f}×",
        "—" if rate is None else f"{rate:.1f} {row['metric']}",
        "—" if row["pct_peak"] is None else f"{row['pct_peak']:.0f}",
    ]


def _summary_cells(result):
    s = result["summary"]
    cells = []
    if s["conv_geomean_speedup"] is not None:
        cells.append(
            [f"geometric mean, {s['conv_rows']} conv rows", "", "", "", "",
             f"{s['conv_geomean_speedup']:.2f}×", "", ""]
        )  # fmt: skip
    if s["worst"] is not None:
        w = s["worst"]
        cells.append(
            [f"worst: {w['layer']}", w["direction"], "", "", "", f"{w['speedup']:.2f}×", "", ""]
        )
    return cells


def _busy_warning(meta):
    """A header line when the machine was busy before the run (shared machines)."""
    load, cpus = meta.get("load_average"), meta.get("logical_cpus") or 1
    if load is None or load < 0.5 * cpus:
        return []
    return [
        f"WARNING   load average {load} on {cpus} CPUs when the run started: other work "
        "shared the cores, so the times are noisy (compare the minima in the JSON)"
    ]


def _header_lines(result):
    m = result["meta"]
    torch = "not installed" if m["torch"] is None else m["torch"]
    isa = f"convkernels {m['convkernels_isa']}"
    if m["torch"] is not None:
        isa += f", PyTorch {m['torch_cpu_capability']} (oneDNN {m['onednn']})"
    settings = m["settings"]
    lines = [
        f"date      {m['date']}",
        f"machine   {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['platform']}",
        f"threads   {m['threads']} (convkernels and PyTorch alike); load average "
        f"{m['load_average']} before, {m.get('load_average_after')} after",
        f"versions  convkernels {m['convkernels']}, PyTorch {torch}, NumPy {m['numpy']}, "
        f"Python {m['python']}",
        f"ISA       {isa}",
        *_busy_warning(m),
        f"peak      {m['peak_gflops']:.1f} GFLOP/s ({m['peak_source']})",
    ]
    p = m["probe"]
    if p is not None:
        lines.append(
            f"measured  convkernels.gemm {p['gemm']['n']}³ {p['gemm']['gflops']:.1f} GFLOP/s; "
            f"np.copyto {p['copy']['bytes'] >> 20} MiB {m['copy_gbs']:.1f} GB/s (read + write)"
        )
        if p["warning"]:
            lines.append(f"WARNING   {p['warning']}")
    else:
        lines.append("measured  nothing (--no-probe)")
    lines.append(
        f"timing    {settings['warmup']} warm-up calls, median of {settings['repeats']} "
        f"interleaved rounds (reference: {settings['reference_repeats']}), "
        f"samples ≥ {1e3 * settings['min_sample_s']:g} ms"
    )
    return lines


NOTES = (
    "speed-up = PyTorch ms / convkernels ms (> 1: convkernels is faster). rate and % peak are "
    "convkernels': GFLOP/s against the peak above (conv: 2·N·K·C/g·R·S·P·Q, padding taps "
    "included); GB/s (bytes read + written) against an np.copyto moving as many bytes on as "
    "many threads, timed in the same rounds. NumPy ms: the naive reference "
    "(convkernels.reference), small shapes only; for SGEMM, NumPy's matmul."
)


def _footer(result):
    m = result["meta"]
    return f"{len(result['rows'])} rows in {m['seconds']:.1f} s (the probe not included)."


def format_text(result):
    """The table as aligned plain text, with the run's header and the summary rows."""
    body = [_cells(r) for r in result["rows"]]
    summary = _summary_cells(result)
    widths = [max(len(str(c[i])) for c in [HEADERS, *body, *summary]) for i in range(8)]

    def line(cells):
        parts = [
            str(c).rjust(w) if right else str(c).ljust(w)
            for c, w, right in zip(cells, widths, _RIGHT)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [*_header_lines(result), "", line(HEADERS), rule, *map(line, body)]
    if summary:
        out += [rule, *map(line, summary)]
    out += ["", NOTES, _footer(result)]
    out += [f"FAILED {r['id']}: {r['error']}" for r in result["rows"] if r["error"]]
    return "\n".join(out)


def format_markdown(result):
    """The table as GitHub Markdown (for bench/RESULTS.md), header lines as a list."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    align = "|" + "|".join("---:" if right else "---" for right in _RIGHT) + "|"
    out = [f"- {h.split(None, 1)[0]}: {h.split(None, 1)[1]}" for h in _header_lines(result)]
    out += ["", line(HEADERS), align, *(line(_cells(r)) for r in result["rows"])]
    for cells in _summary_cells(result):
        out.append(line([f"**{c}**" if c else "" for c in cells]))
    out += ["", NOTES, "", _footer(result)]
    out += [f"\n**FAILED** `{r['id']}`: {r['error']}" for r in result["rows"] if r["error"]]
    return "\n".join(out)


def write_json(result, path):
    """The whole result (meta, rows, summary) as JSON, written atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def progress_to_stderr(i, n, case):
    """A one-line progress report on stderr (the CLI clears it when the run ends)."""
    print(f"\r[{i + 1}/{n}] {case.id:<44}", end="", file=sys.stderr, flush=True)
