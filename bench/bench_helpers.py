"""Shared by the pytest-benchmark suites: the registry's cases, validation, threads.

The shapes come from convkernels.bench (CONV_LAYERS, MEMORY_OPS, GEMMS through `cases()`), the
same registry `convkernels bench` prints its table from. Environment:

* CONVKERNELS_BENCH_THREADS  threads for convkernels and PyTorch alike (default 2)
* CONVKERNELS_BENCH_QUICK=1  only the presets of `convkernels bench --quick`
* CONVKERNELS_BENCH_BATCH    N or FAMILY=N[,FAMILY=N] (e.g. alexnet=32), as `--batch`
"""

import os

import pytest

from convkernels import bench

THREADS = int(os.environ.get("CONVKERNELS_BENCH_THREADS", "2"))
QUICK = os.environ.get("CONVKERNELS_BENCH_QUICK", "") not in ("", "0")
TORCH = bench.import_torch()
IMPLEMENTATIONS = ("convkernels", "torch", "reference")


def _batch():
    text = os.environ.get("CONVKERNELS_BENCH_BATCH", "").strip()
    if not text:
        return None
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}


def params(kind):
    """parametrize() arguments: every (case, implementation) of one kind, case by case."""
    pairs = [
        (case, impl)
        for case in bench.cases(kinds=(kind,), quick=QUICK, batch=_batch())
        for impl in IMPLEMENTATIONS
        if impl == "convkernels"
        or (impl == "torch" and TORCH is not None and case.has_torch)
        or (impl == "reference" and case.has_reference_timing)
    ]
    return {"argvalues": pairs, "ids": [f"{case.id}-{impl}" for case, impl in pairs]}


_prepared = {}


def prepared(case):
    """The case's callables, validated against PyTorch or the reference on first use.

    One case is kept at a time (AlexNet's tensors are large); the parametrization runs all
    implementations of a case in a row.
    """
    if case not in _prepared:
        _prepared.clear()
        p = case.prepare(TORCH)
        p.validate()  # raises ValidationError: a wrong kernel is never timed
        _prepared[case] = p
    return _prepared[case]


def run_benchmark(benchmark, case, impl):
    """Time one implementation of one case; GFLOP/s or GB/s go to extra_info."""
    fn = prepared(case).implementations(copy=False).get(impl)
    if fn is None:
        pytest.skip(f"no {impl} timing for {case.id}")
    benchmark.group = case.id
    benchmark.extra_info.update(
        {"case": case.id, "layer": case.label, "metric": case.metric, "work": case.work}
    )
    benchmark(fn)
    median = benchmark.stats.stats.median if benchmark.stats else None
    if median:
        benchmark.extra_info["rate"] = case.work / median / 1e9
