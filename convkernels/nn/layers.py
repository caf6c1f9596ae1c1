"""Layers: each holds its parameters and what its backward needs, and calls one kernel each way.

A layer's forward(x) returns y and remembers what backward needs; backward(dy) returns dx and
*overwrites* each parameter's .grad. Layers know nothing of pointers or threads: the arithmetic
that a kernel does stays in convkernels.ops; only the small elementwise pieces no kernel covers
(sigmoid, dropout masks, the per-channel scale of LeNet's subsampling) are array code here, written
against `xp = array_module(x)`: NumPy on the host, CuPy when the network lives on the GPU
(Sequential.to("cuda")), so every layer runs unchanged on either and data never leaves the
device between layers.
"""

import numpy as np

from .. import ops
from .._device import array_module, to_device, to_host
from . import init


class Parameter:
    """A trainable array and its gradient (same shape and dtype)."""

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Layer:
    """Base class: no parameters, training mode on."""

    training = True
    # Set to False on a network's first layer: no one needs the gradient of the input images.
    needs_input_grad = True

    def parameters(self):
        """(name, Parameter) pairs, in a fixed order."""
        return []

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def num_parameters(self):
        return sum(p.size for _, p in self.parameters())


class Conv2d(Layer):
    """2-D convolution. `connections` (K, C) of 0/1, if given, keeps only those channel pairs
    (LeNet-5's C3 table): the masked weights stay zero and are not counted as parameters."""

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
        rng=None,
        initializer=init.glorot_uniform,
        connections=None,
        dtype=np.float32,
    ):
        rng = rng if rng is not None else np.random.default_rng(0)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(initializer(shape, rng, dtype=dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype)) if bias else None
        self.mask = None
        if connections is not None:
            connections = np.asarray(connections, dtype=dtype)
            if connections.shape != shape[:2]:
                raise ValueError(
                    f"Conv2d: connections must have shape {shape[:2]}, got {connections.shape}"
                )
            self.mask = np.ascontiguousarray(np.broadcast_to(connections[:, :, None, None], shape))
            self.weight.data *= self.mask
        self.conv_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def parameters(self):
        return [("weight", self.weight)] + ([("bias", self.bias)] if self.bias else [])

    def num_parameters(self):
        weights = self.weight.size if self.mask is None else int(self.mask.sum())
        return weights + (self.bias.size if self.bias else 0)

    def forward(self, x, relu=False):
        """relu=True: relu(conv), fused into the kernel (Sequential asks for it when a ReLU
        follows)."""
        self.x = x
        bias = self.bias.data if self.bias else None
        return ops.conv2d(x, self.weight.data, bias, relu=relu, **self.conv_args)

    def backward(self, dy):
        self.weight.grad = ops.conv2d_backward_weight(
            self.x, dy, self.weight.shape, **self.conv_args
        )
        if self.mask is not None:
            self.weight.grad *= self.mask
        if self.bias:
            self.bias.grad = ops.conv2d_backward_bias(dy)
        if not self.needs_input_grad:
            return None
        return ops.conv2d_backward_input(dy, self.weight.data, self.x.shape, **self.conv_args)


class Linear(Layer):
    """y = x W^T + b, with W of shape (out_features, in_features)."""

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        rng=None,
        initializer=init.glorot_uniform,
        dtype=np.float32,
    ):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.weight = Parameter(initializer((out_features, in_features), rng, dtype=dtype))
        self.bias = Parameter(np.zeros(out_features, dtype)) if bias else None

    def parameters(self):
        return [("weight", self.weight)] + ([("bias", self.bias)] if self.bias else [])

    def forward(self, x):
        self.x = x
        bias = self.bias.data if self.bias else None
        if array_module(x) is not np:  # the GPU has no GEMM op: a 1x1 convolution is one
            return ops.conv2d(_as_image(x), _as_image(self.weight.data), bias)[:, :, 0, 0]
        if bias is None:
            return ops.gemm(x, self.weight.data, trans_b=True)
        start = np.broadcast_to(bias, (x.shape[0], self.bias.size))
        return ops.gemm(x, self.weight.data, start, trans_b=True, beta=1.0)

    def backward(self, dy):
        if self.bias:
            # The bias gradient is the conv bias gradient of a 1x1 "image".
            self.bias.grad = ops.conv2d_backward_bias(_as_image(dy))
        if array_module(dy) is not np:
            w_shape = (*self.weight.shape, 1, 1)
            dw = ops.conv2d_backward_weight(_as_image(self.x), _as_image(dy), w_shape)
            self.weight.grad = dw.reshape(self.weight.shape)
            if not self.needs_input_grad:
                return None
            dx = ops.conv2d_backward_input(_as_image(dy), _as_image(self.weight.data),
                                           (*self.x.shape, 1, 1))  # fmt: skip
            return dx.reshape(self.x.shape)
        self.weight.grad = ops.gemm(dy, self.x, trans_a=True)
        return ops.gemm(dy, self.weight.data) if self.needs_input_grad else None


