"""Naive NumPy reference implementations of every convkernels op: the oracle.

This module is the ground truth that the tests and benchmarks compare the C++ and CUDA kernels
against.  It was written independently of ``csrc/`` and ``cuda/`` (it imports neither
``convkernels._C`` nor torch, only NumPy) and favours obviously-correct code over speed: loops run
over kernel taps or output positions, and each loop body is a vectorised NumPy expression over
the batch / channel / output-position axes.

Conventions (see DESIGN.md):

* arrays are NCHW; ``stride``, ``padding``, ``dilation`` and pooling ``kernel_size`` accept an int
  or a pair ``(h, w)`` as in ``torch.nn.functional``;
* computation is done in the dtype of the (first) input array when it is float32 or float64, and
  in float64 otherwise; outputs have that dtype;
* convolution is cross-correlation (like PyTorch):
  ``y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, g*Cg+c, p*sh - ph + r*dh, q*sw - pw + s*dw] w[k,c,r,s]``
  with ``g = k // (K/groups)`` and zero padding;
* pooling output size follows PyTorch, including its ``ceil_mode`` rule (the last window must
  start inside the input or its left padding), and PyTorch's restriction ``padding <= kernel//2``;
* ``max_pool2d`` indices are int64 flat offsets ``h*W + w`` into each (H, W) plane.
"""

import numpy as np

__all__ = [
    "conv2d_output_size",
    "pool_output_size",
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
]


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _float_array(a, name, dtype=None):
    """Return ``a`` as a float ndarray (its own dtype if float32/float64, else float64)."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.asarray(a, dtype=dtype)


def _check_ndim(a, ndim, name):
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")


def _pair(v, name):
    """An int or a 1- or 2-sequence of ints -> a pair of ints (like PyTorch's _pair)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        t = tuple(v)
    except TypeError:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}") from None
    if len(t) == 1:
        t = t * 2
    if len(t) != 2 or not all(
        isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in t
    ):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _shape4(shape, name):
    t = tuple(int(s) for s in shape)
    if len(t) != 4 or min(t) < 0:
        raise ValueError(f"{name}: expected a 4-tuple of non-negative ints, got {shape!r}")
    return t


# --------------------------------------------------------------------------------------------
# output sizes
# --------------------------------------------------------------------------------------------


def conv2d_output_size(H, R, stride, padding, dilation):
    """P = floor((H + 2*padding - dilation*(R-1) - 1) / stride) + 1  (may be <= 0: no output)."""
    return (H + 2 * padding - dilation * (R - 1) - 1) // stride + 1


