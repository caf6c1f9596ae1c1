"""Test helpers: ISA levels, tolerances, finite differences, the optional PyTorch."""

import contextlib
import os

import numpy as np
import pytest

import convkernels as ck

ISAS = ck.supported_isas()


@contextlib.contextmanager
def using_isa(name):
    before = ck.get_isa()
    ck.set_isa(name)
    try:
        yield
    finally:
        ck.set_isa(before)


# Convolution algorithms the kernels choose between per shape; the tests force each in turn.
CONV_ALGORITHMS = ("gemm", "direct", "winograd")


@contextlib.contextmanager
def using_conv_algorithm(name):
    before = ck.get_conv_algorithm()
    ck.set_conv_algorithm(name)
    try:
        yield
    finally:
        ck.set_conv_algorithm(before)


def each_isa(fn, conv_algorithms=("auto",)):
    """{label: fn()} for every ISA level this CPU supports (and every algorithm given)."""
    results = {}
    for isa in ISAS:
        with using_isa(isa):
            for algorithm in conv_algorithms:
                with using_conv_algorithm(algorithm):
                    label = isa if algorithm == "auto" else f"{isa}, {algorithm}"
                    results[label] = fn()
    return results


def tolerance(dtype, reduction):
    """(rtol, atol) for a result that sums `reduction` terms of unit-scale products."""
    eps = np.finfo(dtype).eps
    scaled = 4 * eps * max(reduction, 1)
    return scaled, scaled


def assert_close(actual, expected, dtype, reduction=1, what=""):
    """|actual - expected| <= atol * scale + rtol * |expected|, scale = max(1, mean |expected|)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values (an unwritten output?)"
    rtol, atol = tolerance(dtype, reduction)
    scale = max(1.0, float(np.mean(np.abs(expected)))) if expected.size else 1.0
    err = np.abs(actual.astype(np.float64) - expected)
    bound = atol * scale + rtol * np.abs(expected)
    worst = np.argmax(err - bound) if err.size else 0
    assert np.all(err <= bound), (
        f"{what}: max error {err.flat[worst]:.3g} at {np.unravel_index(worst, err.shape)} "
        f"exceeds {bound.flat[worst]:.3g} (dtype {np.dtype(dtype).name}, reduction {reduction})"
    )


# Winograd's transforms scale values by up to 16 and 1/24 and mix a whole tile, so its rounding
# error runs up to ~16x the direct sum's (tests/test_winograd.py bounds it more closely).
WINOGRAD_ERROR_FACTOR = 16


def check_each_isa(run, expected, dtype, reduction=1, what="", conv_algorithms=("auto",)):
    """run() on every ISA level (and algorithm), each result close to `expected`."""
    for label, actual in each_isa(run, conv_algorithms).items():
        factor = WINOGRAD_ERROR_FACTOR if label.endswith("winograd") else 1
        assert_close(actual, expected, dtype, reduction * factor, f"{what} [{label}]")


def directional_gradcheck(forward, backward, x, rng, h=1e-6, trials=3, what=""):
    """Finite-difference check of a backward, in float64.

    For random directions u (in input space) and v (in output space), the central difference
    <v, (f(x + h u) - f(x - h u)) / 2h> must match <backward(v), u>: one check covers every
    element of the Jacobian at the cost of two forward calls. The caller keeps x away from kinks.
    """
    assert x.dtype == np.float64
    for _ in range(trials):
        u = rng.standard_normal(x.shape)
        y = forward(x)
        v = rng.standard_normal(y.shape)
        numeric = np.sum(v * (forward(x + h * u) - forward(x - h * u))) / (2 * h)
        analytic = np.sum(backward(v, x) * u)
        scale = max(abs(numeric), abs(analytic), 1.0)
        assert abs(numeric - analytic) <= 1e-6 * scale, (
            f"{what}: finite difference {numeric!r} vs backward {analytic!r}"
        )


def unchanged(*arrays):
    """Snapshots of the inputs; call .check() after the op to prove none was written."""

    class Snapshot:
        copies = [np.array(a, copy=True) for a in arrays]

        @staticmethod
        def check():
            for before, after in zip(Snapshot.copies, arrays):
                np.testing.assert_array_equal(before, after, err_msg="an input was modified")

    return Snapshot


def _import_torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("CONVKERNELS_REQUIRE_TORCH") == "1":
            raise
        return None
    torch.set_num_threads(2)
    return torch


torch = _import_torch()
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
