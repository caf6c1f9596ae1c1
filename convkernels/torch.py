"""PyTorch interop: autograd Functions and torch.nn drop-in layers over the convkernels ops.

    import convkernels.torch as ckt
    model.conv1 = ckt.Conv2d(1, 6, 5, padding=2)       # a torch.nn.Conv2d whose math is ours
    y = ckt.conv2d(x, w, b, stride=2)                  # like torch.nn.functional.conv2d
    model = ckt.convert(model)                         # swap every supported torch.nn layer

Every forward and backward runs the convkernels kernels (convkernels.ops). Tensors go in
without copies (DLPack: a C-contiguous CPU tensor is read in place, a non-contiguous one is
copied by the op first) and results come back as tensors that wrap the op's NumPy output
(torch.from_numpy, no copy). Backward passes compute only the gradients autograd asks for and
are not themselves differentiable (no double backward). float32 and float64 CPU tensors only:
CUDA tensors are not supported yet (NotImplementedError), other dtypes raise TypeError.

The layers subclass their torch.nn counterparts, take the same arguments with the same
defaults, initialise their parameters the same way and have the same state_dict keys, so
weights move freely between the two. Options the kernels lack raise ValueError when the layer
is built: Conv2d's padding_mode other than 'zeros' (and padding='same' that needs uneven
padding), MaxPool2d's dilation, AvgPool2d's divisor_override.

This module imports torch; ``import convkernels`` alone never does.
"""

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "convkernels.torch needs PyTorch, which is not installed: pip install torch "
        "(or pip install 'convkernels[torch]'). The rest of convkernels works without it."
    ) from e

import copy
import functools

from torch import nn

from . import ops

__all__ = [
    "Conv2dFunction",
    "MaxPool2dFunction",
    "AvgPool2dFunction",
    "ReLUFunction",
    "LRNFunction",
    "LCNFunction",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "relu",
    "leaky_relu",
    "local_response_norm",
    "local_contrast_norm",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "ReLU",
    "LeakyReLU",
    "LocalResponseNorm",
    "LocalContrastNorm",
    "convert",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------------------------
# Tensors in and out


def _check(op, **tensors):
    """Every tensor argument (None skipped) a strided float32/float64 CPU tensor, one dtype."""
    first = None
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cpu":
            what = "CUDA tensors are" if t.device.type == "cuda" else f"{t.device.type} tensors are"
            raise NotImplementedError(
                f"{op}: {name} is on {t.device}; {what} not supported yet (convkernels has CPU "
                f"kernels only for now): move it with .cpu(), or use torch.nn on that device"
            )
        if t.layout != torch.strided:
            raise TypeError(f"{op}: {name} must be a dense (strided) tensor, got {t.layout}")
        if t.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype}")
        if first is None:
            first = (name, t.dtype)
        elif t.dtype != first[1]:
            raise TypeError(
                f"{op}: {name} is {t.dtype} but {first[0]} is {first[1]}; "
                "all tensors must share one dtype"
            )


def _arg(t):
    """The tensor as the ops read it: detached (DLPack refuses tensors that require grad)."""
    t = t.detach()
    return t.resolve_neg() if t.is_neg() else t


def _tensor(a):
    """A tensor wrapping the op's NumPy result, without copying it."""
    return torch.from_numpy(a)


def _ones(value):
    return value == 1 or (isinstance(value, (tuple, list)) and all(v == 1 for v in value))


class _NotTwiceDifferentiable(torch.autograd.Function):
    """Passes a gradient through; raises if autograd ever differentiates through it."""

    @staticmethod
    def forward(ctx, op, grad, *_depends_on):
        ctx.op = op
        return grad.view_as(grad)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(
            f"convkernels.torch: the backward of {ctx.op} is not differentiable itself; double "
            "backward (differentiating a gradient taken with create_graph=True) is not supported"
        )


def _first_order(op):
    """For a backward: runs it, and when autograd records a graph (create_graph=True) marks its
    results so that differentiating them raises, instead of silently treating the saved inputs
    as constants (torch's once_differentiable only looks at the incoming gradients)."""

    def decorate(backward):
        @functools.wraps(backward)
        def wrapper(ctx, *grads):
            outs = backward(ctx, *grads)
            if not torch.is_grad_enabled():
                return outs
            sources = [t for t in (*grads, *ctx.saved_tensors) if isinstance(t, torch.Tensor)]
            sources = [t for t in sources if t.requires_grad]
            if not sources:
                return outs
            return tuple(
                o if o is None else _NotTwiceDifferentiable.apply(op, o, *sources) for o in outs
            )

        return wrapper

    return decorate