def pool_output_size(H, k, stride, padding, ceil_mode):
    """out = floor_or_ceil((H + 2p - k) / s) + 1; with ceil_mode, if (out-1)*s >= H + p: out -= 1.

    The ceil_mode correction is PyTorch's: the last window must start inside the input or
    its left padding, never entirely in the right padding.
    """
    num = H + 2 * padding - k
    if ceil_mode:
        out = -((-num) // stride) + 1  # ceil division (exact for negative num too)
        if (out - 1) * stride >= H + padding:
            out -= 1
    else:
        out = num // stride + 1
    return out


# --------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------


def _conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(
            f"stride and dilation must be >= 1, got stride={stride!r}, dilation={dilation!r}"
        )
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    G = int(groups)
    if C != Cg * G:
        raise ValueError(
            f"weight: expected shape (K, C/groups={C}/{G}, R, S), got {w_shape} "
            f"for input channels C={C}"
        )
    if K % G != 0:
        raise ValueError(f"weight: K={K} output channels must be divisible by groups={G}")
    if min(R, S) < 1:
        raise ValueError(f"weight: kernel size must be >= 1, got {w_shape}")
    P = conv2d_output_size(H, R, sh, ph, dh)
    Q = conv2d_output_size(W, S, sw, pw, dw)
    if P < 1 or Q < 1:
        raise ValueError(
            f"conv2d: output size ({P}, {Q}) is empty for input {x_shape}, "
            f"weight {w_shape}, stride {(sh, sw)}, padding {(ph, pw)}, "
            f"dilation {(dh, dw)}"
        )
    return dict(
        N=N,
        C=C,
        H=H,
        W=W,
        K=K,
        Cg=Cg,
        Kg=K // G,
        G=G,
        R=R,
        S=S,
        sh=sh,
        sw=sw,
        ph=ph,
        pw=pw,
        dh=dh,
        dw=dw,
        P=P,
        Q=Q,
    )


def _tap_slices(g, r, s):
    """Slices of the padded input that kernel tap (r, s) reads, for all output positions."""
    h0, w0 = r * g["dh"], s * g["dw"]
    return (
        slice(h0, h0 + g["sh"] * (g["P"] - 1) + 1, g["sh"]),
        slice(w0, w0 + g["sw"] * (g["Q"] - 1) + 1, g["sw"]),
    )


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, like torch.nn.functional.conv2d.

    y[n,k,p,q] = b[k] + sum_{c<Cg, r<R, s<S} w[k,c,r,s] xpad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]
    where g = k // (K/groups), Cg = C/groups and xpad is x zero-padded by (ph, pw) on each side.
    """
    x = _float_array(x, "x")
    w = _float_array(w, "w", x.dtype)
    _check_ndim(x, 4, "x")
    _check_ndim(w, 4, "w")
    g = _conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    N, G, Cg, Kg, P, Q = g["N"], g["G"], g["Cg"], g["Kg"], g["P"], g["Q"]
    xp = np.pad(x, ((0, 0), (0, 0), (g["ph"], g["ph"]), (g["pw"], g["pw"])))
    xg = xp.reshape(N, G, Cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(G, Kg, Cg, g["R"], g["S"])
    y = np.zeros((N, G, Kg, P, Q), dtype=x.dtype)
    for r in range(g["R"]):
        for s in range(g["S"]):
            hs, ws = _tap_slices(g, r, s)
            y += np.einsum("ngcpq,gkc->ngkpq", xg[:, :, :, hs, ws], wg[:, :, :, r, s])
    y = y.reshape(N, g["K"], P, Q)
    if b is not None:
        b = _float_array(b, "b", x.dtype)
        if b.shape != (g["K"],):
            raise ValueError(f"b: expected shape ({g['K']},), got {b.shape}")
        y += b[None, :, None, None]
    return y


def conv2d_backward_input(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to x (the adjoint of the forward map x -> y).

    dx[n, g*Cg + c, h, w'] = sum_{k in group g, r, s, p, q : p*sh - ph + r*dh = h,
                                 q*sw - pw + s*dw = w'} dy[n,k,p,q] w[k,c,r,s]
    Input rows/columns that no window reaches (when H + 2p - ... is not divisible by the stride)
    get zero gradient.
    """
    dy = _float_array(dy, "dy")
    w = _float_array(w, "w", dy.dtype)
    _check_ndim(dy, 4, "dy")
    _check_ndim(w, 4, "w")
    input_shape = _shape4(input_shape, "input_shape")
    g = _conv_geometry(input_shape, w.shape, stride, padding, dilation, groups)
    N, C, H, W, G, Cg, Kg = g["N"], g["C"], g["H"], g["W"], g["G"], g["Cg"], g["Kg"]
    if dy.shape != (N, g["K"], g["P"], g["Q"]):
        raise ValueError(f"dy: expected shape {(N, g['K'], g['P'], g['Q'])}, got {dy.shape}")
    Hp, Wp = H + 2 * g["ph"], W + 2 * g["pw"]
    dxp = np.zeros((N, G, Cg, Hp, Wp), dtype=dy.dtype)
    dyg = dy.reshape(N, G, Kg, g["P"], g["Q"])
    wg = w.reshape(G, Kg, Cg, g["R"], g["S"])
    for r in range(g["R"]):
        for s in range(g["S"]):
            hs, ws = _tap_slices(g, r, s)
            dxp[:, :, :, hs, ws] += np.einsum("ngkpq,gkc->ngcpq", dyg, wg[:, :, :, r, s])
    dxp = dxp.reshape(N, C, Hp, Wp)
    return np.ascontiguousarray(dxp[:, :, g["ph"] : g["ph"] + H, g["pw"] : g["pw"] + W])


