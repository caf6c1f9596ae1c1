"""JAX interop: JAX CPU arrays into the kernels, results back into JAX (README, "Use from JAX").

In: a JAX CPU array is read in place through DLPack (its buffer is C-contiguous and 64-byte
aligned); the NumPy view is read-only, so a JAX array is never an out=.
Out: results are NumPy arrays; jnp.from_dlpack takes one in place only when its buffer is 64-byte
aligned (XLA's rule), and copies it otherwise. NumPy guarantees only 16-byte alignment, so a new
result may be copied; a 64-byte aligned out= buffer makes the way back zero-copy.
Values: conv2d, pooling, ReLU and LRN against jax.lax / jax.numpy (backward against jax.vjp);
every op gives the same result for JAX inputs as for NumPy ones.
float64 needs jax_enable_x64, which the `x64` fixture turns on for one test and restores.
"""

import gc
import os
import pathlib
import re

import numpy as np
import pytest
from helpers import assert_close

if os.environ.get("CONVKERNELS_REQUIRE_JAX") == "1":
    import jax  # CI: a missing JAX fails the suite instead of skipping these tests
else:
    jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import convkernels as ck  # noqa: E402
from convkernels import _C  # noqa: E402
from convkernels._args import as_array  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
XLA_ALIGNMENT = 64  # bytes; jnp.from_dlpack copies a CPU buffer that is not aligned to this


