"""relu, lrn and lcn, forward and backward: reference, finite differences, PyTorch."""

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
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convkernels as ck
from convkernels import reference as ref

shapes = st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 12), st.integers(1, 12))
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)


def normal(shape, dtype, seed, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal(shape)).astype(dtype), rng


# --- relu -------------------------------------------------------------------------------------


@given(
    st.lists(st.integers(1, 7), min_size=0, max_size=5),
    dtypes,
    st.sampled_from([0.0, 0.01, 0.2, -0.5]),
    seeds,
)
def test_relu_matches_reference_any_shape(shape, dtype, slope, seed):
    x, rng = normal(shape, dtype, seed)
    x.flat[::3] = 0.0  # x == 0 takes the negative side's gradient
    dy = rng.standard_normal(x.shape).astype(dtype)
    snapshot = unchanged(x, dy)
    for isa, y in each_isa(lambda: ck.relu(x, slope)).items():
        np.testing.assert_array_equal(y, ref.relu(x, slope), err_msg=isa)
    for isa, dx in each_isa(lambda: ck.relu_backward(dy, x, slope)).items():
        np.testing.assert_array_equal(dx, ref.relu_backward(dy, x, slope), err_msg=isa)
    snapshot.check()


def test_relu_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0])
    np.testing.assert_array_equal(ck.relu(x), [np.nan, np.inf, 0, 0, 0, 2, 0])
    np.testing.assert_array_equal(ck.relu(x, 0.5), [np.nan, np.inf, -np.inf, 0, 0, 2, -1])
    dy = np.full_like(x, np.inf)
    np.testing.assert_array_equal(ck.relu_backward(dy, x), [0, np.inf, 0, 0, 0, np.inf, 0])


@settings(max_examples=10)
@given(shapes, st.sampled_from([0.0, 0.1]), seeds)
def test_relu_gradient_matches_finite_differences(shape, slope, seed):
    x, rng = normal(shape, np.float64, seed)
    x = np.where(np.abs(x) < 1e-3, 1.0, x)  # away from the kink
    directional_gradcheck(
        lambda x_: ck.relu(x_, slope),
        lambda dy, x_: ck.relu_backward(dy, x_, slope),
        x,
        rng,
        what="relu",
    )


# --- tanh -------------------------------------------------------------------------------------

tanh_scales = st.sampled_from([(1.0, 1.0), (1.7159, 2.0 / 3.0), (-0.5, 3.0), (2.0, 0.0)])


@given(st.lists(st.integers(1, 9), min_size=0, max_size=4), dtypes, tanh_scales, seeds)
def test_tanh_matches_reference_any_shape(shape, dtype, scales, seed):
    # Sizes around the vector width: full vectors and the padded tail take the same code.
    x, rng = normal(shape, dtype, seed, scale=3.0)
    dy = rng.standard_normal(shape).astype(dtype)
    snapshot = unchanged(x, dy)
    y64 = ref.tanh(x.astype(np.float64), *scales)
    check_each_isa(lambda: ck.tanh(x, *scales), y64, dtype, 4, "tanh")
    y = ck.tanh(x, *scales)
    expected_dx = ref.tanh_backward(dy.astype(np.float64), y.astype(np.float64), *scales)
    check_each_isa(lambda: ck.tanh_backward(dy, y, *scales), expected_dx, dtype, 4, "tanh bwd")
    snapshot.check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_within_3_ulp_of_the_exact_value(dtype):
    # Every range that the implementation treats differently: tiny and subnormal arguments,
    # the polynomial's interval around each multiple of ln 2 / 2, saturation near the clamp.
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [rng.standard_normal(20000) * s for s in (1e-30, 1e-6, 1e-2, 0.3, 1, 4, 12, 30)]
        + [np.linspace(-25, 25, 20001), np.finfo(dtype).smallest_subnormal * np.arange(-5, 6)]
    ).astype(dtype)
    exact = np.tanh(x.astype(np.longdouble))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    for isa, y in each_isa(lambda: ck.tanh(x)).items():
        err = np.abs(y.astype(np.longdouble) - exact) / ulp
        worst = int(np.argmax(err))
        assert err[worst] <= 3, f"{isa}: {float(err[worst]):.2f} ulp at x = {x[worst]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_special_values(dtype):
    big, tiny = np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, big, -big, tiny, -3 * tiny], dtype)
    with np.errstate(all="ignore"):
        expected = np.tanh(x) * dtype(1.5)
    for isa, y in each_isa(lambda: ck.tanh(x, 1.5)).items():
        np.testing.assert_array_equal(y, expected, err_msg=isa)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(expected), err_msg=isa)
    # dx at y = +-amplitude is exactly 0; NaN in y stays NaN
    y = np.array([1.5, -1.5, np.nan, 0.0], dtype)
    dx = ck.tanh_backward(np.ones(4, dtype), y, 1.5, 2.0)
    np.testing.assert_array_equal(dx[:2], [0.0, 0.0])
    assert np.isnan(dx[2]) and dx[3] == dtype(1.5 * 2.0)


