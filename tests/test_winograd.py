"""Winograd convolution, F(4x4, 3x3) and F(2x2, 5x5): results, error bound, when it is chosen.

The float32 bound: |y - y_exact| <= 64 eps max sum_c,r,s |x w|, the maximum taken over the
output's plane (sample, filter): a tile's rounding error follows the size of the whole tile's
transformed values, so an output at the border with few taps inside the input can carry the
error of its larger neighbours. Measured on normal and on all-positive data, AlexNet-like
channel counts included: at most ~20 eps for Winograd, ~6 for the im2col GEMM, so the bound
leaves a margin of about 3 while failing for any real mistake (a wrong transform coefficient
is off by whole units of the output).
"""

import numpy as np
import pytest
from helpers import (
    assert_close,
    directional_gradcheck,
    each_isa,
    unchanged,
    using_conv_algorithm,
)

import convkernels as ck
from convkernels import reference as ref

EPS32 = np.finfo(np.float32).eps
BOUND_EPS = 64

# (N, C, H, W, K, R, padding, groups): partial tiles, non-square, every padding Winograd takes,
# groups, filter and channel counts that fill no register tile, more tiles than one forward
# block (64) and, in the last shape, than one backward-weight block (512).
SHAPES = [
    (2, 32, 13, 13, 40, 3, 1, 1),
    (3, 17, 9, 14, 7, 3, 0, 1),
    (1, 33, 7, 7, 35, 3, 2, 1),
    (2, 64, 6, 11, 64, 3, 1, 2),
    (5, 8, 20, 20, 13, 3, 1, 1),
    (1, 5, 1, 1, 3, 3, 1, 1),
    (2, 6, 4, 5, 9, 3, 2, 3),
    (2, 32, 16, 16, 32, 5, 2, 1),
    (3, 17, 9, 14, 7, 5, 0, 1),
    (1, 33, 7, 7, 35, 5, 4, 1),
    (2, 64, 6, 11, 64, 5, 2, 2),
    (5, 8, 21, 20, 13, 5, 1, 1),
    (2, 3, 1, 1, 4, 5, 2, 1),
    (6, 8, 20, 20, 13, 5, 2, 1),
]
IDS = [f"{s[5]}x{s[5]}-" + "-".join(map(str, s[:5] + s[6:])) for s in SHAPES]