def _as_image(a):
    """(N, F) as (N, F, 1, 1): a view."""
    return a.reshape(*a.shape, 1, 1)


class MaxPool2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.args = dict(
            kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode
        )

    def forward(self, x):
        self.input_shape = x.shape
        y, self.idx = ops.max_pool2d(x, **self.args)
        return y

    def backward(self, dy):
        return ops.max_pool2d_backward(dy, self.idx, self.input_shape)


class AvgPool2d(Layer):
    def __init__(
        self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
    ):
        self.args = dict(
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
        )

    def forward(self, x):
        self.input_shape = x.shape
        return ops.avg_pool2d(x, **self.args)

    def backward(self, dy):
        return ops.avg_pool2d_backward(dy, self.input_shape, **self.args)


class ReLU(Layer):
    def __init__(self, negative_slope=0.0):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.x = x
        return ops.relu(x, self.negative_slope)

    def fused_forward(self, y):
        """Takes y = relu(x) that the layer before computed with the ReLU fused in (Conv2d);
        backward then reads y in place of x: with slope 0 both are positive at the same places,
        the only thing the gradient asks."""
        if self.negative_slope != 0:
            raise ValueError("ReLU: only a ReLU with negative_slope 0 can be fused")
        self.x = y
        return y

    def backward(self, dy):
        return ops.relu_backward(dy, self.x, self.negative_slope)


class LRN(Layer):
    """Cross-channel response normalization; alpha as PyTorch (the paper's alpha * size)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0):
        self.args = dict(size=size, alpha=alpha, beta=beta, k=k)

    def forward(self, x):
        self.x = x
        return ops.lrn(x, **self.args)

    def backward(self, dy):
        return ops.lrn_backward(dy, self.x, **self.args)


class LCN(Layer):
    """Local contrast normalization (Jarrett et al. 2009)."""

    def __init__(self, size=9, sigma=2.0, eps=1e-4):
        self.args = dict(size=size, sigma=sigma, eps=eps)

    def forward(self, x):
        self.x = x
        return ops.lcn(x, **self.args)

    def backward(self, dy):
        return ops.lcn_backward(dy, self.x, **self.args)


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)), a view."""

    def forward(self, x):
        self.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.input_shape)


class Dropout(Layer):
    """Zeroes each activation with probability p in training (scaling the rest by 1 / (1 - p),
    so evaluation needs no rescaling); the identity in eval mode."""

    def __init__(self, p=0.5, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def forward(self, x):
        if not self.training or self.p == 0:
            self.scale = None
            return x
        xp = array_module(x)
        if xp is np:
            keep = self.rng.random(x.shape) >= self.p
        else:  # drawn on the device, seeded from this layer's generator
            if getattr(self, "_device_rng_of", None) is not self.rng:
                self._device_rng = xp.random.RandomState(int(self.rng.integers(2**31)))
                self._device_rng_of = self.rng
            keep = self._device_rng.random_sample(x.shape) >= self.p
        self.scale = (keep / (1 - self.p)).astype(x.dtype)
        return x * self.scale

    def backward(self, dy):
        return dy if self.scale is None else dy * self.scale


class Tanh(Layer):
    """y = A tanh(S x); LeNet-5's squashing function is A = 1.7159, S = 2/3 (the defaults)."""

    def __init__(self, amplitude=1.7159, slope=2.0 / 3.0):
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x):
        self.y = ops.tanh(x, self.amplitude, self.slope)
        return self.y

    def backward(self, dy):
        return ops.tanh_backward(dy, self.y, self.amplitude, self.slope)