@pytest.fixture
def x64():
    """jax_enable_x64 on for one test (float64 and int64 JAX arrays), then as it was."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    if request.param == "float64":
        request.getfixturevalue("x64")
    return np.dtype(request.param)


def jrandn(rng, shape, dtype):
    """A JAX CPU array of standard normals."""
    a = jnp.asarray(rng.standard_normal(shape).astype(dtype))
    assert a.dtype == dtype and a.devices() == {jax.devices("cpu")[0]}
    return a


def jdistinct(rng, shape, dtype):
    """Values far apart (no ties, so max pooling's argmax and gradient are unique)."""
    n = int(np.prod(shape))
    return jnp.asarray(((rng.permutation(n) - n / 2) / n).astype(dtype).reshape(shape))


def empty_at(shape, dtype, alignment, misaligned_by=0):
    """An empty NumPy array whose data starts `misaligned_by` bytes past an `alignment` boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 2 * alignment, np.uint8)
    start = -raw.ctypes.data % alignment + misaligned_by
    a = raw[start : start + nbytes].view(dtype).reshape(shape)
    assert a.ctypes.data % alignment == misaligned_by
    return a


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def record(monkeypatch, name):
    """Wraps convkernels._C.<name>: records the arrays the op hands to the compiled module."""
    seen = {}
    real = getattr(_C, name)

    def wrapper(*args):
        seen["args"] = args
        return real(*args)

    monkeypatch.setattr(_C, name, wrapper)
    return seen


# ---------------------------------------------------------------------------------------------
# References in jax.lax / jax.numpy


def conv2d_ref(x, w, b, stride, padding, dilation, groups):
    ph, pw = pair(padding)
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=pair(stride),
        padding=[(ph, ph), (pw, pw)],
        rhs_dilation=pair(dilation),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=groups,
        precision=lax.Precision.HIGHEST,
    )
    return y if b is None else y + b[None, :, None, None]


def pool_windows(size, k, s, p, ceil_mode):
    """Output size (README, "Conventions") and each window's [start, end) in input coordinates."""
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # PyTorch's rule: no window starting past it
        out -= 1
    start = np.arange(out) * s - p
    return out, start, start + k


def reduce_pool(x, init, computation, kernel_size, stride, padding, ceil_mode):
    """lax.reduce_window over H and W, with the trailing padding ceil_mode needs."""
    k, p = pair(kernel_size), pair(padding)
    s = k if stride is None else pair(stride)
    dims = [pool_windows(x.shape[2 + i], k[i], s[i], p[i], ceil_mode) for i in range(2)]
    high = [max(int(ends[-1]) - x.shape[2 + i], 0) for i, (_, _, ends) in enumerate(dims)]
    y = lax.reduce_window(
        x,
        np.asarray(init, x.dtype),  # a NumPy constant: under jit, a jnp one is not differentiable
        computation,
        (1, 1) + k,
        (1, 1) + s,
        [(0, 0), (0, 0), (p[0], high[0]), (p[1], high[1])],
    )
    return y[:, :, : dims[0][0], : dims[1][0]], dims


def max_pool_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    return reduce_pool(x, -jnp.inf, lax.max, kernel_size, stride, padding, ceil_mode)[0]


def avg_pool_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    total, dims = reduce_pool(x, 0, lax.add, kernel_size, stride, padding, ceil_mode)
    counts = []
    for i, (_, start, end) in enumerate(dims):
        size, p = x.shape[2 + i], pair(padding)[i]
        if count_include_pad:  # the window clipped to the padded input
            counts.append(np.minimum(end, size + p) - np.maximum(start, -p))
        else:  # the taps inside the input
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    return total / jnp.asarray(np.outer(*counts), x.dtype)


def relu_ref(x, negative_slope=0.0):
    return jnp.where(x > 0, x, negative_slope * x)


def lrn_ref(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """b_c = a_c / (k + alpha/n sum_{j=c-n//2}^{c+(n-1)//2} a_j^2)^beta, as torch's LRN."""
    window = [(0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)]
    squares = lax.reduce_window(x * x, np.asarray(0, x.dtype), lax.add, (1, size, 1, 1),
                                (1, 1, 1, 1), window)  # fmt: skip
    return x / (k + alpha / size * squares) ** beta


def jitted(f, *args):
    """f(*args) under jax.jit: one XLA compilation, instead of one per primitive run eagerly."""
    return jax.jit(f)(*args)


def vjp(f, dy, *primals):
    """The gradients of <dy, f(primals)> with respect to every primal, by jax.vjp (jitted)."""
    return jitted(lambda d, *p: jax.vjp(f, *p)[1](d), dy, *primals)


# ---------------------------------------------------------------------------------------------
# Into the kernels: JAX arrays are read in place


def test_jax_arrays_are_read_in_place(dtype, monkeypatch):
    rng = np.random.default_rng(0)
    x, w, b = (
        jrandn(rng, (2, 3, 8, 8), dtype),
        jrandn(rng, (4, 3, 3, 3), dtype),
        jrandn(rng, (4,), dtype),
    )
    for a in (x, w, b):
        view = as_array(a, "op", "x")
        assert view.ctypes.data == a.unsafe_buffer_pointer()  # the JAX buffer itself
        assert view.dtype == dtype and view.shape == a.shape and view.flags.c_contiguous
        assert view.ctypes.data % XLA_ALIGNMENT == 0
        assert not view.flags.writeable  # JAX arrays are immutable, and the view says so
    before = [np.array(a) for a in (x, w, b)]
    seen = record(monkeypatch, "conv2d")
    y = ck.conv2d(x, w, b, padding=1)
    handed = [a.ctypes.data for a in seen["args"][:3]]
    assert handed == [a.unsafe_buffer_pointer() for a in (x, w, b)]
    seen = record(monkeypatch, "max_pool2d")
    ck.max_pool2d(x, 2)
    assert seen["args"][0].ctypes.data == x.unsafe_buffer_pointer()
    assert isinstance(y, np.ndarray)
    for a, copy in zip((x, w, b), before):
        np.testing.assert_array_equal(np.asarray(a), copy, err_msg="a JAX input was modified")


def test_the_numpy_view_keeps_the_jax_buffer_alive():
    x = jnp.arange(2 * 3 * 4 * 4, dtype=jnp.float32).reshape(2, 3, 4, 4)
    view = as_array(x, "op", "x")
    del x
    gc.collect()
    np.testing.assert_array_equal(
        ck.relu(view), np.arange(96, dtype=np.float32).reshape(2, 3, 4, 4)
    )


def test_results_of_jitted_functions_are_read_when_ready():
    """JAX dispatches asynchronously; DLPack export waits for the buffer to be computed."""
    f = jax.jit(lambda a: jnp.tanh(a @ a.T).reshape(10, 25, 25, 40) * 2.0)
    a = jnp.asarray(np.random.default_rng(1).standard_normal((500, 400)).astype(np.float32))
    y = f(a)  # possibly still running
    np.testing.assert_array_equal(ck.relu(y), np.maximum(np.asarray(y), 0))


def _every_op(arrays):
    """Every op, called on `arrays` (all NumPy or all JAX): {op: result}."""
    x, w, b, dy, dp, idx = (arrays[k] for k in ("x", "w", "b", "dy", "dp", "idx"))
    conv = dict(stride=2, padding=1, groups=2)
    pool = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    return {
        "conv2d": ck.conv2d(x, w, b, **conv),
        "conv2d_backward_input": ck.conv2d_backward_input(dy, w, x.shape, **conv),
        "conv2d_backward_weight": ck.conv2d_backward_weight(x, dy, w.shape, **conv),
        "conv2d_backward_bias": ck.conv2d_backward_bias(dy),
        "max_pool2d": ck.max_pool2d(x, **pool),
        "max_pool2d_backward": ck.max_pool2d_backward(dp, idx, x.shape),
        "avg_pool2d": ck.avg_pool2d(x, **pool),
        "avg_pool2d_backward": ck.avg_pool2d_backward(dp, x.shape, **pool),
        "relu": ck.relu(x, 0.1),
        "relu_backward": ck.relu_backward(x, x, 0.1),
        "lrn": ck.lrn(x, 3, 1e-2, 0.75, 2.0),
        "lrn_backward": ck.lrn_backward(x, x, 3, 1e-2, 0.75, 2.0),
        "lcn": ck.lcn(x, 3, 1.0),
        "lcn_backward": ck.lcn_backward(x, x, 3, 1.0),
        "gemm": ck.gemm(w.reshape(6, 18), x.reshape(2 * 4 * 7, 7)[:18], alpha=2.0),
    }


def test_every_op_gives_the_same_result_for_jax_and_numpy_inputs(x64):
    rng = np.random.default_rng(2)
    arrays = {
        "x": rng.standard_normal((2, 4, 7, 7)),
        "w": rng.standard_normal((6, 2, 3, 3)),
        "b": rng.standard_normal(6),
        "dy": rng.standard_normal((2, 6, 4, 4)),
        "dp": rng.standard_normal((2, 4, 4, 4)),
    }
    arrays["idx"] = ck.max_pool2d(arrays["x"], 3, stride=2, padding=1, ceil_mode=True)[1]
    as_jax = {k: jnp.asarray(v) for k, v in arrays.items()}
    assert as_jax["idx"].dtype == jnp.int64  # with x64; see the next test without it
    expected, actual = _every_op(arrays), _every_op(as_jax)
    for op, result in actual.items():
        for a, e in zip(*(r if isinstance(r, tuple) else (r,) for r in (result, expected[op]))):
            np.testing.assert_array_equal(a, e, err_msg=op)


def test_without_x64_jax_has_no_int64_so_indices_stay_numpy():
    assert not jax.config.jax_enable_x64
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32))
    y, idx = ck.max_pool2d(x, 2)
    assert jnp.from_dlpack(idx).dtype == jnp.int32  # JAX converts (a copy)
    with pytest.raises(TypeError, match="idx must have dtype int64"):
        ck.max_pool2d_backward(y, jnp.asarray(idx), x.shape)
    assert ck.max_pool2d_backward(jnp.asarray(y), idx, x.shape).shape == x.shape