def make(shape, dtype, rng, positive=False):
    N, C, H, W, K, R, padding, groups = shape
    draw = rng.random if positive else rng.standard_normal
    x = draw((N, C, H, W)).astype(dtype)
    w = draw((K, C // groups, R, R)).astype(dtype)
    return x, w, {"padding": padding, "groups": groups}


def assert_within_winograd_bound(actual, exact, l1, what):
    err = np.abs(actual.astype(np.float64) - exact)
    plane_scale = np.max(l1, axis=(2, 3), keepdims=True)
    worst = np.max(err / np.maximum(plane_scale, np.finfo(np.float64).tiny)) / EPS32
    assert worst <= BOUND_EPS, f"{what}: error {worst:.1f} eps x sum|x w| exceeds {BOUND_EPS}"


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_float64_matches_reference(shape):
    rng = np.random.default_rng(0)
    x, w, kw = make(shape, np.float64, rng)
    b = rng.standard_normal(shape[4])
    snapshot = unchanged(x, w, b)
    expected = ref.conv2d(x, w, b, **kw)
    taps = w[0].size
    for label, y in each_isa(lambda: ck.conv2d(x, w, b, **kw), ("winograd",)).items():
        assert_close(y, expected, np.float64, taps + 1, f"forward [{label}]")
    snapshot.check()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("positive", [False, True], ids=["normal", "positive"])
def test_forward_float32_error_is_bounded(shape, positive):
    rng = np.random.default_rng(1)
    x, w, kw = make(shape, np.float32, rng, positive)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    exact = ref.conv2d(x64, w64, **kw)
    l1 = ref.conv2d(np.abs(x64), np.abs(w64), **kw)
    for label, y in each_isa(lambda: ck.conv2d(x, w, **kw), ("winograd",)).items():
        assert y.dtype == np.float32
        assert_within_winograd_bound(y, exact, l1, f"forward [{label}]")


# Backward-input runs Winograd as a forward convolution of dy padded by R - 1 - padding.
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[6] <= s[5] - 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_input(shape, dtype):
    rng = np.random.default_rng(2)
    x, w, kw = make(shape, dtype, rng)
    dy = rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(dtype)
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    exact = ref.conv2d_backward_input(dy64, w64, x.shape, **kw)
    l1 = ref.conv2d_backward_input(np.abs(dy64), np.abs(w64), x.shape, **kw)
    run = lambda: ck.conv2d_backward_input(dy, w, x.shape, **kw)  # noqa: E731
    for label, dx in each_isa(run, ("winograd",)).items():
        if dtype == np.float64:
            taps = shape[4] // shape[7] * shape[5] ** 2
            assert_close(dx, exact, dtype, taps, f"backward input [{label}]")
        else:
            assert_within_winograd_bound(dx, exact, l1, f"backward input [{label}]")


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_weight(shape, dtype):
    rng = np.random.default_rng(6)
    x, w, kw = make(shape, dtype, rng)
    dy = rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(dtype)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    snapshot = unchanged(x, dy)
    exact = ref.conv2d_backward_weight(x64, dy64, w.shape, **kw)
    run = lambda: ck.conv2d_backward_weight(x, dy, w.shape, **kw)  # noqa: E731
    for label, dw in each_isa(run, ("winograd",)).items():
        if dtype == np.float64:
            assert_close(dw, exact, dtype, dy[0, 0].size * len(x), f"backward weight [{label}]")
        else:
            # The plane here is a filter's (channel, 3 x 3) taps: every tap sums over all tiles.
            l1 = ref.conv2d_backward_weight(np.abs(x64), np.abs(dy64), w.shape, **kw)
            scale = np.max(l1, axis=(1, 2, 3), keepdims=True)
            err = np.max(np.abs(dw - exact) / np.maximum(scale, 1e-300)) / EPS32
            assert err <= BOUND_EPS, f"backward weight [{label}]: {err:.1f} eps x sum|x dy|"
    snapshot.check()


@pytest.mark.parametrize("R", [3, 5])
def test_backward_weight_gradient_check(R):
    rng = np.random.default_rng(7)
    x, w, kw = make((2, 32, 9, 9, 32, R, R // 2, 1), np.float64, rng)
    with using_conv_algorithm("winograd"):
        directional_gradcheck(
            lambda w_: ck.conv2d(x, w_, **kw),
            lambda v, w_: ck.conv2d_backward_weight(x, v, w_.shape, **kw),
            w,
            rng,
            what="conv2d weight gradient (Winograd)",
        )


def test_auto_chooses_winograd_for_wide_3x3_layers_only():
    rng = np.random.default_rng(3)
    results = {}
    shapes = {
        "wide 3x3": (2, 32, 13, 13, 32, 3, 1, 1),
        "wide 5x5": (2, 32, 12, 12, 48, 5, 2, 1),
        "narrow": (2, 8, 13, 13, 8, 3, 1, 1),
    }
    for name, shape in shapes.items():
        x, w, kw = make(shape, np.float32, rng)
        for algorithm in ("auto", "winograd", "gemm"):
            with using_conv_algorithm(algorithm):
                results[name, algorithm] = ck.conv2d(x, w, **kw)
    # Different algorithms round differently, so equal bits show which one ran.
    for wide in ("wide 3x3", "wide 5x5"):
        np.testing.assert_array_equal(results[wide, "auto"], results[wide, "winograd"])
        assert not np.array_equal(results[wide, "gemm"], results[wide, "winograd"])
    assert not np.array_equal(results["narrow", "auto"], results["narrow", "winograd"])


@pytest.mark.parametrize(
    "kw", [{"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}], ids=["stride", "dilation"]
)
def test_forced_winograd_leaves_other_shapes_to_auto(kw):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 32, 13, 13)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    with using_conv_algorithm("auto"):
        expected = ck.conv2d(x, w, **kw)
    with using_conv_algorithm("winograd"):
        np.testing.assert_array_equal(ck.conv2d(x, w, **kw), expected)


@pytest.mark.parametrize("R", [3, 5])
def test_results_do_not_depend_on_thread_count(R):
    rng = np.random.default_rng(5)
    x, w, kw = make((5, 32, 20, 20, 40, R, R // 2, 1), np.float32, rng)
    before = ck.get_num_threads()
    try:
        with using_conv_algorithm("winograd"):
            ck.set_num_threads(1)
            dy = np.ones((5, 40, 20, 20), np.float32)
            one = [ck.conv2d(x, w, **kw), ck.conv2d_backward_weight(x, dy, w.shape, **kw)]
            ck.set_num_threads(2)
            two = [ck.conv2d(x, w, **kw), ck.conv2d_backward_weight(x, dy, w.shape, **kw)]
    finally:
        ck.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_conv_algorithm_setting_round_trips():
    before = ck.get_conv_algorithm()
    try:
        for name in ck.CONV_ALGORITHMS:
            ck.set_conv_algorithm(name)
            assert ck.get_conv_algorithm() == name
    finally:
        ck.set_conv_algorithm(before)


@pytest.mark.parametrize(
    "name, exc", [("fft", ValueError), ("Winograd", ValueError), (3, TypeError), (None, TypeError)]
)
def test_set_conv_algorithm_rejects(name, exc):
    before = ck.get_conv_algorithm()
    with pytest.raises(exc, match=r"^set_conv_algorithm: name "):
        ck.set_conv_algorithm(name)
    assert ck.get_conv_algorithm() == before


@pytest.mark.parametrize("R", [3, 5])
def test_non_finite_input_stays_within_its_tiles(R):
    """A NaN or inf reaches every output whose window holds it (as in the direct sum), and
    beyond those only the outputs of tiles whose 6x6 patch holds it (documented in README)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 32, 13, 13)).astype(np.float32)
    w = rng.standard_normal((32, 32, R, R)).astype(np.float32)
    x[0, 3, 6, 7] = np.inf
    results = {}
    for algorithm in ("gemm", "winograd"):
        with using_conv_algorithm(algorithm):
            results[algorithm] = ~np.isfinite(ck.conv2d(x, w, padding=R // 2))
    assert np.all(results["winograd"] >= results["gemm"])  # a superset
    side = 4 if R == 3 else 2  # outputs per tile side
    rows, cols = np.nonzero(results["winograd"][0, 0])
    # Patches are 6 wide and step by `side`: an input lies in at most ceil(6 / side) per axis.
    most = -(-6 // side)
    assert len(set(rows // side)) <= most and len(set(cols // side)) <= most