# ---------------------------------------------------------------------------------------------
# autograd Functions: apply(...) with the arguments of the matching convkernels op


class Conv2dFunction(torch.autograd.Function):
    """apply(x, weight, bias_or_None, stride, padding, dilation, groups) -> y."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        _check("conv2d", x=x, w=weight, b=bias)  # the names the ops use in their errors
        conf = (stride, padding, dilation, groups)
        y = ops.conv2d(_arg(x), _arg(weight), None if bias is None else _arg(bias), *conf)
        ctx.conf = conf
        ctx.save_for_backward(x, weight)
        return _tensor(y)

    @staticmethod
    @_first_order("conv2d")
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dy = _arg(dy)
        dx = dw = db = None
        if need_x:
            dx = _tensor(ops.conv2d_backward_input(dy, _arg(weight), x.shape, *ctx.conf))
        if need_w:
            dw = _tensor(ops.conv2d_backward_weight(_arg(x), dy, weight.shape, *ctx.conf))
        if need_b:
            db = _tensor(ops.conv2d_backward_bias(dy))
        return dx, dw, db, None, None, None, None


class MaxPool2dFunction(torch.autograd.Function):
    """apply(x, kernel_size, stride, padding, ceil_mode) -> (y, indices); indices int64, flat
    h * W + w per (n, c) plane as PyTorch's return_indices, and not differentiable."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, ceil_mode=False):
        _check("max_pool2d", x=x)
        y, idx = ops.max_pool2d(_arg(x), kernel_size, stride, padding, ceil_mode)
        y, idx = _tensor(y), _tensor(idx)
        ctx.mark_non_differentiable(idx)
        ctx.input_shape = x.shape
        ctx.save_for_backward(idx)  # saved, so an in-place change to it is caught
        return y, idx

    @staticmethod
    @_first_order("max_pool2d")
    def backward(ctx, dy, _didx):
        (idx,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _tensor(ops.max_pool2d_backward(_arg(dy), _arg(idx), ctx.input_shape))
        return dx, None, None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """apply(x, kernel_size, stride, padding, ceil_mode, count_include_pad) -> y."""

    @staticmethod
    def forward(
        ctx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
    ):
        _check("avg_pool2d", x=x)
        conf = (kernel_size, stride, padding, ceil_mode, count_include_pad)
        y = ops.avg_pool2d(_arg(x), *conf)
        ctx.conf = conf
        ctx.input_shape = x.shape
        return _tensor(y)

    @staticmethod
    @_first_order("avg_pool2d")
    def backward(ctx, dy):
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _tensor(ops.avg_pool2d_backward(_arg(dy), ctx.input_shape, *ctx.conf))
        return dx, None, None, None, None, None


class ReLUFunction(torch.autograd.Function):
    """apply(x, negative_slope=0.0, inplace=False) -> y (any shape).

    inplace=True writes the result into x and returns x, as torch.relu_ does (the kernel
    computes out of place; the result is then copied in). It needs negative_slope >= 0.
    """

    @staticmethod
    def forward(ctx, x, negative_slope=0.0, inplace=False):
        _check("relu", x=x)
        y = ops.relu(_arg(x), negative_slope)
        ctx.negative_slope = negative_slope
        if not inplace:
            ctx.save_for_backward(x)
            return _tensor(y)
        if negative_slope < 0:
            raise ValueError(
                f"relu: inplace=True needs negative_slope >= 0, got {negative_slope} (the "
                "gradient is then read from the output, whose sign it would not recover)"
            )
        if ctx.needs_input_grad[0] and x.is_leaf:
            raise RuntimeError(
                "relu: a leaf tensor that requires grad cannot be changed in place "
                "(inplace=True); use inplace=False"
            )
        x.copy_(_tensor(y))
        ctx.mark_dirty(x)
        # For negative_slope >= 0 the output is > 0 exactly where the input is: backward
        # can read it in place of the overwritten input.
        ctx.save_for_backward(x)
        return x

    @staticmethod
    @_first_order("relu")
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _tensor(ops.relu_backward(_arg(dy), _arg(x), ctx.negative_slope))
        return dx, None, None


class LRNFunction(torch.autograd.Function):
    """apply(x, size, alpha, beta, k) -> y: torch.nn.functional.local_response_norm on NCHW."""

    @staticmethod
    def forward(ctx, x, size, alpha=1e-4, beta=0.75, k=1.0):
        _check("lrn", x=x)
        y = ops.lrn(_arg(x), size, alpha, beta, k)
        ctx.conf = (size, alpha, beta, k)
        ctx.save_for_backward(x)
        return _tensor(y)

    @staticmethod
    @_first_order("lrn")
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _tensor(ops.lrn_backward(_arg(dy), _arg(x), *ctx.conf))
        return dx, None, None, None, None


class LCNFunction(torch.autograd.Function):
    """apply(x, size, sigma, eps) -> y: local contrast normalization, as convkernels.lcn."""

    @staticmethod
    def forward(ctx, x, size=9, sigma=2.0, eps=1e-4):
        _check("lcn", x=x)
        y = ops.lcn(_arg(x), size, sigma, eps)
        ctx.conf = (size, sigma, eps)
        ctx.save_for_backward(x)
        return _tensor(y)

    @staticmethod
    @_first_order("lcn")
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _tensor(ops.lcn_backward(_arg(dy), _arg(x), *ctx.conf))
        return dx, None, None, None


# ---------------------------------------------------------------------------------------------
# Functional forms, with torch.nn.functional's signatures. (C, H, W) inputs are taken as a
# batch of one, as torch.nn.functional does.


def _batched(op, x, fn):
    if isinstance(x, torch.Tensor) and x.dim() == 3:
        return fn(x.unsqueeze(0)).squeeze(0)
    if isinstance(x, torch.Tensor) and x.dim() != 4:
        raise ValueError(f"{op}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got {x.dim()}-D")
    return fn(x)


def _same_padding(kernel_size, dilation, stride, op="conv2d"):
    """The symmetric padding for padding='same', or ValueError where it would be uneven."""
    if not _ones(stride):
        raise ValueError(f"{op}: padding='same' needs stride 1, got {stride}")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    total = (dh * (kh - 1), dw * (kw - 1))
    if total[0] % 2 or total[1] % 2:
        raise ValueError(
            f"{op}: padding='same' with kernel {(kh, kw)} and dilation {(dh, dw)} needs uneven "
            "padding (one more on the bottom/right), which convkernels does not support; pad "
            "the input with torch.nn.functional.pad and use padding=0"
        )
    return total[0] // 2, total[1] // 2


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d on the convkernels kernels (padding may be 'valid'/'same')."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
                raise ValueError("conv2d: weight must be a 4-D tensor (K, C / groups, R, S)")
            padding = _same_padding(tuple(weight.shape[2:]), dilation, stride)
        else:
            raise ValueError(
                f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
            )
    return _batched(
        "conv2d",
        input,
        lambda x: Conv2dFunction.apply(x, weight, bias, stride, padding, dilation, groups),
    )


def max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """torch.nn.functional.max_pool2d on the convkernels kernels (dilation 1 only)."""
    if not _ones(dilation):
        raise ValueError(
            f"max_pool2d: dilation must be 1 (convkernels' max pooling has no dilation), "
            f"got {dilation!r}"
        )
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = None
    if isinstance(input, torch.Tensor) and input.dim() == 3:
        y, idx = MaxPool2dFunction.apply(
            input.unsqueeze(0), kernel_size, stride, padding, ceil_mode
        )
        y, idx = y.squeeze(0), idx.squeeze(0)
    else:
        if isinstance(input, torch.Tensor) and input.dim() != 4:
            raise ValueError(
                f"max_pool2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got {input.dim()}-D"
            )
        y, idx = MaxPool2dFunction.apply(input, kernel_size, stride, padding, ceil_mode)
    return (y, idx) if return_indices else y


def avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """torch.nn.functional.avg_pool2d on the convkernels kernels (no divisor_override)."""
    if divisor_override is not None:
        raise ValueError(
            f"avg_pool2d: divisor_override is not supported by convkernels (only None), "
            f"got {divisor_override!r}"
        )
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = None
    return _batched(
        "avg_pool2d",
        input,
        lambda x: AvgPool2dFunction.apply(
            x, kernel_size, stride, padding, ceil_mode, count_include_pad
        ),
    )


def relu(input, inplace=False):
    """torch.nn.functional.relu on the convkernels kernel (any shape)."""
    return ReLUFunction.apply(input, 0.0, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """torch.nn.functional.leaky_relu on the convkernels kernel (any shape)."""
    return ReLUFunction.apply(input, negative_slope, inplace)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """torch.nn.functional.local_response_norm: (N, C, *) inputs with at least 3 dimensions;
    dimensions after C are flattened into one (a view when possible) for the NCHW kernel."""
    if isinstance(input, torch.Tensor) and input.dim() != 4:
        if input.dim() < 3:
            raise ValueError(
                f"local_response_norm: input must have 3 or more dimensions (N, C, *), "
                f"got {input.dim()}-D"
            )
        shape = input.shape
        x = input.reshape(shape[0], shape[1], -1, 1)
        return LRNFunction.apply(x, size, alpha, beta, k).reshape(shape)
    return LRNFunction.apply(input, size, alpha, beta, k)


def local_contrast_norm(input, size=9, sigma=2.0, eps=1e-4):
    """convkernels.lcn (Jarrett et al. 2009) with autograd; (C, H, W) is a batch of one."""
    return _batched("local_contrast_norm", input, lambda x: LCNFunction.apply(x, size, sigma, eps))


# ---------------------------------------------------------------------------------------------
# torch.nn drop-ins. Each subclasses its torch.nn layer and adds no state, so parameters,
# initialisation, state_dict keys and repr are torch's; only the math is ours.


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d on the convkernels kernels; padding_mode='zeros' only."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        device=None,
        dtype=None,
    ):
        _check_padding_mode(padding_mode)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        if self.padding == "same":
            _same_padding(self.kernel_size, self.dilation, self.stride, "Conv2d")

    def _conv_forward(self, input, weight, bias):
        _check_padding_mode(self.padding_mode)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)