@settings(max_examples=15)
@given(shapes, tanh_scales, seeds)
def test_tanh_gradient_matches_finite_differences(shape, scales, seed):
    x, rng = normal(shape, np.float64, seed)
    directional_gradcheck(
        lambda x_: ck.tanh(x_, *scales),
        lambda dy, x_: ck.tanh_backward(dy, ck.tanh(x_, *scales), *scales),
        x,
        rng,
        what="tanh",
    )


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_matches_pytorch(dtype):
    x, rng = normal((4, 6, 28, 28), dtype, 0, scale=2.0)
    dy = rng.standard_normal(x.shape).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = 1.7159 * torch.tanh(tx * (2.0 / 3.0))
    ty.backward(torch.from_numpy(dy))
    y = ck.tanh(x, 1.7159, 2.0 / 3.0)
    assert_close(y, ty.detach().numpy(), dtype, 4, "tanh")
    assert_close(ck.tanh_backward(dy, y, 1.7159, 2.0 / 3.0), tx.grad.numpy(), dtype, 8, "tanh bwd")


# --- lrn --------------------------------------------------------------------------------------

lrn_params = st.tuples(
    st.integers(1, 7),
    st.sampled_from([1e-4, 0.1, 1.0]),
    st.sampled_from([0.5, 0.75, 1.0]),
    st.sampled_from([1.0, 2.0]),
)