def test_unsupported_jax_arrays_are_refused_clearly():
    x = jnp.ones((1, 1, 4, 4), jnp.float32)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        ck.relu(x.astype(jnp.float16))
    with pytest.raises(TypeError, match="x could not be read through __dlpack__"):
        ck.relu(x.astype(jnp.bfloat16))  # NumPy has no bfloat16
    with pytest.raises(TypeError, match="x could not be read through __dlpack__"):
        jax.jit(ck.relu)(x)  # a tracer has no buffer: call the ops outside jax.jit
    with pytest.raises(ValueError, match="out is read-only"):
        ck.relu(np.ones((1, 1, 4, 4), np.float32), out=jnp.zeros((1, 1, 4, 4), jnp.float32))


# ---------------------------------------------------------------------------------------------
# Back into JAX: DLPack, in place when 64-byte aligned


@pytest.mark.parametrize("importer", ["jnp.from_dlpack", "jax.dlpack.from_dlpack"])
def test_aligned_results_go_back_to_jax_without_a_copy(dtype, importer):
    from_dlpack = jnp.from_dlpack if importer == "jnp.from_dlpack" else jax.dlpack.from_dlpack
    rng = np.random.default_rng(4)
    x, w = jrandn(rng, (2, 3, 8, 8), dtype), jrandn(rng, (4, 3, 3, 3), dtype)
    out = empty_at((2, 4, 8, 8), dtype, XLA_ALIGNMENT)
    y = ck.conv2d(x, w, padding=1, out=out)
    y_jax = from_dlpack(y, copy=False)  # copy=False: JAX raises rather than copy
    assert y_jax.unsafe_buffer_pointer() == out.ctypes.data
    assert y_jax.dtype == dtype and y_jax.shape == out.shape
    assert_close(y_jax, conv2d_ref(x, w, None, 1, 1, 1, 1), dtype, 27, "conv2d into JAX")
    # The JAX array and the buffer are one memory: a later op into the same out= changes it.
    ck.relu(out, out=out)
    np.testing.assert_array_equal(np.asarray(y_jax), np.maximum(np.asarray(y), 0))
    # Pooling's pair: values and, with x64 (int64), the indices as well.
    p = empty_at((2, 3, 4, 4), dtype, XLA_ALIGNMENT)
    idx = empty_at((2, 3, 4, 4), np.int64, XLA_ALIGNMENT)
    ck.max_pool2d(x, 2, out=(p, idx))
    assert from_dlpack(p, copy=False).unsafe_buffer_pointer() == p.ctypes.data
    if jax.config.jax_enable_x64:
        assert from_dlpack(idx, copy=False).unsafe_buffer_pointer() == idx.ctypes.data