def _check_padding_mode(padding_mode):
    if padding_mode != "zeros":
        raise ValueError(
            f"Conv2d: padding_mode must be 'zeros' (the only mode convkernels supports), "
            f"got {padding_mode!r}"
        )


class MaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d on the convkernels kernels; dilation 1 only."""

    def __init__(
        self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False
    ):
        if not _ones(dilation):
            raise ValueError(
                f"MaxPool2d: dilation must be 1 (convkernels' max pooling has no dilation), "
                f"got {dilation!r}"
            )
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)

    def forward(self, input):
        return max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class AvgPool2d(nn.AvgPool2d):
    """torch.nn.AvgPool2d on the convkernels kernels; divisor_override=None only."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ):
        if divisor_override is not None:
            raise ValueError(
                f"AvgPool2d: divisor_override is not supported by convkernels (only None), "
                f"got {divisor_override!r}"
            )
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, input):
        return avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class ReLU(nn.ReLU):
    """torch.nn.ReLU on the convkernels kernel."""

    def forward(self, input):
        return relu(input, self.inplace)


class LeakyReLU(nn.LeakyReLU):
    """torch.nn.LeakyReLU on the convkernels kernel."""

    def forward(self, input):
        return leaky_relu(input, self.negative_slope, self.inplace)


class LocalResponseNorm(nn.LocalResponseNorm):
    """torch.nn.LocalResponseNorm on the convkernels kernels (alpha is divided by size, as in
    PyTorch and Caffe; the AlexNet paper's alpha=1e-4 with n=5 is alpha=5e-4 here)."""

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)


