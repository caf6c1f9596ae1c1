"""The functional API: every op and its backward, NCHW, float32 or float64.

Inputs may be NumPy arrays or anything with the buffer protocol or __dlpack__ (a PyTorch CPU
tensor, for instance); they are read without copying when already C-contiguous and aligned, and
copied first otherwise. Inputs are never modified. Defaults follow torch.nn.functional. Wrong
input raises TypeError or ValueError naming the argument.

Results are new NumPy arrays, unless the keyword argument ``out`` gives a buffer to write into:
an array (NumPy, or any writable object with the buffer protocol or __dlpack__, e.g. a PyTorch
CPU tensor) of exactly the result's shape and dtype, C-contiguous, aligned and writable, sharing
no memory with an input. The kernel writes straight into it, without a copy, and the op returns
a NumPy view of it (``out`` itself for a NumPy array). Other buffers are refused with a
TypeError (wrong dtype, not an array) or ValueError (shape, layout, read-only, overlap) naming
``out``, never copied into. The exceptions: ``relu(x, out=x)``, ``relu_backward(dy, x,
out=dy)``, ``tanh(x, out=x)`` and ``tanh_backward(dy, y, out=dy)`` run in place, and
``gemm(a, b, c, out=c)`` accumulates into c as BLAS does.
``max_pool2d`` takes ``out=(y, idx)``.

CUDA device arrays (CuPy, or anything with ``__cuda_array_interface__`` or a CUDA
``__dlpack__``) run the same op on the GPU when convkernels was built with CUDA, and the results
are CuPy arrays; see convkernels._device for the rules.
"""

from . import _C
from ._args import as_array, as_bool, as_float, as_int, as_pair, as_shape4
from ._device import backend

__all__ = [
    "conv2d",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "relu",
    "relu_backward",
    "tanh",
    "tanh_backward",
    "lrn",
    "lrn_backward",
    "lcn",
    "lcn_backward",
    "gemm",
]


def _conv_args(be, op, stride, padding, dilation, groups):
    return be.module.ConvArgs(
        as_pair(stride, op, "stride"),
        as_pair(padding, op, "padding"),
        as_pair(dilation, op, "dilation"),
        as_int(groups, op, "groups"),
    )


def _pool_args(be, op, kernel_size, stride, padding, ceil_mode, count_include_pad=True):
    kernel = as_pair(kernel_size, op, "kernel_size")
    stride = kernel if stride is None else as_pair(stride, op, "stride")
    return be.module.PoolArgs(
        kernel,
        stride,
        as_pair(padding, op, "padding"),
        as_bool(ceil_mode, op, "ceil_mode"),
        as_bool(count_include_pad, op, "count_include_pad"),
    )


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, relu=False, out=None):
    """y = x ⋆ w + b. x: (N, C, H, W), w: (K, C/groups, R, S), b: (K,) or None -> (N, K, P, Q).

    relu=True returns relu(x ⋆ w + b), the same values as ``relu(conv2d(...))``, with the ReLU
    applied as each part of y is written (no second pass over y). Its gradient is
    ``relu_backward(dy, y)`` on that output, then the backward of the convolution.
    """
    op = "conv2d"
    be = backend(op, ("x", x), ("w", w), ("b", b), ("out", out))
    b = None if b is None else be.array(b, op, "b")
    return be.run(
        "conv2d",
        be.array(x, op, "x"),
        be.array(w, op, "w"),
        b,
        _conv_args(be, op, stride, padding, dilation, groups),
        as_bool(relu, op, "relu"),
        be.out(out, op),
    )


def conv2d_backward_input(
    dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1, *, out=None
):
    """Gradient of conv2d with respect to x, of shape input_shape, from dy: (N, K, P, Q)."""
    op = "conv2d_backward_input"
    be = backend(op, ("dy", dy), ("w", w), ("out", out))
    return be.run(
        "conv2d_backward_input",
        be.array(dy, op, "dy"),
        be.array(w, op, "w"),
        as_shape4(input_shape, op, "input_shape"),
        _conv_args(be, op, stride, padding, dilation, groups),
        be.out(out, op),
    )


