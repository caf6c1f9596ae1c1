"""The GPU suite: convkernels' CUDA kernels against cuDNN (through PyTorch) on the same presets.

``convkernels bench --device cuda`` runs it. Every row is the CPU suite's (convkernels.bench
cases(): LeNet-5, CIFAR and AlexNet convolutions in three directions; pooling, ReLU, LRN, LCN
forward and backward), on CuPy arrays; cuDNN runs in FP32 (TF32 off). Each convkernels result
is first compared with cuDNN (or, for LCN, which PyTorch lacks, with the CPU kernels). Timing
uses CUDA events on the current stream around one call, after the L2 cache is flushed by writing
a buffer twice its size, so every call starts cold as in a network; the table reports medians,
TFLOP/s or GB/s, and the fraction of this GPU's peak: FP32 lanes x 2 x SM count x clock, and
2 x memory clock x bus width, from the device attributes.

This suite has not been run by its authors yet (no GPU on the development machines): its
numbers belong in bench/RESULTS.md once someone runs it on a GPU.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from .bench import ConvLayer, MemoryOp, _close, cases

# FP32 lanes per SM by compute capability (CUDA C Programming Guide, arithmetic throughput).
_FP32_LANES = {(7, 5): 64, (8, 0): 64, (9, 0): 128}


def fp32_lanes(major, minor):
    return _FP32_LANES.get((major, minor), 128 if major >= 8 else 64)


def peaks(attributes, major, minor):
    """(FP32 TFLOP/s, memory GB/s) of a device from its attributes (CuPy's Device.attributes)."""
    clock_hz = attributes["ClockRate"] * 1e3  # kHz
    tflops = 2 * fp32_lanes(major, minor) * attributes["MultiProcessorCount"] * clock_hz / 1e12
    memory_hz = attributes["MemoryClockRate"] * 1e3
    gbs = 2 * memory_hz * attributes["GlobalMemoryBusWidth"] / 8 / 1e9  # double data rate
    return tflops, gbs


def _device_description(cupy):
    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    major, minor = int(props["major"]), int(props["minor"])
    tflops, gbs = peaks(device.attributes, major, minor)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return dict(name=name, sm=f"{major}{minor}", peak_tflops=tflops, peak_gbs=gbs,
                l2_bytes=device.attributes["L2CacheSize"])  # fmt: skip


def _prepare(case, cupy, torch):
    """(convkernels callable, cuDNN callable or None, expected-result callable, reduction)."""
    import convkernels as ck

    rng = np.random.default_rng(0)

    def randn(shape):
        return cupy.asarray(rng.standard_normal(shape, dtype=np.float32))

    spec, N = case.spec, case.batch
    if isinstance(spec, ConvLayer):
        P, Q = spec.output_size
        g, s, p = spec.groups, spec.stride, spec.padding
        x, dy = randn((N, spec.C, spec.H, spec.W)), randn((N, spec.K, P, Q))
        w = randn((spec.K, spec.C // g, spec.R, spec.S)) / math.sqrt(spec.C // g * spec.R * spec.S)
        tx, tw, tdy = (torch.as_tensor(a, device="cuda") for a in (x, w, dy))
        F = torch.nn.functional
        if case.direction == "fwd":
            ours = lambda: ck.conv2d(x, w, None, s, p, 1, g)  # noqa: E731
            theirs = lambda: F.conv2d(tx, tw, None, s, p, 1, g)  # noqa: E731
            return ours, theirs, theirs, spec.C // g * spec.R * spec.S
        if case.direction == "bwd-input":
            ours = lambda: ck.conv2d_backward_input(dy, w, x.shape, s, p, 1, g)  # noqa: E731
            theirs = lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tdy, s, p, 1, g)  # noqa: E731
            return ours, theirs, theirs, spec.K // g * spec.R * spec.S
        ours = lambda: ck.conv2d_backward_weight(x, dy, w.shape, s, p, 1, g)  # noqa: E731
        theirs = lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tdy, s, p, 1, g)  # noqa: E731
        return ours, theirs, theirs, N * P * Q
    assert isinstance(spec, MemoryOp)
    from .bench import LCN_PARAMS, LRN_PARAMS

    x = randn((N, spec.C, spec.H, spec.W))
    fwd = case.direction == "fwd"
    if spec.op == "lcn":  # no cuDNN op: compare with the CPU kernels
        dy = randn(x.shape)
        args = dict(size=spec.size, **LCN_PARAMS)
        if fwd:
            return (lambda: ck.lcn(x, **args)), None, (lambda: ck.lcn(x.get(), **args)), 81
        ours = lambda: ck.lcn_backward(dy, x, **args)  # noqa: E731
        return ours, None, (lambda: ck.lcn_backward(dy.get(), x.get(), **args)), 4 * 81
    tx = torch.as_tensor(x, device="cuda").requires_grad_(not fwd)
    F = torch.nn.functional
    if spec.op == "relu":
        ck_fwd, t_fwd = (lambda v: ck.relu(v)), F.relu
    elif spec.op == "lrn":
        a = LRN_PARAMS
        ck_fwd = lambda v: ck.lrn(v, spec.size, a["alpha"], a["beta"], a["k"])  # noqa: E731
        t_fwd = lambda v: F.local_response_norm(v, spec.size, a["alpha"], a["beta"], a["k"])  # noqa: E731
    elif spec.op == "max_pool2d":
        ck_fwd = lambda v: ck.max_pool2d(v, spec.kernel, spec.stride)[0]  # noqa: E731
        t_fwd = lambda v: F.max_pool2d(v, spec.kernel, spec.stride)  # noqa: E731
    else:
        ck_fwd = lambda v: ck.avg_pool2d(v, spec.kernel, spec.stride)  # noqa: E731
        t_fwd = lambda v: F.avg_pool2d(v, spec.kernel, spec.stride)  # noqa: E731
    if fwd:
        return (lambda: ck_fwd(x)), (lambda: t_fwd(tx)), (lambda: t_fwd(tx)), spec.size or 9
    ty = t_fwd(tx)
    dy = randn(tuple(ty.shape))
    tdy = torch.as_tensor(dy, device="cuda")
    theirs = lambda: torch.autograd.grad(ty, tx, tdy, retain_graph=True)[0]  # noqa: E731
    if spec.op == "relu":
        ours = lambda: ck.relu_backward(dy, x)  # noqa: E731
    elif spec.op == "lrn":
        a = LRN_PARAMS
        ours = lambda: ck.lrn_backward(dy, x, spec.size, a["alpha"], a["beta"], a["k"])  # noqa: E731
    elif spec.op == "max_pool2d":
        _, idx = ck.max_pool2d(x, spec.kernel, spec.stride)
        ours = lambda: ck.max_pool2d_backward(dy, idx, x.shape)  # noqa: E731
    else:
        ours = lambda: ck.avg_pool2d_backward(dy, x.shape, spec.kernel, spec.stride)  # noqa: E731
    return ours, theirs, theirs, 4 * (spec.size or 9)


def _as_numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value.get() if hasattr(value, "get") else np.asarray(value)


def _time(fn, cupy, flush, repeats):
    """Median milliseconds of fn() between CUDA events, each call after an L2 flush."""
    times = []
    for _ in range(repeats):
        flush.fill(1)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def run(case_list=None, repeats=20, warmup=3, progress=None):
    """Validates and times every case; returns {"device": ..., "rows": [...]}."""
    import cupy
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("the GPU suite compares with cuDNN: it needs a CUDA build of PyTorch")
    torch.backends.cudnn.benchmark = True
    # FP32 against FP32: PyTorch lets cuDNN round convolutions to TF32 on tensor cores by
    # default, which is a different (less exact) computation than ours.
    torch.backends.cudnn.allow_tf32 = False
    device = _device_description(cupy)
    flush = cupy.empty(max(2 * device["l2_bytes"], 1 << 20) // 4, dtype=np.float32)
    case_list = cases(kinds=("conv", "pool", "elementwise")) if case_list is None else case_list
    rows = []
    for i, case in enumerate(case_list):
        if progress:
            progress(i, len(case_list), case)
        ours, theirs, expected, reduction = _prepare(case, cupy, torch)
        error = _close(reduction)(_as_numpy(ours()), _as_numpy(expected()))
        for fn in (ours, theirs):
            for _ in range(warmup if fn is not None else 0):
                fn()
        ck_ms = _time(ours, cupy, flush, repeats)
        cudnn_ms = _time(theirs, cupy, flush, repeats) if theirs is not None else None
        peak = device["peak_gbs"] * 1e9 if case.metric == "GB/s" else device["peak_tflops"] * 1e12
        rate = case.work / (ck_ms / 1e3)
        rows.append(dict(id=case.id, label=case.label, direction=case.direction,
                         convkernels_ms=ck_ms, cudnn_ms=cudnn_ms,
                         speedup=None if cudnn_ms is None else cudnn_ms / ck_ms,
                         metric="TFLOP/s" if case.metric == "GFLOP/s" else "GB/s",
                         rate=rate / (1e12 if case.metric == "GFLOP/s" else 1e9),
                         pct_peak=100 * rate / peak, max_error=error))  # fmt: skip
    return {"device": device, "rows": rows}


def format_text(result):
    d = result["device"]
    lines = [
        f"{d['name']} (sm_{d['sm']}): peak {d['peak_tflops']:.1f} FP32 TFLOP/s, "
        f"{d['peak_gbs']:.0f} GB/s; CUDA events, L2 flushed before each call, medians",
        f"{'layer':<44} {'dir':<10} {'ck ms':>9} {'cuDNN ms':>9} {'speed-up':>8} "
        f"{'rate':>14} {'% peak':>7}",
    ]
    for r in result["rows"]:
        cudnn = "—" if r["cudnn_ms"] is None else f"{r['cudnn_ms']:.3f}"
        speedup = "—" if r["speedup"] is None else f"{r['speedup']:.2f}×"
        lines.append(
            f"{r['label']:<44} {r['direction']:<10} {r['convkernels_ms']:>9.3f} {cudnn:>9} "
            f"{speedup:>8} {r['rate']:>8.2f} {r['metric']:<5} {r['pct_peak']:>6.1f}%"
        )
    return "\n".join(lines)
