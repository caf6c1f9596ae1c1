"""conv2d with the filters in the vector lanes: forward (conv2d_forward_nhwc.cpp) and
backward-weight (conv2d_backward_weight_nhwc.cpp).

Forcing the direct kernels ("direct") runs them wherever they apply (forward: outputs at least 5
columns wide; backward-weight: filter widths 3, 5, 7, 11, no dilation along w); the shapes below
reach each of their cases: filter counts that fill no vector or leave a partial one, passes of
4, 2 and 1 filter vectors, strides 1, 2, 4 (compiled in) and 3 (not), a last block of output
columns that overlaps the one before, runs of (channel, row) pairs that cross channels and leave
a remainder, padding, dilation, groups, more output rows than one chunk, and too few blocks to
share out (threads then split the rows).
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

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
SHAPES = [
    (3, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),  # LeNet C3
    (2, 3, 12, 12, 32, 5, 5, 1, 2, 1, 1),  # CIFAR c1
    (2, 5, 9, 11, 7, 3, 3, 1, 1, 1, 1),  # fewer filters than lanes
    (2, 4, 10, 9, 20, 3, 3, 2, 1, 1, 1),  # a partial filter vector, stride 2
    (1, 3, 39, 39, 96, 11, 11, 4, 2, 1, 1),  # AlexNet conv1's window, 96 filters
    (2, 6, 13, 12, 24, 7, 7, 1, 3, 1, 2),  # 7x7, groups
    (2, 4, 15, 15, 70, 5, 5, 1, 2, 1, 1),  # passes of 4, 2 and 1 vectors
    (2, 5, 17, 16, 12, 3, 5, (2, 1), (1, 2), (2, 1), 1),  # R != S, dilation along h
    (4, 8, 40, 40, 16, 3, 3, 1, 1, 1, 1),  # more output rows than one chunk
    (1, 1, 6, 6, 1, 3, 3, 1, 0, 1, 1),  # one block: threads split the rows
]
IDS = ["-".join(map(str, s)).replace(" ", "") for s in SHAPES]


def make(shape, dtype, rng):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w_shape = (K, C // groups, R, S)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy_shape = ref.conv2d(x[:1, :, :, :].astype(np.float64), np.zeros(w_shape), **kw).shape
    dy = rng.standard_normal((N,) + dy_shape[1:]).astype(dtype)
    return x, dy, w_shape, kw


# (N, C, H, W, K, R, S, stride, padding, dilation, groups) for the forward.
FORWARD_SHAPES = [
    (3, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),  # LeNet C3: 10 columns, the last block overlaps
    (2, 3, 12, 12, 32, 5, 5, 1, 2, 1, 1),  # CIFAR c1
    (2, 5, 9, 11, 7, 3, 3, 1, 1, 1, 1),  # fewer filters than lanes
    (1, 3, 47, 47, 96, 11, 11, 4, 2, 1, 1),  # AlexNet conv1's window and stride
    (2, 4, 20, 23, 70, 3, 3, 2, 1, 1, 1),  # passes of 4, 2 and 1 vectors, stride 2
    (2, 6, 21, 22, 24, 3, 4, (1, 3), (0, 2), (2, 2), 2),  # stride 3 along w, dilation, groups
    (1, 2, 8, 8, 9, 3, 3, 1, 0, 1, 1),  # exactly one block of 6 columns
    (2, 3, 11, 9, 8, 3, 3, 1, 1, 1, 1),  # 9 columns: blocks of 5, the last overlapping
    (1, 2, 9, 5, 8, 3, 1, 1, 0, 1, 1),  # exactly one block of 5 columns
]
FORWARD_IDS = ["-".join(map(str, s)).replace(" ", "") for s in FORWARD_SHAPES]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", FORWARD_SHAPES, ids=FORWARD_IDS)
def test_forward_matches_reference(shape, dtype):
    rng = np.random.default_rng(4)
    N, C, H, W, K, R, S, stride, padding, dilation, groups = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    snapshot = unchanged(x, w, b)
    expected = ref.conv2d(x.astype(np.float64), w.astype(np.float64), b, **kw)
    run = lambda: ck.conv2d(x, w, b, **kw)  # noqa: E731
    for label, y in each_isa(run, ("direct",)).items():
        assert_close(y, expected, dtype, w[0].size + 1, f"forward [{label}]")
    snapshot.check()


def test_forward_gradient_check_through_backward_input():
    # The forward's adjoint is backward-input: <conv(x), v> = <x, conv_backward_input(v)>.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 12, 13))
    w = rng.standard_normal((24, 4, 3, 3))
    kw = dict(stride=2, padding=1)
    with using_conv_algorithm("direct"):
        directional_gradcheck(
            lambda x_: ck.conv2d(x_, w, **kw),
            lambda v, x_: ck.conv2d_backward_input(v, w, x_.shape, **kw),
            x,
            rng,
            what="conv2d input gradient against the forward (filters in lanes)",
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_backward_weight_matches_reference(shape, dtype):
    rng = np.random.default_rng(0)
    x, dy, w_shape, kw = make(shape, dtype, rng)
    snapshot = unchanged(x, dy)
    expected = ref.conv2d_backward_weight(
        x.astype(np.float64), dy.astype(np.float64), w_shape, **kw
    )
    reduction = dy.shape[0] * dy.shape[2] * dy.shape[3]
    run = lambda: ck.conv2d_backward_weight(x, dy, w_shape, **kw)  # noqa: E731
    for label, dw in each_isa(run, ("direct",)).items():
        assert_close(dw, expected, dtype, reduction, f"backward weight [{label}]")
    snapshot.check()


def test_auto_uses_them_where_filters_fill_a_vector():
    # Different kernels sum in different orders, so equal bits show which one ran. The forward
    # takes the layers that the direct kernel (positions in lanes, stride 1) leaves to the GEMM,
    # and those where that kernel wastes much more: LeNet C3's 10 of 14 columns, not CIFAR c1's
    # 32 of 36.
    rng = np.random.default_rng(1)
    cases = [  # (shape, forward in lanes, backward-weight in lanes)
        ((2, 6, 14, 14, 64, 5, 5, 2, 0, 1, 1), True, True),
        ((2, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1), True, True),
        ((2, 3, 32, 32, 32, 5, 5, 1, 2, 1, 1), False, True),
        ((2, 6, 14, 14, 3, 5, 5, 1, 0, 1, 1), False, False),
    ]
    for shape, forward_nhwc, backward_nhwc in cases:
        x, dy, w_shape, kw = make(shape, np.float32, rng)
        w = rng.standard_normal(w_shape).astype(np.float32)
        results = {}
        for algorithm in ("auto", "direct"):
            with using_conv_algorithm(algorithm):
                results[algorithm] = (
                    ck.conv2d(x, w, **kw),
                    ck.conv2d_backward_weight(x, dy, w_shape, **kw),
                )
        (y_auto, dw_auto), (y_forced, dw_forced) = results["auto"], results["direct"]
        assert np.array_equal(y_auto, y_forced) == forward_nhwc, shape
        assert np.array_equal(dw_auto, dw_forced) == backward_nhwc, shape


def test_backward_weight_gradient_check():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 11, 10))
    w = rng.standard_normal((20, 5, 5, 5))
    kw = dict(stride=(1, 2), padding=2)
    with using_conv_algorithm("direct"):
        directional_gradcheck(
            lambda w_: ck.conv2d(x, w_, **kw),
            lambda v, w_: ck.conv2d_backward_weight(x, v, w_.shape, **kw),
            w,
            rng,
            what="conv2d weight gradient (filters in lanes)",
        )


def test_backward_weight_does_not_depend_on_thread_count():
    # Enough blocks that threads split them: each weight is summed by one thread, in one order.
    rng = np.random.default_rng(3)
    x, dy, w_shape, kw = make((3, 16, 20, 20, 32, 5, 5, 1, 2, 1, 1), np.float32, rng)
    before = ck.get_num_threads()
    try:
        with using_conv_algorithm("direct"):
            ck.set_num_threads(1)
            one = ck.conv2d_backward_weight(x, dy, w_shape, **kw)
            ck.set_num_threads(2)
            two = ck.conv2d_backward_weight(x, dy, w_shape, **kw)
    finally:
        ck.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