def conv2d_backward_weight(
    x, dy, weight_shape, stride=1, padding=0, dilation=1, groups=1, *, out=None
):
    """Gradient of conv2d with respect to w, of shape weight_shape (K, C/groups, R, S)."""
    op = "conv2d_backward_weight"
    be = backend(op, ("x", x), ("dy", dy), ("out", out))
    return be.run(
        "conv2d_backward_weight",
        be.array(x, op, "x"),
        be.array(dy, op, "dy"),
        as_shape4(weight_shape, op, "weight_shape"),
        _conv_args(be, op, stride, padding, dilation, groups),
        be.out(out, op),
    )


def conv2d_backward_bias(dy, *, out=None):
    """Gradient of conv2d with respect to b: dy (N, K, P, Q) summed over N, P, Q -> (K,)."""
    op = "conv2d_backward_bias"
    be = backend(op, ("dy", dy), ("out", out))
    return be.run("conv2d_backward_bias", be.array(dy, op, "dy"), be.out(out, op))


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, *, out=None):
    """(y, idx): window maxima and, in idx (int64), the flat index h * W + w of each one.

    Padding is never selected. Ties go to the first maximum in row-major window order; a NaN in
    the window wins (the first NaN, where PyTorch keeps the last: only idx can differ).
    out, if given, is a pair (y, idx) of buffers (x's dtype and int64) that the kernel fills.
    """
    op = "max_pool2d"
    out_y = out_idx = None
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(
                f"{op}: out must be a pair (y, idx) of arrays, got {type(out).__name__}"
            )
        out_y, out_idx = out
    be = backend(op, ("x", x), ("out[0] (y)", out_y), ("out[1] (idx)", out_idx))
    return be.run(
        "max_pool2d",
        be.array(x, op, "x"),
        _pool_args(be, op, kernel_size, stride, padding, ceil_mode),
        be.out(out_y, op, "out[0] (y)"),
        be.out(out_idx, op, "out[1] (idx)"),
    )


def max_pool2d_backward(dy, idx, input_shape, *, out=None):
    """Gradient of max_pool2d: dy added at the positions idx recorded, into input_shape."""
    op = "max_pool2d_backward"
    be = backend(op, ("dy", dy), ("idx", idx), ("out", out))
    return be.run(
        "max_pool2d_backward",
        be.array(dy, op, "dy"),
        be.array(idx, op, "idx"),
        as_shape4(input_shape, op, "input_shape"),
        be.out(out, op),
    )


def avg_pool2d(
    x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, out=None
):
    """Window means; the divisor follows PyTorch (see README, "Conventions")."""
    op = "avg_pool2d"
    be = backend(op, ("x", x), ("out", out))
    return be.run(
        "avg_pool2d",
        be.array(x, op, "x"),
        _pool_args(be, op, kernel_size, stride, padding, ceil_mode, count_include_pad),
        be.out(out, op),
    )


def avg_pool2d_backward(
    dy,
    input_shape,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    *,
    out=None,
):
    """Gradient of avg_pool2d with respect to its input, of shape input_shape."""
    op = "avg_pool2d_backward"
    be = backend(op, ("dy", dy), ("out", out))
    return be.run(
        "avg_pool2d_backward",
        be.array(dy, op, "dy"),
        as_shape4(input_shape, op, "input_shape"),
        _pool_args(be, op, kernel_size, stride, padding, ceil_mode, count_include_pad),
        be.out(out, op),
    )


def relu(x, negative_slope=0.0, *, out=None):
    """max(0, x), or negative_slope * x where x <= 0. Any shape. out=x runs in place."""
    op = "relu"
    be = backend(op, ("x", x), ("out", out))
    return be.run(
        "relu",
        be.array(x, op, "x"),
        as_float(negative_slope, op, "negative_slope"),
        be.out(out, op),
    )