@given(shapes, dtypes, lrn_params, seeds)
def test_lrn_matches_reference(shape, dtype, params, seed):
    size, alpha, beta, k = params
    x, rng = normal(shape, dtype, seed, scale=2.0)
    dy = rng.standard_normal(shape).astype(dtype)
    snapshot = unchanged(x, dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    check_each_isa(
        lambda: ck.lrn(x, size, alpha, beta, k),
        ref.lrn(x64, size, alpha, beta, k),
        dtype,
        4 * size,
        "lrn",
    )
    check_each_isa(
        lambda: ck.lrn_backward(dy, x, size, alpha, beta, k),
        ref.lrn_backward(dy64, x64, size, alpha, beta, k),
        dtype,
        8 * size,
        "lrn backward",
    )
    snapshot.check()


@settings(max_examples=15)
@given(shapes, lrn_params, seeds)
def test_lrn_gradient_matches_finite_differences(shape, params, seed):
    x, rng = normal(shape, np.float64, seed, scale=2.0)
    directional_gradcheck(
        lambda x_: ck.lrn(x_, *params),
        lambda dy, x_: ck.lrn_backward(dy, x_, *params),
        x,
        rng,
        what="lrn",
    )


def test_lrn_alexnet_activations():
    x, rng = normal((2, 96, 55, 55), np.float32, 5, scale=10.0)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    args = (5, 1e-4 * 5, 0.75, 2.0)  # the paper's alpha = 1e-4 is PyTorch's alpha / size
    assert_close(ck.lrn(x, *args), ref.lrn(x.astype(np.float64), *args), np.float32, 20, "lrn")
    assert_close(
        ck.lrn_backward(dy, x, *args),
        ref.lrn_backward(dy.astype(np.float64), x.astype(np.float64), *args),
        np.float32,
        40,
        "lrn backward",
    )


@pytest.mark.parametrize("size", [1, 2, 4, 5, 8, 23])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, threads",
    [
        # 17 x 19 = 323 positions, a row of each channel one task (with a scalar tail), or
        # split in two where one sample would leave a thread idle
        ((2, 20, 17, 19), 1),
        ((1, 20, 17, 19), 2),
        # 65 x 67 = 4355 positions: rows over 16 KB, split into 2 tiles (float) or 3 (double),
        # more for windows of 20 channels (backward keeps two rings of window rows)
        ((1, 20, 65, 67), 1),
    ],
)
def test_lrn_across_tiles_and_channel_windows(size, dtype, shape, threads):
    # 20 channels: backward's rings of rows wrap around for size < 20; size 23 is wider than
    # the channels.
    x, rng = normal(shape, dtype, 11, scale=3.0)
    dy = rng.standard_normal(x.shape).astype(dtype)
    before = ck.get_num_threads()
    ck.set_num_threads(threads)
    try:
        for args in [(size, 0.05, 0.75, 1.0), (size, 0.05, 0.6, 1.5)]:
            x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
            check_each_isa(
                lambda args=args: ck.lrn(x, *args), ref.lrn(x64, *args), dtype, 4 * size, "lrn"
            )
            check_each_isa(
                lambda args=args: ck.lrn_backward(dy, x, *args),
                ref.lrn_backward(dy64, x64, *args),
                dtype,
                8 * size,
                f"lrn backward {args}",
            )
    finally:
        ck.set_num_threads(before)


def test_lrn_zero_infinite_and_nan_denominators():
    # float32 with beta = 0.75 takes the reciprocal-square-root estimate only where a whole
    # block of denominators is normal; the others keep IEEE's answers: D = 0 (k = 0, a window
    # of zeros) gives 0 * inf = NaN, D = inf gives 0 for the window's finite x, NaN for inf,
    # and squares below the smallest float give D = 0 and x * inf = inf.
    x, _ = normal((2, 16, 5, 13), np.float32, 7)
    x[0, :, 0, :8] = 0.0
    x[0, 3, 1, 4] = np.inf
    x[1, 7, 3, 9] = np.nan
    x[1, :, 4, 12] = 1e-30
    with np.errstate(all="ignore"):
        expected = ref.lrn(x.astype(np.float64), 5, 1e-4, 0.75, 0.0)
    expected[1, :, 4, 12] = np.inf  # in float64 these squares do not vanish
    for isa, y in each_isa(lambda: ck.lrn(x, 5, 1e-4, 0.75, 0.0)).items():
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected), err_msg=isa)
        np.testing.assert_array_equal(np.isinf(y), np.isinf(expected), err_msg=isa)
        finite = np.isfinite(expected)
        assert_close(y[finite], expected[finite], np.float32, 20, f"lrn, {isa}")