def conv2d_backward_weight(x, dy, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to w.

    dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * xpad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]
    """
    x = _float_array(x, "x")
    dy = _float_array(dy, "dy", x.dtype)
    _check_ndim(x, 4, "x")
    _check_ndim(dy, 4, "dy")
    weight_shape = _shape4(weight_shape, "weight_shape")
    g = _conv_geometry(x.shape, weight_shape, stride, padding, dilation, groups)
    N, G, Cg, Kg = g["N"], g["G"], g["Cg"], g["Kg"]
    if dy.shape != (N, g["K"], g["P"], g["Q"]):
        raise ValueError(f"dy: expected shape {(N, g['K'], g['P'], g['Q'])}, got {dy.shape}")
    xp = np.pad(x, ((0, 0), (0, 0), (g["ph"], g["ph"]), (g["pw"], g["pw"])))
    xg = xp.reshape(N, G, Cg, xp.shape[2], xp.shape[3])
    dyg = dy.reshape(N, G, Kg, g["P"], g["Q"])
    dw = np.zeros((G, Kg, Cg, g["R"], g["S"]), dtype=x.dtype)
    for r in range(g["R"]):
        for s in range(g["S"]):
            hs, ws = _tap_slices(g, r, s)
            dw[:, :, :, r, s] = np.einsum("ngkpq,ngcpq->gkc", dyg, xg[:, :, :, hs, ws])
    return dw.reshape(weight_shape)


def conv2d_backward_bias(dy):
    """Gradient of conv2d with respect to b: db[k] = sum_{n,p,q} dy[n,k,p,q]."""
    dy = _float_array(dy, "dy")
    _check_ndim(dy, 4, "dy")
    return dy.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------


def _pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode):
    N, C, H, W = x_shape
    kh, kw = _pair(kernel_size, "kernel_size")
    if stride is None or (not isinstance(stride, (int, np.integer)) and len(stride) == 0):
        sh, sw = kh, kw
    else:
        sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if min(kh, kw) < 1 or min(sh, sw) < 1:
        raise ValueError(
            f"kernel_size and stride must be >= 1, got kernel_size={kernel_size!r}, "
            f"stride={stride!r}"
        )
    if min(ph, pw) < 0 or ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"padding must be between 0 and half the kernel size, got "
            f"padding={padding!r} for kernel_size={kernel_size!r}"
        )
    P = pool_output_size(H, kh, sh, ph, bool(ceil_mode))
    Q = pool_output_size(W, kw, sw, pw, bool(ceil_mode))
    if P < 1 or Q < 1:
        raise ValueError(
            f"pooling: output size ({P}, {Q}) is empty for input {x_shape}, "
            f"kernel {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}"
        )
    # padded extent that every window fits in (ceil_mode windows may run past the right padding)
    Hx = max(H + 2 * ph, (P - 1) * sh + kh)
    Wx = max(W + 2 * pw, (Q - 1) * sw + kw)
    return dict(
        N=N,
        C=C,
        H=H,
        W=W,
        kh=kh,
        kw=kw,
        sh=sh,
        sw=sw,
        ph=ph,
        pw=pw,
        P=P,
        Q=Q,
        pad=((0, 0), (0, 0), (ph, Hx - H - ph), (pw, Wx - W - pw)),
    )


def _pool_tap_slices(g, i, j):
    """Slices of the padded input holding tap (i, j) of every pooling window."""
    return (
        slice(i, i + g["sh"] * (g["P"] - 1) + 1, g["sh"]),
        slice(j, j + g["sw"] * (g["Q"] - 1) + 1, g["sw"]),
    )


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max pooling with argmax, like torch.nn.functional.max_pool2d(..., return_indices=True).

    y[n,c,p,q] = max over the window rows p*sh - ph .. + kh-1, columns q*sw - pw .. + kw-1
    (padding is -inf and is never selected); idx[n,c,p,q] = h*W + w of the chosen element.
    Windows are scanned in row-major order and an element replaces the current maximum only if
    it is strictly greater, so the first maximum wins ties.  NaN propagates: the first NaN of
    the window is chosen.  If every element of a window is -inf, idx is its first in-bounds
    element (as in PyTorch).
    """
    x = _float_array(x, "x")
    _check_ndim(x, 4, "x")
    g = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    N, C, W, P, Q = g["N"], g["C"], g["W"], g["P"], g["Q"]
    xp = np.pad(x, g["pad"], constant_values=-np.inf)
    hstart = np.arange(P) * g["sh"] - g["ph"]  # window origins in input coordinates
    wstart = np.arange(Q) * g["sw"] - g["pw"]
    best = np.full((N, C, P, Q), -np.inf, dtype=x.dtype)
    first_inside = np.maximum(hstart, 0)[:, None] * W + np.maximum(wstart, 0)[None, :]
    idx = np.broadcast_to(first_inside, (N, C, P, Q)).astype(np.int64)
    for i in range(g["kh"]):
        for j in range(g["kw"]):
            hs, ws = _pool_tap_slices(g, i, j)
            val = xp[:, :, hs, ws]
            flat = (hstart + i)[:, None] * W + (wstart + j)[None, :]  # garbage in padding,
            # but padding is -inf and never taken.
            # NaN rule: a NaN replaces a non-NaN maximum; once the maximum is NaN nothing
            # replaces it (first NaN wins).  PyTorch's loop (val > max || isnan(val)) would
            # instead keep the *last* NaN: use `take = (val > best) | np.isnan(val)` for that.
            take = (val > best) | (np.isnan(val) & ~np.isnan(best))
            best = np.where(take, val, best)
            idx = np.where(take, flat, idx)
    return best, idx