def relu_backward(dy, x, negative_slope=0.0, *, out=None):
    """dy where x > 0, negative_slope * dy elsewhere. out=dy runs in place."""
    op = "relu_backward"
    be = backend(op, ("dy", dy), ("x", x), ("out", out))
    return be.run(
        "relu_backward",
        be.array(dy, op, "dy"),
        be.array(x, op, "x"),
        as_float(negative_slope, op, "negative_slope"),
        be.out(out, op),
    )


def tanh(x, amplitude=1.0, slope=1.0, *, out=None):
    """amplitude * tanh(slope * x), elementwise, any shape; LeNet-5's squashing function is
    amplitude=1.7159, slope=2/3. Within 3 ulp. out=x runs in place."""
    op = "tanh"
    be = backend(op, ("x", x), ("out", out))
    return be.run(
        "tanh",
        be.array(x, op, "x"),
        as_float(amplitude, op, "amplitude"),
        as_float(slope, op, "slope"),
        be.out(out, op),
    )


def tanh_backward(dy, y, amplitude=1.0, slope=1.0, *, out=None):
    """The gradient of tanh from its output y = tanh(x, amplitude, slope):
    dy * slope / amplitude * (amplitude - y) * (amplitude + y). out=dy runs in place."""
    op = "tanh_backward"
    be = backend(op, ("dy", dy), ("y", y), ("out", out))
    return be.run(
        "tanh_backward",
        be.array(dy, op, "dy"),
        be.array(y, op, "y"),
        as_float(amplitude, op, "amplitude"),
        as_float(slope, op, "slope"),
        be.out(out, op),
    )


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0, *, out=None):
    """Cross-channel LRN, as torch.nn.functional.local_response_norm (alpha is divided by size)."""
    op = "lrn"
    be = backend(op, ("x", x), ("out", out))
    return be.run(
        "lrn",
        be.array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(alpha, op, "alpha"),
        as_float(beta, op, "beta"),
        as_float(k, op, "k"),
        be.out(out, op),
    )


def lrn_backward(dy, x, size, alpha=1e-4, beta=0.75, k=1.0, *, out=None):
    """Gradient of lrn with respect to x."""
    op = "lrn_backward"
    be = backend(op, ("dy", dy), ("x", x), ("out", out))
    return be.run(
        "lrn_backward",
        be.array(dy, op, "dy"),
        be.array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(alpha, op, "alpha"),
        as_float(beta, op, "beta"),
        as_float(k, op, "k"),
        be.out(out, op),
    )


def lcn(x, size=9, sigma=2.0, eps=1e-4, *, out=None):
    """Local contrast normalization (Jarrett et al. 2009); formula in README, "Conventions"."""
    op = "lcn"
    be = backend(op, ("x", x), ("out", out))
    return be.run(
        "lcn",
        be.array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(sigma, op, "sigma"),
        as_float(eps, op, "eps"),
        be.out(out, op),
    )


def lcn_backward(dy, x, size=9, sigma=2.0, eps=1e-4, *, out=None):
    """Gradient of lcn with respect to x (a subgradient where the max in the divisor ties)."""
    op = "lcn_backward"
    be = backend(op, ("dy", dy), ("x", x), ("out", out))
    return be.run(
        "lcn_backward",
        be.array(dy, op, "dy"),
        be.array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(sigma, op, "sigma"),
        as_float(eps, op, "eps"),
        be.out(out, op),
    )


def gemm(a, b, c=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, *, out=None):
    """alpha * op(a) @ op(b) + beta * c, in a new array or in out; op transposes when trans_*.

    The matrix multiply under every convolution, exposed for dense layers and benchmarks. With
    c=None (or beta=0) c is not read. out may be c itself: c = alpha op(a) op(b) + beta c.
    """
    op = "gemm"
    c = None if c is None else as_array(c, op, "c")
    return _C.gemm(
        as_array(a, op, "a"),
        as_array(b, op, "b"),
        c,
        as_bool(trans_a, op, "trans_a"),
        as_bool(trans_b, op, "trans_b"),
        as_float(alpha, op, "alpha"),
        as_float(beta, op, "beta"),
        None if out is None else as_array(out, op, "out"),
    )