@needs_torch
@given(shapes, dtypes, lrn_params, seeds)
def test_lrn_matches_pytorch(shape, dtype, params, seed):
    size, alpha, beta, k = params
    x, rng = normal(shape, dtype, seed, scale=2.0)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
    assert_close(ck.lrn(x, size, alpha, beta, k), ty.detach().numpy(), dtype, 4 * size, "lrn")
    dy = rng.standard_normal(shape).astype(dtype)
    (dx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    assert_close(
        ck.lrn_backward(dy, x, size, alpha, beta, k), dx.numpy(), dtype, 8 * size, "lrn backward"
    )


# --- lcn --------------------------------------------------------------------------------------

lcn_params = st.tuples(
    st.sampled_from([1, 3, 5, 9]), st.sampled_from([0.8, 2.0]), st.sampled_from([1e-4, 0.5, 3.0])
)


def lcn_reduction(shape, size):
    return 8 * shape[1] * size * size


@given(shapes, dtypes, lcn_params, seeds, st.sampled_from([0.0, 100.0]))
def test_lcn_matches_reference(shape, dtype, params, seed, offset):
    x, rng = normal(shape, dtype, seed, offset=offset)
    dy = rng.standard_normal(shape).astype(dtype)
    snapshot = unchanged(x, dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    check_each_isa(
        lambda: ck.lcn(x, *params),
        ref.lcn(x64, *params),
        dtype,
        lcn_reduction(shape, params[0]),
        "lcn",
    )
    # The backward divides by sigma (>= eps); in float32 its error grows as offset / eps. And
    # dv = dy / d is cancelled down to dx by subtracting its local mean, losing eps32 |dy| / d
    # (d = max(c, sigma, eps)): 1 / eps where a window holds one pixel and v = 0 (1x1 images,
    # found by 1000 examples per test).
    reduction = lcn_reduction(shape, params[0])
    if dtype == np.float32:
        d_min = float(ref._lcn_forward(x64, *params)["d"].min())
        reduction *= (1 + offset) * max(1.0, 1.0 / d_min)
    check_each_isa(
        lambda: ck.lcn_backward(dy, x, *params),
        ref.lcn_backward(dy64, x64, *params),
        dtype,
        reduction,
        "lcn backward",
    )
    snapshot.check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0.0, -12345.678, 1000.0])
def test_lcn_maps_a_constant_image_to_zero(dtype, value):
    x = np.full((2, 3, 7, 9), value, dtype=dtype)
    for isa, y in each_isa(lambda: ck.lcn(x, 5, 1.0)).items():
        np.testing.assert_array_equal(y, np.zeros_like(x), err_msg=isa)


@settings(max_examples=15)
@given(shapes, lcn_params, seeds)
def test_lcn_gradient_matches_finite_differences(shape, params, seed):
    x, rng = normal(shape, np.float64, seed, scale=2.0)
    directional_gradcheck(
        lambda x_: ck.lcn(x_, *params),
        lambda dy, x_: ck.lcn_backward(dy, x_, *params),
        x,
        rng,
        what="lcn",
    )


def torch_lcn(tx, size, sigma, eps):
    """LCN written with PyTorch ops (an independent check of the formula in DESIGN.md)."""
    N, C, H, W = tx.shape
    r = torch.arange(size, dtype=tx.dtype) - size // 2
    g2 = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    g2 = (g2 / g2.sum())[None, None]
    pad = size // 2
    mask = torch.nn.functional.conv2d(torch.ones(1, 1, H, W, dtype=tx.dtype), g2, padding=pad)

    def local_mean(t):  # (N, C, H, W) -> (N, 1, H, W)
        return torch.nn.functional.conv2d(t.mean(1, keepdim=True), g2, padding=pad) / mask

    v = tx - local_mean(tx)
    sd = torch.sqrt(local_mean(v * v))
    c = sd.mean(dim=(1, 2, 3), keepdim=True)
    return v / torch.maximum(torch.maximum(c, sd), torch.tensor(eps, dtype=tx.dtype))


@needs_torch
@given(shapes, lcn_params, seeds)
def test_lcn_matches_pytorch_composition(shape, params, seed):
    # With one channel and a window that sees one pixel, v = 0 and sigma = 0, where torch's sqrt
    # has no subgradient (its backward gives NaN; ours takes 0).
    assume(shape[1] > 1 or (params[0] > 1 and shape[2] * shape[3] > 1))
    x, rng = normal(shape, np.float64, seed, scale=2.0)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch_lcn(tx, *params)
    assert_close(
        ck.lcn(x, *params),
        ty.detach().numpy(),
        np.float64,
        lcn_reduction(shape, params[0]),
        "lcn vs torch",
    )
    dy = rng.standard_normal(shape)
    (dx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    assert_close(
        ck.lcn_backward(dy, x, *params),
        dx.numpy(),
        np.float64,
        lcn_reduction(shape, params[0]),
        "lcn backward vs torch",
    )