def max_pool2d_backward(dy, idx, input_shape):
    """Gradient of max_pool2d: dx[n,c].flat[idx[n,c,p,q]] += dy[n,c,p,q] (scatter-add)."""
    dy = _float_array(dy, "dy")
    idx = np.asarray(idx)
    _check_ndim(dy, 4, "dy")
    N, C, H, W = _shape4(input_shape, "input_shape")
    if idx.shape != dy.shape:
        raise ValueError(f"idx: expected the shape of dy {dy.shape}, got {idx.shape}")
    if dy.shape[:2] != (N, C):
        raise ValueError(f"dy: expected shape ({N}, {C}, P, Q), got {dy.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"idx: expected an integer array, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= H * W):
        raise ValueError(f"idx: values must lie in [0, {H * W}), got [{idx.min()}, {idx.max()}]")
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    rows = np.arange(N * C)[:, None]
    np.add.at(dx, (rows, idx.reshape(N * C, -1).astype(np.int64)), dy.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)


def _avg_divisor(g, count_include_pad):
    """(P, Q) divisors, exactly PyTorch's.

    hstart = p*sh - ph, hend = min(hstart + kh, H + ph), pool_size = (hend-hstart)*(wend-wstart)
    (window clipped to the padded input); then hstart/hend are clipped to [0, H] and the divisor
    is pool_size if count_include_pad else (hend-hstart)*(wend-wstart) of the clipped window.
    """

    def one_axis(n_out, k, s, p, L):
        start = np.arange(n_out) * s - p
        end = np.minimum(start + k, L + p)
        padded = end - start
        clipped = np.minimum(end, L) - np.maximum(start, 0)
        return padded, clipped

    ph_, ch_ = one_axis(g["P"], g["kh"], g["sh"], g["ph"], g["H"])
    pw_, cw_ = one_axis(g["Q"], g["kw"], g["sw"], g["pw"], g["W"])
    if count_include_pad:
        return np.outer(ph_, pw_)
    return np.outer(ch_, cw_)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling, like torch.nn.functional.avg_pool2d.

    y[n,c,p,q] = (sum of x over the window, zero padding) / divisor[p,q]   (see _avg_divisor)
    """
    x = _float_array(x, "x")
    _check_ndim(x, 4, "x")
    g = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = np.pad(x, g["pad"])
    acc = np.zeros((g["N"], g["C"], g["P"], g["Q"]), dtype=x.dtype)
    for i in range(g["kh"]):
        for j in range(g["kw"]):
            hs, ws = _pool_tap_slices(g, i, j)
            acc += xp[:, :, hs, ws]
    return acc / _avg_divisor(g, count_include_pad).astype(x.dtype)


def avg_pool2d_backward(
    dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    """Gradient of avg_pool2d: every in-bounds element of window (p, q) receives
    dy[n,c,p,q] / divisor[p,q]."""
    dy = _float_array(dy, "dy")
    _check_ndim(dy, 4, "dy")
    input_shape = _shape4(input_shape, "input_shape")
    g = _pool_geometry(input_shape, kernel_size, stride, padding, ceil_mode)
    N, C, H, W = input_shape
    if dy.shape != (N, C, g["P"], g["Q"]):
        raise ValueError(f"dy: expected shape {(N, C, g['P'], g['Q'])}, got {dy.shape}")
    gy = dy / _avg_divisor(g, count_include_pad).astype(dy.dtype)
    (_, _), (_, _), (ph, ph2), (pw, pw2) = g["pad"]
    dxp = np.zeros((N, C, H + ph + ph2, W + pw + pw2), dtype=dy.dtype)
    for i in range(g["kh"]):
        for j in range(g["kw"]):
            hs, ws = _pool_tap_slices(g, i, j)
            dxp[:, :, hs, ws] += gy
    return np.ascontiguousarray(dxp[:, :, ph : ph + H, pw : pw + W])


# --------------------------------------------------------------------------------------------
# ReLU
# --------------------------------------------------------------------------------------------


def relu(x, negative_slope=0.0):
    """y = x if x > 0 else negative_slope * x   (NaN stays NaN; with slope 0, -inf -> 0)."""
    x = _float_array(x, "x")
    if negative_slope == 0:
        neg = np.zeros_like(x)  # max(0, x): avoids 0 * -inf = NaN
    else:
        neg = x * x.dtype.type(negative_slope)
    return np.where((x > 0) | np.isnan(x), x, neg)


def tanh(x, amplitude=1.0, slope=1.0):
    """y = amplitude * tanh(slope * x)   (NumPy's tanh: NaN stays NaN, +-inf -> +-amplitude)."""
    x = _float_array(x, "x")
    return (amplitude * np.tanh(slope * x)).astype(x.dtype)


def tanh_backward(dy, y, amplitude=1.0, slope=1.0):
    """dx = dy * amplitude * slope * (1 - (y / amplitude)^2), y = tanh(x, amplitude, slope)."""
    dy = _float_array(dy, "dy")
    y = np.asarray(y)
    if y.shape != dy.shape:
        raise ValueError(f"y: expected the shape of dy {dy.shape}, got {y.shape}")
    t = y / amplitude
    return (dy * (amplitude * slope) * (1 - t * t)).astype(dy.dtype)


def relu_backward(dy, x, negative_slope=0.0):
    """dx = dy if x > 0 else negative_slope * dy   (x == 0 and NaN x take the slope branch)."""
    dy = _float_array(dy, "dy")
    x = np.asarray(x)
    if x.shape != dy.shape:
        raise ValueError(f"x: expected the shape of dy {dy.shape}, got {x.shape}")
    if negative_slope == 0:
        neg = np.zeros_like(dy)
    else:
        neg = dy * dy.dtype.type(negative_slope)
    return np.where(x > 0, dy, neg)


# --------------------------------------------------------------------------------------------
# LRN (cross-channel local response normalization, AlexNet section 3.3)
# --------------------------------------------------------------------------------------------


def _lrn_window(c, size, C):
    """Channels j in W(c) = [c - size//2, c + (size-1)//2] clipped to [0, C), as a slice."""
    return slice(max(c - size // 2, 0), min(c + (size - 1) // 2, C - 1) + 1)


def _lrn_check(x, size):
    _check_ndim(x, 4, "x")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")


def _lrn_denominator(x, size, alpha, k):
    """D[n,c] = k + alpha/size * sum_{j in W(c)} x[n,j]^2  (per pixel)."""
    C = x.shape[1]
    sq = x * x
    D = np.empty_like(x)
    for c in range(C):
        D[:, c] = k + (alpha / size) * sq[:, _lrn_window(c, size, C)].sum(axis=1)
    return D


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization, exactly torch.nn.functional.local_response_norm.

    y[n,c] = x[n,c] / (k + alpha/size * sum_{j in W(c)} x[n,j]^2)^beta,
    W(c) = channels c - size//2 .. c + (size-1)//2 clipped to [0, C).
    alpha is divided by size (as PyTorch and Caffe do); the AlexNet paper's alpha_paper
    corresponds to alpha = alpha_paper * size here.
    """
    x = _float_array(x, "x")
    _lrn_check(x, size)
    return x / _lrn_denominator(x, size, alpha, k) ** beta


def lrn_backward(dy, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Gradient of lrn.

    With D_c = k + alpha/size * sum_{j in W(c)} x_j^2 and y_c = x_c D_c^-beta:
      dx_i = dy_i D_i^-beta - (2 alpha beta / size) x_i sum_{c : i in W(c)} dy_c x_c D_c^(-beta-1)
    and i in W(c)  <=>  c in [i - (size-1)//2, i + size//2] (clipped to [0, C)).
    """
    x = _float_array(x, "x")
    dy = _float_array(dy, "dy", x.dtype)
    _lrn_check(x, size)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    C = x.shape[1]
    D = _lrn_denominator(x, size, alpha, k)
    T = dy * x * D ** (-beta - 1)
    dx = dy * D ** (-beta)
    coef = 2.0 * alpha * beta / size
    for i in range(C):
        lo = max(i - (size - 1) // 2, 0)
        hi = min(i + size // 2, C - 1)
        dx[:, i] -= coef * x[:, i] * T[:, lo : hi + 1].sum(axis=1)
    return dx


# --------------------------------------------------------------------------------------------
# LCN (local contrast normalization, Jarrett et al. 2009)
# --------------------------------------------------------------------------------------------


def _gaussian_window(size, sigma, dtype):
    """G[p,q] proportional to exp(-(dp^2 + dq^2) / (2 sigma^2)), dp,dq = offsets from the centre,
    normalised to sum 1 (built directly in 2-D)."""
    r = size // 2
    d = np.arange(-r, r + 1, dtype=np.float64)
    dp, dq = np.meshgrid(d, d, indexing="ij")
    # Scaled offsets first: sigma**2 underflows for sigma below ~1e-154.
    G = np.exp(-0.5 * ((dp / sigma) ** 2 + (dq / sigma) ** 2))
    return (G / G.sum()).astype(dtype)


def _corr_same(img, G):
    """out[n,h,w] = sum_{p,q} G[p,q] * img[n, h+p-r, w+q-r]  (zero outside the image)."""
    N, H, W = img.shape
    size = G.shape[0]
    r = size // 2
    imgp = np.pad(img, ((0, 0), (r, r), (r, r)))
    out = np.zeros_like(img)
    for p in range(size):
        for q in range(size):
            out += G[p, q] * imgp[:, p : p + H, q : q + W]
    return out


def _corr_same_adjoint(g, G):
    """Adjoint of _corr_same: out[n,h',w'] = sum_{h,w,p,q : h+p-r=h', w+q-r=w'} G[p,q] g[n,h,w]."""
    N, H, W = g.shape
    size = G.shape[0]
    r = size // 2
    outp = np.zeros((N, H + 2 * r, W + 2 * r), dtype=g.dtype)
    for p in range(size):
        for q in range(size):
            outp[:, p : p + H, q : q + W] += G[p, q] * g
    return outp[:, r : r + H, r : r + W]


def _lcn_check(x, size, sigma, eps):
    _check_ndim(x, 4, "x")
    if (
        not isinstance(size, (int, np.integer))
        or isinstance(size, bool)
        or size < 1
        or size % 2 == 0
    ):
        raise ValueError(f"size: expected a positive odd int, got {size!r}")
    if not sigma > 0:
        raise ValueError(f"sigma: expected > 0, got {sigma!r}")
    if not eps >= 0:
        raise ValueError(f"eps: expected >= 0, got {eps!r}")


def _lcn_forward(x, size, sigma, eps):
    """All intermediates of the LCN forward pass (see lcn)."""
    N, C, H, W = x.shape
    dt = x.dtype
    G = _gaussian_window(size, sigma, dt)
    Nmask = _corr_same(np.ones((1, H, W), dtype=dt), G)[0]  # sum of G over inside taps
    # LCN is invariant to adding a constant to a sample, so work on x - x[n,0,0,0]: identical
    # in exact arithmetic, but a constant image then gives v == 0 exactly (no rounding residue
    # amplified by 1/eps) and a large DC offset costs no precision.
    xc = x - x[:, :1, :1, :1]
    m = _corr_same(xc.mean(axis=1), G) / Nmask  # (N,H,W)
    v = xc - m[:, None]  # (N,C,H,W)
    s = _corr_same((v * v).mean(axis=1), G) / Nmask  # (N,H,W), >= 0
    sig = np.sqrt(s)
    cmean = sig.mean(axis=(1, 2))  # (N,)
    d = np.maximum(np.maximum(cmean[:, None, None], sig), dt.type(eps))
    return dict(G=G, Nmask=Nmask, v=v, sig=sig, cmean=cmean, d=d)


def lcn(x, size=9, sigma=2.0, eps=1e-4):
    """Local contrast normalization (Jarrett et al. 2009), per sample n:

    G       : size x size Gaussian window (std sigma) normalised to sum 1
    Nmask   = sum of G[p,q] over the taps (h+dp, w+dq) inside the image
    m[h,w]  = (1/Nmask) sum_{c,p,q} (G[p,q]/C) x[c, h+dp, w+dq]        (zero outside the image)
    v       = x - m
    s[h,w]  = (1/Nmask) sum_{c,p,q} (G[p,q]/C) v[c, h+dp, w+dq]^2,  sigma_map = sqrt(s)
    cmean   = mean over (h,w) of sigma_map
    y       = v / max(cmean, sigma_map, eps)
    A constant image maps to 0.
    """
    x = _float_array(x, "x")
    _lcn_check(x, size, sigma, eps)
    f = _lcn_forward(x, size, sigma, eps)
    return f["v"] / f["d"][:, None]


def lcn_backward(dy, x, size=9, sigma=2.0, eps=1e-4):
    """Exact gradient of lcn (chain rule through y = v/d, d, sigma_map, cmean, s, v, m).

    gv      = dy / d                                    (direct term, per channel)
    gd      = -sum_c dy_c v_c / d^2
    d = max(cmean, sigma_map, eps) routes gd (subgradient convention):
              to sigma_map[h,w] if sigma_map >= cmean and sigma_map >= eps,
              else to cmean if cmean >= eps, else nowhere (eps is a constant)
    gsigma += (sum of gd routed to cmean) / (H*W)       (cmean is the mean of sigma_map)
    gs      = gsigma / (2 sigma_map), taken as 0 where sigma_map == 0
    s = corr(mean_c v^2)/Nmask  =>  gv_c += 2 v_c / C * corrT(gs / Nmask)
    v = x - m                   =>  gx_c  = gv_c,  gm = -sum_c gv_c
    m = corr(mean_c x)/Nmask    =>  gx_c += corrT(gm / Nmask) / C
    (corrT is the adjoint of the zero-padded correlation with G.)
    """
    x = _float_array(x, "x")
    dy = _float_array(dy, "dy", x.dtype)
    _lcn_check(x, size, sigma, eps)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    N, C, H, W = x.shape
    f = _lcn_forward(x, size, sigma, eps)
    G, Nmask, v, sig, cmean, d = f["G"], f["Nmask"], f["v"], f["sig"], f["cmean"], f["d"]

    # y = v / d
    gv = dy / d[:, None]
    gd = -(dy * v).sum(axis=1) / (d * d)

    # d = max(cmean, sigma_map, eps)
    to_sig = (sig >= cmean[:, None, None]) & (sig >= eps)
    to_cmean = ~to_sig & (cmean >= eps)[:, None, None]
    gsig = np.where(to_sig, gd, 0)
    gcmean = np.where(to_cmean, gd, 0).sum(axis=(1, 2))  # (N,)

    # cmean = mean(sigma_map)
    gsig = gsig + gcmean[:, None, None] / (H * W)

    # sigma_map = sqrt(s), derivative 0 where s == 0
    gs = np.zeros_like(gsig)
    pos = sig > 0
    gs[pos] = gsig[pos] / (2 * sig[pos])

    # s = corr(mean_c v^2) / Nmask
    gq = _corr_same_adjoint(gs / Nmask, G)  # grad of mean_c v^2
    gv = gv + (2.0 / C) * v * gq[:, None]

    # v = x - m ;  m = corr(mean_c x) / Nmask
    gm = -gv.sum(axis=1)
    gxbar = _corr_same_adjoint(gm / Nmask, G)
    return gv + gxbar[:, None] / C