def test_the_jax_array_keeps_the_result_alive():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32))
    out = empty_at((2, 3, 8, 8), np.float32, XLA_ALIGNMENT)
    y_jax = jnp.from_dlpack(ck.relu(x, out=out), copy=False)
    address = out.ctypes.data
    del out
    gc.collect()
    assert y_jax.unsafe_buffer_pointer() == address
    np.testing.assert_array_equal(np.asarray(y_jax), np.maximum(np.asarray(x), 0))


@pytest.mark.parametrize("misaligned_by", [16, 32])
def test_unaligned_results_are_copied_by_jax(dtype, misaligned_by):
    """XLA requires 64-byte aligned buffers; JAX copies others (or refuses, with copy=False)."""
    x = jrandn(np.random.default_rng(6), (2, 3, 8, 8), dtype)
    out = empty_at(x.shape, dtype, XLA_ALIGNMENT, misaligned_by)
    y = ck.relu(x, out=out)
    y_jax = jnp.from_dlpack(y)
    assert y_jax.unsafe_buffer_pointer() != out.ctypes.data  # a copy ...
    np.testing.assert_array_equal(np.asarray(y_jax), y)  # ... of the right values
    with pytest.raises(ValueError, match="aligned to 64 bytes"):
        jnp.from_dlpack(y, copy=False)