class LocalContrastNorm(nn.Module):
    """Local contrast normalization (Jarrett et al. 2009), convkernels.lcn; no parameters."""

    def __init__(self, size=9, sigma=2.0, eps=1e-4):
        super().__init__()
        self.size = size
        self.sigma = sigma
        self.eps = eps

    def forward(self, input):
        return local_contrast_norm(input, self.size, self.sigma, self.eps)

    def extra_repr(self):
        return f"size={self.size}, sigma={self.sigma}, eps={self.eps}"


# ---------------------------------------------------------------------------------------------
# Whole models

_SWAPS = {
    nn.Conv2d: (Conv2d, lambda m: m.padding_mode == "zeros" and _same_ok(m)),
    nn.MaxPool2d: (MaxPool2d, lambda m: _ones(m.dilation)),
    nn.AvgPool2d: (AvgPool2d, lambda m: m.divisor_override is None),
    nn.ReLU: (ReLU, lambda m: True),
    nn.LeakyReLU: (LeakyReLU, lambda m: True),
    nn.LocalResponseNorm: (LocalResponseNorm, lambda m: True),
}


def _same_ok(m):
    if m.padding != "same":
        return True
    try:
        _same_padding(m.kernel_size, m.dilation, m.stride)
    except ValueError:
        return False
    return True


def convert(module, inplace=False):
    """The module with every torch.nn layer that convkernels can run swapped for its drop-in.

    Conv2d (padding_mode 'zeros'), MaxPool2d (dilation 1), AvgPool2d (no divisor_override),
    ReLU, LeakyReLU and LocalResponseNorm are swapped, keeping their parameters, buffers, hooks
    and training flag; any other layer, or one with an option the kernels lack, is kept as it
    is. Works on a deep copy unless inplace=True. The module may itself be such a layer.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"convert: module must be a torch.nn.Module, got {type(module).__name__}")
    if not inplace:
        module = copy.deepcopy(module)
    for m in module.modules():
        swap = _SWAPS.get(type(m))  # exact type: subclasses of torch's layers are left alone
        if swap is not None and swap[1](m):
            m.__class__ = swap[0]  # the drop-ins add no state: the same object, our forward
    return module
