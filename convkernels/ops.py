"""The functional API: every op and its backward, NCHW, float32 or float64.

Inputs may be NumPy arrays or anything with the buffer protocol or __dlpack__ (a PyTorch CPU
tensor, for instance); they are read without copying when already C-contiguous and aligned, and
copied first otherwise. Inputs are never modified. Results are new NumPy arrays. Defaults follow
torch.nn.functional. Wrong input raises TypeError or ValueError naming the argument.
"""

from . import _C
from ._args import as_array, as_bool, as_float, as_int, as_pair, as_shape4

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
    "lrn",
    "lrn_backward",
    "lcn",
    "lcn_backward",
    "gemm",
]


def _conv_args(op, stride, padding, dilation, groups):
    return _C.ConvArgs(
        as_pair(stride, op, "stride"),
        as_pair(padding, op, "padding"),
        as_pair(dilation, op, "dilation"),
        as_int(groups, op, "groups"),
    )


def _pool_args(op, kernel_size, stride, padding, ceil_mode, count_include_pad=True):
    kernel = as_pair(kernel_size, op, "kernel_size")
    stride = kernel if stride is None else as_pair(stride, op, "stride")
    return _C.PoolArgs(
        kernel,
        stride,
        as_pair(padding, op, "padding"),
        as_bool(ceil_mode, op, "ceil_mode"),
        as_bool(count_include_pad, op, "count_include_pad"),
    )


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y = x ⋆ w + b. x: (N, C, H, W), w: (K, C/groups, R, S), b: (K,) or None -> (N, K, P, Q)."""
    op = "conv2d"
    b = None if b is None else as_array(b, op, "b")
    return _C.conv2d(
        as_array(x, op, "x"),
        as_array(w, op, "w"),
        b,
        _conv_args(op, stride, padding, dilation, groups),
    )


def conv2d_backward_input(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to x, of shape input_shape, from dy: (N, K, P, Q)."""
    op = "conv2d_backward_input"
    return _C.conv2d_backward_input(
        as_array(dy, op, "dy"),
        as_array(w, op, "w"),
        as_shape4(input_shape, op, "input_shape"),
        _conv_args(op, stride, padding, dilation, groups),
    )


def conv2d_backward_weight(x, dy, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to w, of shape weight_shape (K, C/groups, R, S)."""
    op = "conv2d_backward_weight"
    return _C.conv2d_backward_weight(
        as_array(x, op, "x"),
        as_array(dy, op, "dy"),
        as_shape4(weight_shape, op, "weight_shape"),
        _conv_args(op, stride, padding, dilation, groups),
    )


def conv2d_backward_bias(dy):
    """Gradient of conv2d with respect to b: dy (N, K, P, Q) summed over N, P, Q -> (K,)."""
    return _C.conv2d_backward_bias(as_array(dy, "conv2d_backward_bias", "dy"))


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """(y, idx): window maxima and, in idx (int64), the flat index h * W + w of each one.

    Padding is never selected. Ties go to the first maximum in row-major window order; a NaN in
    the window wins (the first NaN, where PyTorch keeps the last: only idx can differ).
    """
    op = "max_pool2d"
    return _C.max_pool2d(
        as_array(x, op, "x"), _pool_args(op, kernel_size, stride, padding, ceil_mode)
    )


def max_pool2d_backward(dy, idx, input_shape):
    """Gradient of max_pool2d: dy added at the positions idx recorded, into input_shape."""
    op = "max_pool2d_backward"
    return _C.max_pool2d_backward(
        as_array(dy, op, "dy"), as_array(idx, op, "idx"), as_shape4(input_shape, op, "input_shape")
    )


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window means; the divisor follows PyTorch (see README, "Conventions")."""
    op = "avg_pool2d"
    return _C.avg_pool2d(
        as_array(x, op, "x"),
        _pool_args(op, kernel_size, stride, padding, ceil_mode, count_include_pad),
    )


def avg_pool2d_backward(
    dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    """Gradient of avg_pool2d with respect to its input, of shape input_shape."""
    op = "avg_pool2d_backward"
    return _C.avg_pool2d_backward(
        as_array(dy, op, "dy"),
        as_shape4(input_shape, op, "input_shape"),
        _pool_args(op, kernel_size, stride, padding, ceil_mode, count_include_pad),
    )


def relu(x, negative_slope=0.0):
    """max(0, x), or negative_slope * x where x <= 0. Any shape."""
    return _C.relu(as_array(x, "relu", "x"), as_float(negative_slope, "relu", "negative_slope"))


def relu_backward(dy, x, negative_slope=0.0):
    """dy where x > 0, negative_slope * dy elsewhere."""
    op = "relu_backward"
    return _C.relu_backward(
        as_array(dy, op, "dy"), as_array(x, op, "x"), as_float(negative_slope, op, "negative_slope")
    )


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Cross-channel LRN, as torch.nn.functional.local_response_norm (alpha is divided by size)."""
    op = "lrn"
    return _C.lrn(
        as_array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(alpha, op, "alpha"),
        as_float(beta, op, "beta"),
        as_float(k, op, "k"),
    )


def lrn_backward(dy, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Gradient of lrn with respect to x."""
    op = "lrn_backward"
    return _C.lrn_backward(
        as_array(dy, op, "dy"),
        as_array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(alpha, op, "alpha"),
        as_float(beta, op, "beta"),
        as_float(k, op, "k"),
    )


def lcn(x, size=9, sigma=2.0, eps=1e-4):
    """Local contrast normalization (Jarrett et al. 2009); formula in README, "Conventions"."""
    op = "lcn"
    return _C.lcn(
        as_array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(sigma, op, "sigma"),
        as_float(eps, op, "eps"),
    )


def lcn_backward(dy, x, size=9, sigma=2.0, eps=1e-4):
    """Gradient of lcn with respect to x (a subgradient where the max in the divisor ties)."""
    op = "lcn_backward"
    return _C.lcn_backward(
        as_array(dy, op, "dy"),
        as_array(x, op, "x"),
        as_int(size, op, "size"),
        as_float(sigma, op, "sigma"),
        as_float(eps, op, "eps"),
    )


def gemm(a, b, c=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """alpha * op(a) @ op(b) + beta * c as a new array; op transposes when trans_* is set.

    The matrix multiply under every convolution, exposed for dense layers and benchmarks. With
    c=None (or beta=0) c is not read.
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
    )
