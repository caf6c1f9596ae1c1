"""max_pool2d and avg_pool2d, forward and backward, against the reference and PyTorch."""

import numpy as np
import pytest
from helpers import (
    assert_close,
    check_each_isa,
    directional_gradcheck,
    each_isa,
    needs_torch,
    torch,
    unchanged,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import convkernels as ck
from convkernels import reference as ref


@st.composite
def pool_configs(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return dict(
        N=draw(st.integers(1, 3)),
        C=draw(st.integers(1, 4)),
        H=max(1, kernel[0] - 2 * padding[0]) + draw(st.integers(0, 9)),
        W=max(1, kernel[1] - 2 * padding[1]) + draw(st.integers(0, 9)),
        kernel_size=kernel if kernel[0] != kernel[1] else kernel[0],
        stride=draw(st.sampled_from([None, stride, stride[0]])),
        padding=padding,
        ceil_mode=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def pool_kwargs(cfg):
    return {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}


def distinct_input(cfg, dtype):
    """Distinct values (a permutation): no ties, gaps far wider than a finite-difference step."""
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
    x = rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2
    return x.astype(dtype), rng


@given(pool_configs(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_max_pool2d_matches_reference(cfg, dtype, with_ties):
    x, rng = distinct_input(cfg, dtype)
    if with_ties:  # few distinct values: the first maximum must win, as in the reference
        x = np.floor(x / max(1, x.size // 4)).astype(dtype)
    snapshot = unchanged(x)
    kw = pool_kwargs(cfg)
    y_ref, idx_ref = ref.max_pool2d(x, **kw)
    for isa, (y, idx) in each_isa(lambda: ck.max_pool2d(x, **kw)).items():
        np.testing.assert_array_equal(y, y_ref, err_msg=isa)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=isa)
        assert idx.dtype == np.int64
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    # Overlapping windows sum several dy into one input: allow rounding of a short sum.
    check_each_isa(
        lambda: ck.max_pool2d_backward(dy, idx_ref, x.shape),
        ref.max_pool2d_backward(dy.astype(np.float64), idx_ref, x.shape),
        dtype,
        16,
        "max_pool2d backward",
    )
    snapshot.check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kernel, stride, padding",
    [(3, 1, 1), (3, 2, 0), (3, 2, 1), ((2, 3), 2, (1, 1)), ((4, 3), 2, (2, 1))],
)
def test_max_pool2d_long_rows(dtype, kernel, stride, padding):
    """Rows of 24+ output columns take the vectorised stride-1/2 paths (3-wide windows with
    stride 2: a vector of outputs over the whole window, the last vector overlapping), padded
    edge columns window by window: ties, NaN, every ISA."""
    rng = np.random.default_rng(4)
    x = np.floor(rng.standard_normal((2, 3, 7, 61)) * 2).astype(dtype)  # many ties
    x[0, 1, 3, 17] = np.nan
    x[1, 2, 5, 40:43] = np.nan
    y_ref, idx_ref = ref.max_pool2d(x, kernel, stride, padding)
    assert y_ref.shape[3] >= 24
    for isa, (y, idx) in each_isa(lambda: ck.max_pool2d(x, kernel, stride, padding)).items():
        np.testing.assert_array_equal(y, y_ref, err_msg=isa)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H, W", [(28, 28), (7, 9), (5, 66), (2, 4), (3, 3), (8, 34)])
def test_avg_pool2d_2x2_vector_path_keeps_the_general_order(dtype, H, W):
    """2x2/2 windows without padding take a vector path (widest vector that fits a row of
    outputs, the last one overlapping); it must give the bits of the general loop's order:
    ((((0 + x00) + x01) + x10) + x11) / 4, and dx = 0 + dy / 4 (no -0), zeros past the windows."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, H, W)).astype(dtype)
    x[0, 0, 0, :2] = -0.0
    P, Q = H // 2, W // 2
    a, b = x[:, :, 0 : 2 * P : 2, 0 : 2 * Q : 2], x[:, :, 0 : 2 * P : 2, 1 : 2 * Q : 2]
    c, d = x[:, :, 1 : 2 * P : 2, 0 : 2 * Q : 2], x[:, :, 1 : 2 * P : 2, 1 : 2 * Q : 2]
    zero = dtype(0)
    expected = ((((zero + a) + b) + c) + d) / dtype(4)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    dy[0, 0, 0, 0] = -0.0
    dx_expected = np.zeros_like(x)
    for r in (0, 1):
        for s in (0, 1):
            dx_expected[:, :, r : 2 * P : 2, s : 2 * Q : 2] = zero + dy / dtype(4)
    for isa, y in each_isa(lambda: ck.avg_pool2d(x, 2)).items():
        np.testing.assert_array_equal(y, expected, err_msg=isa)
    for isa, dx in each_isa(lambda: ck.avg_pool2d_backward(dy, x.shape, 2)).items():
        np.testing.assert_array_equal(dx, dx_expected, err_msg=isa)
        assert not np.any(np.signbit(dx[dx == 0])), isa  # 0 + (-0) is +0, as the general loop


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [2, 3, (2, 3), (3, 1)])
@pytest.mark.parametrize("H, W", [(28, 28), (7, 9), (5, 66), (3, 4), (3, 3), (8, 34), (55, 55)])
def test_max_pool2d_stride_2_vector_path(dtype, kernel, H, W):
    """Stride-2 windows without padding take a vector path: ties (first wins), NaN (first NaN
    wins), -inf, the last vector of a row overlapping the one before, every ISA."""
    rng = np.random.default_rng(6)
    x = np.floor(rng.standard_normal((2, 3, H, W)) * 2).astype(dtype)  # many ties
    x[0, 0, 0, 1] = np.nan
    x[0, 1, 1, :] = np.nan
    x[1, 2, :2, :2] = -np.inf
    y_ref, idx_ref = ref.max_pool2d(x, kernel, 2)
    for isa, (y, idx) in each_isa(lambda: ck.max_pool2d(x, kernel, 2)).items():
        np.testing.assert_array_equal(y, y_ref, err_msg=isa)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=isa)


def test_max_pool2d_nan_and_infinities():
    x = np.array([[[[1.0, np.nan, 3.0], [np.inf, -np.inf, np.nan], [-np.inf, -np.inf, 2.0]]]])
    for isa, (y, idx) in each_isa(lambda: ck.max_pool2d(x, 2, 1)).items():
        # A NaN wins its window (the first NaN); an all -inf window still picks an input.
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1, isa
        assert np.isnan(y[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 1, isa
        assert y[0, 0, 1, 0] == np.inf and idx[0, 0, 1, 0] == 3, isa
        assert np.isnan(y[0, 0, 1, 1]) and idx[0, 0, 1, 1] == 5, isa
    y, idx = ck.max_pool2d(np.full((1, 1, 2, 2), -np.inf), 2)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0


@given(pool_configs(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_avg_pool2d_matches_reference(cfg, dtype, count_include_pad):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    snapshot = unchanged(x)
    kw = dict(pool_kwargs(cfg), count_include_pad=count_include_pad)
    window = np.prod(np.broadcast_to(cfg["kernel_size"], 2))
    y_ref = ref.avg_pool2d(x.astype(np.float64), **kw)
    check_each_isa(lambda: ck.avg_pool2d(x, **kw), y_ref, dtype, window, "avg_pool2d")
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    check_each_isa(
        lambda: ck.avg_pool2d_backward(dy, x.shape, **kw),
        ref.avg_pool2d_backward(dy.astype(np.float64), x.shape, **kw),
        dtype,
        16,
        "avg_pool2d backward",
    )
    snapshot.check()


@settings(max_examples=20)
@given(pool_configs(), st.booleans())
def test_pooling_gradients_match_finite_differences(cfg, count_include_pad):
    x, rng = distinct_input(cfg, np.float64)
    kw = pool_kwargs(cfg)
    _, idx = ck.max_pool2d(x, **kw)
    directional_gradcheck(
        lambda x_: ck.max_pool2d(x_, **kw)[0],
        lambda dy, x_: ck.max_pool2d_backward(dy, idx, x_.shape),
        x,
        rng,
        h=1e-3,
        what="max_pool2d",
    )
    kw["count_include_pad"] = count_include_pad
    directional_gradcheck(
        lambda x_: ck.avg_pool2d(x_, **kw),
        lambda dy, x_: ck.avg_pool2d_backward(dy, x_.shape, **kw),
        x,
        rng,
        what="avg_pool2d",
    )


@pytest.mark.parametrize(
    "shape, kernel, stride, padding",
    [
        ((2, 96, 55, 55), 3, 2, 0),  # AlexNet pool1, overlapping 3x3/2
        ((2, 256, 27, 27), 3, 2, 0),  # AlexNet pool2
        ((4, 6, 28, 28), 2, 2, 0),  # LeNet-5 S2
        ((4, 32, 32, 32), 3, 2, 1),  # cuda-convnet CIFAR pool1
    ],
)
def test_real_pooling_shapes(shape, kernel, stride, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    for ceil_mode in (False, True):
        y_ref, idx_ref = ref.max_pool2d(x, kernel, stride, padding, ceil_mode)
        y, idx = ck.max_pool2d(x, kernel, stride, padding, ceil_mode)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        assert_close(
            ck.avg_pool2d(x, kernel, stride, padding, ceil_mode),
            ref.avg_pool2d(x.astype(np.float64), kernel, stride, padding, ceil_mode),
            np.float32,
            kernel * kernel,
            "avg_pool2d",
        )


@needs_torch
@given(pool_configs(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_pooling_matches_pytorch(cfg, dtype, count_include_pad):
    F = torch.nn.functional
    x, rng = distinct_input(cfg, dtype)
    kw = pool_kwargs(cfg)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tidx = F.max_pool2d(tx, **kw, return_indices=True)
    y, idx = ck.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = rng.standard_normal(y.shape).astype(dtype)
    (dx_torch,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    assert_close(
        ck.max_pool2d_backward(dy, idx, x.shape),
        dx_torch.numpy(),
        dtype,
        16,
        "max_pool2d backward vs torch",
    )

    kw["count_include_pad"] = count_include_pad
    ty = F.avg_pool2d(tx, **kw)
    window = np.prod(np.broadcast_to(cfg["kernel_size"], 2))
    assert_close(ck.avg_pool2d(x, **kw), ty.detach().numpy(), dtype, window, "avg vs torch")
    (dx_torch,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    assert_close(
        ck.avg_pool2d_backward(dy, x.shape, **kw),
        dx_torch.numpy(),
        dtype,
        16,
        "avg backward vs torch",
    )


def test_max_pool2d_backward_reports_the_first_bad_index_of_many():
    # The indices are checked in blocks of 4096 on all threads: a bad index in a later block,
    # and others after it, must give the first one, and nothing may be written to out.
    x = np.random.default_rng(5).standard_normal((3, 8, 64, 64))
    y, idx = ck.max_pool2d(x, 2, 2)
    dy = np.ones_like(y)
    out = np.full(x.shape, 7.0)
    threads = ck.get_num_threads()

    def first_error(bad):
        with pytest.raises(ValueError, match="outside the input plane") as error:
            ck.max_pool2d_backward(dy, bad, x.shape, out=out)
        assert np.all(out == 7.0)
        return str(error.value).split("idx holds ")[1].split(",")[0]

    try:
        for n in (1, 2):
            ck.set_num_threads(n)
            for first, value in ((9000, -3), (9000, 4096), (4095, 2**62), (4096, -(2**63))):
                bad = idx.copy()
                bad.flat[first] = value
                bad.flat[first + 1], bad.flat[20000] = 4096, -1
                labels = each_isa(lambda: first_error(bad))  # noqa: B023
                assert set(labels.values()) == {str(value)}, (n, first, labels)
    finally:
        ck.set_num_threads(threads)
    np.testing.assert_array_equal(
        ck.max_pool2d_backward(dy, idx, x.shape), ref.max_pool2d_backward(dy, idx, x.shape)
    )