class Sigmoid(Layer):
    def forward(self, x):
        self.y = (1 / (1 + array_module(x).exp(-x))).astype(x.dtype, copy=False)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Subsample2d(Layer):
    """LeNet-5's S2/S4: the sum over each 2x2 (or k x k) block, times a trainable per-channel
    coefficient, plus a trainable per-channel bias. Squash it with a following Tanh.

    That is a depthwise k x k convolution of stride k whose k*k weights per channel are one
    shared coefficient, so the convolution kernels do all the arithmetic on activations; the
    tying only sums each channel's k*k weight gradients into the coefficient's."""

    def __init__(self, channels, kernel_size=2, dtype=np.float32):
        self.kernel_size = kernel_size
        self.coefficient = Parameter(np.ones(channels, dtype))
        self.bias = Parameter(np.zeros(channels, dtype))
        self.conv_args = dict(stride=kernel_size, groups=channels)

    def parameters(self):
        return [("coefficient", self.coefficient), ("bias", self.bias)]

    def tied_weight(self):
        coefficient, k = self.coefficient.data, self.kernel_size
        xp = array_module(coefficient)
        shape = (len(coefficient), 1, k, k)
        return xp.ascontiguousarray(xp.broadcast_to(coefficient[:, None, None, None], shape))

    def forward(self, x):
        self.x = x
        return ops.conv2d(x, self.tied_weight(), self.bias.data, **self.conv_args)

    def backward(self, dy):
        weight = self.tied_weight()
        weight_grad = ops.conv2d_backward_weight(self.x, dy, weight.shape, **self.conv_args)
        self.coefficient.grad = weight_grad.sum(axis=(1, 2, 3))
        self.bias.grad = ops.conv2d_backward_bias(dy)
        if not self.needs_input_grad:
            return None
        return ops.conv2d_backward_input(dy, weight, self.x.shape, **self.conv_args)


class RBF(Layer):
    """LeNet-5's output layer: y_i = sum_j (x_j - w_ij)^2, a penalty per class (lower is better).
    The centres (num_classes, in_features) start as random +-1 codes, like the paper's bitmaps."""

    def __init__(self, in_features, num_classes, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        codes = rng.choice(np.array([-1.0, 1.0], dtype), size=(num_classes, in_features))
        self.centres = Parameter(codes)

    def parameters(self):
        return [("centres", self.centres)]

    def forward(self, x):
        self.x = x
        diff = x[:, None, :] - self.centres.data[None, :, :]
        return array_module(x).einsum("nij,nij->ni", diff, diff).astype(x.dtype)

    def backward(self, dy):
        diff = self.x[:, None, :] - self.centres.data[None, :, :]
        weighted = 2 * dy[:, :, None] * diff
        self.centres.grad = -weighted.sum(axis=0).astype(dy.dtype)
        return weighted.sum(axis=1).astype(dy.dtype)


class Scale(Layer):
    """y = factor * x (turns RBF penalties into logits with factor -1)."""

    def __init__(self, factor):
        self.factor = factor

    def forward(self, x):
        return x * x.dtype.type(self.factor)

    def backward(self, dy):
        return dy * dy.dtype.type(self.factor)


def _fusable(layer, following):
    """A Conv2d whose output goes straight into a ReLU without slope: conv2d(relu=True)."""
    return type(layer) is Conv2d and type(following) is ReLU and following.negative_slope == 0


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse. A Conv2d followed by a ReLU
    (slope 0) runs as one kernel, the ReLU applied as the convolution writes its output (one
    pass less over the activation); fuse=False runs every layer by itself. The results are the
    same bit for bit."""

    def __init__(self, *layers, fuse=True):
        self.layers = list(layers)
        self.fuse = fuse
        if self.layers:
            self.layers[0].needs_input_grad = False

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def parameters(self):
        return [
            (f"{i}.{name}", p)
            for i, layer in enumerate(self.layers)
            for name, p in layer.parameters()
        ]

    def num_parameters(self):
        return sum(layer.num_parameters() for layer in self.layers)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def forward(self, x):
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            following = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if self.fuse and _fusable(layer, following):
                x = following.fused_forward(layer.forward(x, relu=True))
                i += 2
                continue
            x = layer.forward(x)
            i += 1
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:
                break
        return dy

    def to(self, device):
        """Moves the parameters (and their gradients) to "cpu" (NumPy) or "cuda" (CuPy, the
        current device); inputs must then live there too. Returns self."""
        for _, p in self.parameters():
            p.data, p.grad = to_device(p.data, device), to_device(p.grad, device)
        for layer in self.layers:
            if getattr(layer, "mask", None) is not None:
                layer.mask = to_device(layer.mask, device)
        return self

    def state_dict(self):
        """{name: NumPy array} of every parameter (copied from the device if there)."""
        return {name: to_host(p.data) for name, p in self.parameters()}

    def load_state_dict(self, state):
        params = dict(self.parameters())
        missing = set(params) - set(state)
        unexpected = set(state) - set(params)
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(
                    f"load_state_dict: {name} has shape {value.shape}, expected {p.data.shape}"
                )
            p.data = array_module(p.data).asarray(np.ascontiguousarray(value, p.data.dtype))

    def save(self, path):
        np.savez(path, **self.state_dict())

    def load(self, path):
        with np.load(path, allow_pickle=False) as f:
            self.load_state_dict({k: f[k] for k in f.files})