def test_new_result_arrays_go_back_in_place_exactly_when_aligned():
    """Results without out= come from NumPy's allocator (16-byte aligned, sometimes 64)."""
    x = jrandn(np.random.default_rng(7), (1, 1, 6, 6), np.float32)
    for _ in range(8):
        y = ck.relu(x)
        in_place = jnp.from_dlpack(y).unsafe_buffer_pointer() == y.ctypes.data
        assert in_place == (y.ctypes.data % XLA_ALIGNMENT == 0)


# ---------------------------------------------------------------------------------------------
# Values: the kernels against jax.lax / jax.numpy, forward and backward (jax.vjp)

CONV_CASES = [
    # x shape, w shape, bias, stride, padding, dilation, groups
    ((2, 3, 9, 9), (4, 3, 3, 3), False, 1, 0, 1, 1),
    ((2, 4, 11, 10), (6, 2, 3, 3), True, 2, 1, 1, 2),
    ((1, 3, 12, 13), (5, 3, 3, 2), True, (2, 1), (2, 1), (2, 3), 1),
    ((2, 6, 8, 8), (6, 1, 5, 5), False, 1, 2, 1, 6),  # depthwise
    ((1, 8, 13, 13), (4, 4, 3, 3), True, 3, (0, 2), 2, 2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}*{c[1]}")
def test_conv2d_matches_lax_conv_general_dilated(dtype, case):
    x_shape, w_shape, bias, stride, padding, dilation, groups = case
    rng = np.random.default_rng(8)
    x, w = jrandn(rng, x_shape, dtype), jrandn(rng, w_shape, dtype)
    b = jrandn(rng, w_shape[:1], dtype) if bias else None
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = jitted(lambda *a: conv2d_ref(*a, **conv), x, w, b)
    y = ck.conv2d(x, w, b, **conv)
    assert_close(y, expected, dtype, int(np.prod(w_shape[1:])), "conv2d")
    dy = jrandn(rng, y.shape, dtype)
    dx_ref, dw_ref = vjp(lambda x_, w_: conv2d_ref(x_, w_, None, **conv), dy, x, w)
    n = y.shape[0] * y.shape[2] * y.shape[3]
    assert_close(ck.conv2d_backward_input(dy, w, x.shape, **conv), dx_ref, dtype,
                 w_shape[0] * w_shape[2] * w_shape[3], "conv2d_backward_input")  # fmt: skip
    assert_close(ck.conv2d_backward_weight(x, dy, w.shape, **conv), dw_ref, dtype, n,
                 "conv2d_backward_weight")  # fmt: skip
    assert_close(ck.conv2d_backward_bias(dy), jnp.sum(dy, axis=(0, 2, 3)), dtype, n, "bias")


POOL_CASES = [
    # shape, kernel_size, stride, padding, ceil_mode
    ((2, 3, 9, 9), 3, 2, 1, False),
    ((2, 3, 10, 9), 3, 2, 1, True),
    ((1, 2, 9, 12), (2, 3), (2, 2), (1, 0), True),  # H: last window dropped; W: added
    ((1, 2, 9, 9), 2, 3, 0, False),  # windows that do not reach the last row and column
    ((1, 2, 7, 7), 2, None, 0, False),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-{c[4]}")
def test_max_pool2d_matches_lax_reduce_window(dtype, case):
    shape, kernel_size, stride, padding, ceil_mode = case
    x = jdistinct(np.random.default_rng(9), shape, dtype)
    pool = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    expected = jitted(lambda a: max_pool_ref(a, kernel_size, **pool), x)
    y, idx = ck.max_pool2d(x, kernel_size, **pool)
    np.testing.assert_array_equal(y, expected)
    flat = np.asarray(x).reshape(shape[0], shape[1], -1)
    picked = np.take_along_axis(flat, idx.reshape(shape[0], shape[1], -1), axis=2)
    np.testing.assert_array_equal(picked.reshape(y.shape), y)  # idx points at the maximum
    dy = jrandn(np.random.default_rng(10), y.shape, dtype)
    (dx_ref,) = vjp(lambda a: max_pool_ref(a, kernel_size, **pool), dy, x)
    np.testing.assert_array_equal(ck.max_pool2d_backward(dy, idx, shape), dx_ref)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-{c[4]}")
def test_avg_pool2d_matches_lax_reduce_window(dtype, case, count_include_pad):
    shape, kernel_size, stride, padding, ceil_mode = case
    rng = np.random.default_rng(11)
    x = jrandn(rng, shape, dtype)
    pool = dict(stride=stride, padding=padding, ceil_mode=ceil_mode,
                count_include_pad=count_include_pad)  # fmt: skip
    taps = int(np.prod(pair(kernel_size)))
    expected = jitted(lambda a: avg_pool_ref(a, kernel_size, **pool), x)
    y = ck.avg_pool2d(x, kernel_size, **pool)
    assert_close(y, expected, dtype, taps, "avg_pool2d")
    dy = jrandn(rng, y.shape, dtype)
    (dx_ref,) = vjp(lambda a: avg_pool_ref(a, kernel_size, **pool), dy, x)
    assert_close(ck.avg_pool2d_backward(dy, shape, kernel_size, **pool), dx_ref, dtype, taps,
                 "avg_pool2d_backward")  # fmt: skip


@pytest.mark.parametrize("negative_slope", [0.0, 0.1])
def test_relu_matches_jax_nn(dtype, negative_slope):
    rng = np.random.default_rng(12)
    x = jrandn(rng, (2, 3, 5, 5), dtype).at[0, 0, 0].set(0.0)  # zeros: the negative side's gradient
    expected = jax.nn.relu(x) if negative_slope == 0 else jax.nn.leaky_relu(x, negative_slope)
    np.testing.assert_array_equal(ck.relu(x, negative_slope), expected)
    dy = jrandn(rng, x.shape, dtype)
    (dx_ref,) = vjp(lambda a: relu_ref(a, negative_slope), dy, x)
    np.testing.assert_array_equal(ck.relu_backward(dy, x, negative_slope), dx_ref)


@pytest.mark.parametrize(("size", "alpha", "beta", "k"), [(5, 1e-4 * 5, 0.75, 2.0),
                                                          (3, 0.5, 0.6, 1.0),
                                                          (4, 1.0, 1.3, 0.5)])  # fmt: skip
def test_lrn_matches_a_jnp_implementation(dtype, size, alpha, beta, k):
    rng = np.random.default_rng(13)
    x = jrandn(rng, (2, 7, 4, 5), dtype)
    expected = jitted(lambda a: lrn_ref(a, size, alpha, beta, k), x)
    assert_close(ck.lrn(x, size, alpha, beta, k), expected, dtype, 4 * size, "lrn")
    dy = jrandn(rng, x.shape, dtype)
    (dx_ref,) = vjp(lambda a: lrn_ref(a, size, alpha, beta, k), dy, x)
    assert_close(ck.lrn_backward(dy, x, size, alpha, beta, k), dx_ref, dtype, 8 * size,
                 "lrn_backward")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# README


def test_readme_jax_example_runs():
    text = (ROOT / "README.md").read_text()
    assert (
        text.index("## Use from PyTorch")
        < text.index("## Use from JAX")
        < text.index("## Use from C")
    )
    section = text[text.index("## Use from JAX") : text.index("## Use from C")]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(example, "README.md, Use from JAX", "exec"), namespace)
    out, y_jax = namespace["out"], namespace["y_jax"]
    assert y_jax.unsafe_buffer_pointer() == out.ctypes.data  # the promised zero-copy way back
    x, w = namespace["x"], namespace["w"]
    expected = jitted(lambda *a: jax.nn.relu(conv2d_ref(*a, None, 1, 2, 1, 1)), x, w)
    assert_close(y_jax, expected, np.float32, 75, "README example")
