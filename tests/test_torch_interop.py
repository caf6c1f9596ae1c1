"""convkernels.torch: autograd Functions and torch.nn drop-ins running the convkernels kernels."""

import pathlib
import re
import subprocess
import sys

import helpers  # noqa: F401  (CONVKERNELS_REQUIRE_TORCH=1 turns a missing torch into a failure)
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import convkernels as ck  # noqa: E402
import convkernels.torch as ckt  # noqa: E402
from convkernels import _C, ops  # noqa: E402

F64 = torch.float64
DTYPES = [torch.float32, torch.float64]
ROOT = pathlib.Path(__file__).resolve().parents[1]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype=F64, seed=0, grad=False):
    return torch.randn(*shape, dtype=dtype, generator=gen(seed)).requires_grad_(grad)


def distinct(*shape, dtype=F64, seed=0, grad=False):
    """Values far apart (no ties, so max pooling is differentiable everywhere)."""
    n = int(np.prod(shape))
    x = (torch.randperm(n, generator=gen(seed)).to(dtype) - n / 2) / n
    return x.reshape(shape).requires_grad_(grad)


def away_from_zero(*shape, seed=0, grad=False):
    x = randn(*shape, seed=seed)
    return (x + 0.2 * torch.sign(x)).requires_grad_(grad)


def close(actual, expected, dtype, scale=1.0):
    """float64: to rounding; float32: to a few ulps of the result's scale."""
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    assert actual.dtype == dtype
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------------------------------
# Optional dependency


def test_import_convkernels_does_not_import_torch():
    code = "import sys, convkernels; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_missing_torch_is_a_clear_import_error():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
        "try:\n    import convkernels.torch\n"
        "except ImportError as e:\n    print(e)\n"
        "else:\n    raise SystemExit('no ImportError')\n"
        "import convkernels; print('core ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "convkernels.torch needs PyTorch, which is not installed: pip install torch" in out
    assert "core ok" in out


# ---------------------------------------------------------------------------------------------
# gradcheck, float64, every Function


def gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


CONV_CASES = [
    # (N, C, H, W), (K, C / groups, R, S), bias, stride, padding, dilation, groups
    ((2, 3, 6, 7), (4, 3, 3, 3), True, 1, 1, 1, 1),
    ((1, 4, 7, 6), (6, 2, 3, 2), True, (2, 1), (1, 0), 1, 2),
    ((2, 2, 8, 8), (3, 2, 3, 3), False, 2, 2, 2, 1),
    ((1, 6, 5, 6), (3, 2, 2, 3), True, (1, 2), (0, 1), (2, 1), 3),
]


@pytest.mark.parametrize("x_shape, w_shape, bias, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d_gradcheck(x_shape, w_shape, bias, stride, padding, dilation, groups):
    x = randn(*x_shape, seed=1, grad=True)
    w = randn(*w_shape, seed=2, grad=True)
    b = randn(w_shape[0], seed=3, grad=True) if bias else None
    conf = (stride, padding, dilation, groups)
    gradcheck(lambda x, w, b: ckt.Conv2dFunction.apply(x, w, b, *conf), x, w, b)


@pytest.mark.parametrize(
    "shape, kernel, stride, padding, ceil_mode",
    [
        ((2, 3, 6, 6), 2, None, 0, False),
        ((1, 2, 7, 8), 3, 2, 1, True),
        ((2, 2, 7, 9), (2, 3), (1, 2), (1, 1), False),
        ((1, 3, 6, 7), 3, 2, 0, True),
    ],
)
def test_max_pool2d_gradcheck(shape, kernel, stride, padding, ceil_mode):
    x = distinct(*shape, seed=4, grad=True)
    gradcheck(lambda x: ckt.MaxPool2dFunction.apply(x, kernel, stride, padding, ceil_mode)[0], x)


@pytest.mark.parametrize(
    "shape, kernel, stride, padding, ceil_mode, count_include_pad",
    [
        ((2, 3, 6, 6), 2, None, 0, False, True),
        ((1, 2, 7, 8), 3, 2, 1, True, True),
        ((1, 2, 7, 8), 3, 2, 1, True, False),
        ((2, 2, 7, 9), (2, 3), (1, 2), (1, 1), False, False),
    ],
)
def test_avg_pool2d_gradcheck(shape, kernel, stride, padding, ceil_mode, count_include_pad):
    x = randn(*shape, seed=5, grad=True)
    conf = (kernel, stride, padding, ceil_mode, count_include_pad)
    gradcheck(lambda x: ckt.AvgPool2dFunction.apply(x, *conf), x)


@pytest.mark.parametrize("negative_slope", [0.0, 0.01, 0.2, -0.5])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,), (3, 4)])
def test_relu_gradcheck(shape, negative_slope):
    x = away_from_zero(*shape, seed=6, grad=True)
    gradcheck(lambda x: ckt.ReLUFunction.apply(x, negative_slope), x)
    if negative_slope >= 0:  # in place, on a non-leaf copy
        gradcheck(lambda x: ckt.ReLUFunction.apply(x * 1, negative_slope, True), x)


@pytest.mark.parametrize(
    "size, alpha, beta, k", [(5, 1e-4 * 5, 0.75, 2.0), (3, 0.5, 0.75, 1.0), (2, 1.0, 0.5, 0.5)]
)
def test_lrn_gradcheck(size, alpha, beta, k):
    x = randn(2, 6, 3, 4, seed=7, grad=True)
    gradcheck(lambda x: ckt.LRNFunction.apply(x, size, alpha, beta, k), x)


@pytest.mark.parametrize(
    "shape, size, sigma, eps",
    [((2, 3, 6, 7), 3, 1.0, 1e-4), ((1, 2, 7, 7), 5, 2.0, 1e-4), ((2, 1, 5, 6), 3, 1.5, 10.0)],
)
def test_lcn_gradcheck(shape, size, sigma, eps):
    x = randn(*shape, seed=8, grad=True)
    gradcheck(lambda x: ckt.LCNFunction.apply(x, size, sigma, eps), x)


def spy(monkeypatch, name):
    calls = []
    real = getattr(ops, name)

    def wrapper(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, name, wrapper)
    return calls


@pytest.mark.parametrize(
    "wanted",
    [("x",), ("w",), ("b",), ("x", "w"), ("x", "w", "b")],
    ids=lambda w: "+".join(w),
)
def test_conv2d_backward_computes_only_what_is_needed(monkeypatch, wanted):
    calls = []
    for name in ("conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward_bias"):
        calls.append(spy(monkeypatch, name))
    x = randn(2, 3, 5, 5, seed=1, grad="x" in wanted)
    w = randn(4, 3, 3, 3, seed=2, grad="w" in wanted)
    b = randn(4, seed=3, grad="b" in wanted)
    ckt.conv2d(x, w, b, padding=1).sum().backward()
    assert [bool(c) for c in calls] == [n in wanted for n in ("x", "w", "b")]
    for name, t in zip("xwb", (x, w, b)):
        assert (t.grad is not None) == (name in wanted)


def test_no_backward_op_runs_when_nothing_needs_a_gradient(monkeypatch):
    calls = spy(monkeypatch, "max_pool2d_backward") + spy(monkeypatch, "relu_backward")
    y = ckt.relu(ckt.max_pool2d(randn(1, 2, 4, 4), 2))
    assert not y.requires_grad and y.grad_fn is None and calls == []


def test_double_backward_is_an_error_not_a_silent_zero():
    x = randn(1, 2, 5, 5, seed=1, grad=True)
    w = randn(3, 2, 3, 3, seed=2, grad=True)
    # d(sum conv)/dx depends on w only through the saved tensors: torch's once_differentiable
    # would let gx.sum().backward() treat w as a constant and leave w.grad silently wrong.
    (gx,) = torch.autograd.grad(ckt.conv2d(x, w).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="backward of conv2d is not differentiable itself"):
        gx.sum().backward()
    y = ckt.max_pool2d(x, 2)
    dy = torch.ones_like(y, requires_grad=True)
    (gx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    with pytest.raises(RuntimeError, match="backward of max_pool2d is not differentiable"):
        gx.sum().backward()
    # create_graph=True alone is fine, and the first-order gradient is unchanged.
    (gx2,) = torch.autograd.grad(ckt.relu(x).sum(), x, create_graph=True)
    assert torch.equal(gx2.detach(), (x > 0).to(x.dtype))


# ---------------------------------------------------------------------------------------------
# Modules against torch.nn, float32 and float64


def conv_pair(*args, **kwargs):
    ref = nn.Conv2d(*args, **kwargs)
    ours = ckt.Conv2d(*args, **kwargs)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


MODULE_CASES = {
    "conv": (lambda: conv_pair(3, 8, 3, padding=1), (2, 3, 9, 8)),
    "conv-grouped": (
        lambda: conv_pair(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
        (2, 4, 9, 10),
    ),
    "conv-same-nobias": (lambda: conv_pair(3, 4, 5, padding="same", bias=False), (2, 3, 7, 6)),
    "conv-valid-dilated": (lambda: conv_pair(3, 5, 3, 2, "valid", 2), (1, 3, 11, 12)),
    "conv-unbatched": (lambda: conv_pair(3, 4, 3, padding=1), (3, 6, 6)),
    "maxpool": (lambda: (nn.MaxPool2d(2), ckt.MaxPool2d(2)), (2, 3, 8, 9)),
    "maxpool-ceil": (
        lambda: (nn.MaxPool2d(3, 2, 1, ceil_mode=True), ckt.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (2, 3, 8, 9),
    ),
    "maxpool-rect-unbatched": (
        lambda: (nn.MaxPool2d((2, 3), (1, 2)), ckt.MaxPool2d((2, 3), (1, 2))),
        (3, 7, 8),
    ),
    "avgpool": (lambda: (nn.AvgPool2d(2), ckt.AvgPool2d(2)), (2, 3, 8, 9)),
    "avgpool-ceil-pad": (
        lambda: (nn.AvgPool2d(3, 2, 1, True), ckt.AvgPool2d(3, 2, 1, True)),
        (2, 3, 8, 9),
    ),
    "avgpool-exclude-pad": (
        lambda: (nn.AvgPool2d(3, 2, 1, True, False), ckt.AvgPool2d(3, 2, 1, True, False)),
        (2, 3, 8, 9),
    ),
    "relu": (lambda: (nn.ReLU(), ckt.ReLU()), (2, 3, 4, 5)),
    "relu-2d": (lambda: (nn.ReLU(), ckt.ReLU()), (6, 7)),
    "leakyrelu": (lambda: (nn.LeakyReLU(), ckt.LeakyReLU()), (2, 3, 4, 5)),
    "leakyrelu-0.2": (lambda: (nn.LeakyReLU(0.2), ckt.LeakyReLU(0.2)), (2, 3, 4, 5)),
    "lrn-alexnet": (
        lambda: (nn.LocalResponseNorm(5, 5e-4, k=2.0), ckt.LocalResponseNorm(5, 5e-4, k=2.0)),
        (2, 8, 5, 6),
    ),
    "lrn-defaults": (lambda: (nn.LocalResponseNorm(2), ckt.LocalResponseNorm(2)), (2, 5, 4, 3)),
    "lrn-3d": (lambda: (nn.LocalResponseNorm(3, 0.5), ckt.LocalResponseNorm(3, 0.5)), (2, 6, 7)),
    "lrn-5d": (
        lambda: (nn.LocalResponseNorm(3, 0.5), ckt.LocalResponseNorm(3, 0.5)),
        (2, 6, 3, 4, 2),
    ),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_module_matches_torch_nn(case, dtype):
    make, shape = MODULE_CASES[case]
    torch.manual_seed(0)
    ref, ours = (m.to(dtype) for m in make())
    assert isinstance(ours, type(ref)) and type(ours).__module__ == "convkernels.torch"
    assert repr(ours) == repr(ref)
    x = distinct(*shape, dtype=dtype, seed=1) * 4  # no ties for max pooling
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_ours = ref(x_ref), ours(x_ours)
    close(y_ours, y_ref, dtype)
    dy = randn(*y_ref.shape, dtype=dtype, seed=2)
    y_ref.backward(dy)
    y_ours.backward(dy)
    close(x_ours.grad, x_ref.grad, dtype)
    for (name, p_ours), p_ref in zip(ours.named_parameters(), ref.parameters()):
        assert p_ours.grad is not None, name
        close(p_ours.grad, p_ref.grad, dtype, scale=float(p_ref.grad.abs().mean()))


def test_max_pool2d_indices_match_torch():
    x = distinct(2, 3, 9, 8, seed=3)
    y, idx = ckt.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)(x)
    y_ref, idx_ref = nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)(x)
    assert idx.dtype == torch.int64 and torch.equal(idx, idx_ref) and torch.equal(y, y_ref)
    y, idx = ckt.max_pool2d(x[0], 2, return_indices=True)  # unbatched
    assert torch.equal(idx, F.max_pool2d(x[0], 2, return_indices=True)[1])


def test_max_pool2d_indices_changed_in_place_are_caught():
    x = distinct(1, 1, 4, 4, grad=True)
    y, idx = ckt.max_pool2d(x, 2, return_indices=True)
    idx.zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("module", [ckt.ReLU(inplace=True), ckt.LeakyReLU(0.1, inplace=True)])
def test_inplace_relu_writes_its_input_like_torch(module):
    ref = nn.ReLU(inplace=True) if isinstance(module, ckt.ReLU) else nn.LeakyReLU(0.1, True)
    base_ref, base = away_from_zero(2, 3, 4, seed=9, grad=True), away_from_zero(2, 3, 4, seed=9)
    base.requires_grad_()
    h_ref, h = base_ref * 2, base * 2
    y_ref, y = ref(h_ref), module(h)
    assert y is h and torch.equal(h, h_ref)
    (y_ref * y_ref).sum().backward()
    (y * y).sum().backward()
    torch.testing.assert_close(base.grad, base_ref.grad, rtol=1e-12, atol=0)
    leaf = randn(3, grad=True)
    before = leaf.detach().clone()
    with pytest.raises(RuntimeError, match="leaf"):
        module(leaf)
    assert torch.equal(leaf.detach(), before), "the leaf was written before the error"
    with pytest.raises(ValueError, match="negative_slope >= 0"):
        ckt.leaky_relu(randn(3), -0.5, inplace=True)


def torch_lcn(x, size, sigma, eps):
    """LCN written with torch ops (autograd differentiates it): the formula in README."""
    _, _, H, W = x.shape
    r = size // 2
    d = torch.arange(-r, r + 1, dtype=x.dtype)
    G = torch.exp(-0.5 * ((d[:, None] / sigma) ** 2 + (d[None, :] / sigma) ** 2))
    G = (G / G.sum())[None, None]

    def corr(img):  # (N, H, W), zero outside the image
        return F.conv2d(img[:, None], G, padding=r)[:, 0]

    norm = corr(torch.ones(1, H, W, dtype=x.dtype))[0]
    v = x - (corr(x.mean(1)) / norm)[:, None]
    sig = torch.sqrt(corr((v * v).mean(1)) / norm)
    c = sig.mean((1, 2), keepdim=True).expand_as(sig)
    return v / torch.clamp(torch.maximum(c, sig), min=eps)[:, None]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("size, sigma, shape", [(9, 2.0, (2, 3, 12, 11)), (3, 1.0, (3, 6, 5))])
def test_local_contrast_norm_matches_a_torch_implementation(dtype, size, sigma, shape):
    module = ckt.LocalContrastNorm(size, sigma)
    assert repr(module) == f"LocalContrastNorm(size={size}, sigma={sigma}, eps=0.0001)"
    x = randn(*shape, dtype=dtype, seed=10)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    batched = x_ref if x.dim() == 4 else x_ref[None]
    y_ref = torch_lcn(batched, size, sigma, 1e-4).reshape(shape)
    y_ours = module(x_ours)
    close(y_ours, y_ref, dtype)
    dy = randn(*shape, dtype=dtype, seed=11)
    y_ref.backward(dy)
    y_ours.backward(dy)
    close(x_ours.grad, x_ref.grad, dtype)
    direct = ck.lcn(x.reshape(-1, *shape[-3:]), size, sigma).reshape(shape)
    np.testing.assert_array_equal(y_ours.detach().numpy(), direct)


# ---------------------------------------------------------------------------------------------
# state_dict, initialisation, whole models


def test_conv2d_initialises_and_saves_like_torch_nn():
    args = dict(in_channels=4, out_channels=6, kernel_size=(3, 5), stride=2, groups=2)
    torch.manual_seed(3)
    ref = nn.Conv2d(**args)
    torch.manual_seed(3)
    ours = ckt.Conv2d(**args)
    assert isinstance(ours, nn.Conv2d)
    assert ours.state_dict().keys() == ref.state_dict().keys() == {"weight", "bias"}
    for key, value in ours.state_dict().items():
        assert torch.equal(value, ref.state_dict()[key]), key
    # Round trip: torch.nn -> convkernels -> torch.nn, in both dtypes and without bias.
    for dtype in DTYPES:
        a = nn.Conv2d(**args, bias=False, dtype=dtype)
        b = ckt.Conv2d(**args, bias=False, dtype=dtype)
        c = nn.Conv2d(**args, bias=False, dtype=dtype)
        b.load_state_dict(a.state_dict())
        c.load_state_dict(b.state_dict())
        assert b.weight.dtype == dtype and torch.equal(c.weight, a.weight)
    defaults = ckt.Conv2d(3, 4, 3)
    assert (defaults.stride, defaults.padding, defaults.dilation, defaults.groups) == (
        (1, 1),
        (0, 0),
        (1, 1),
        1,
    )
    assert defaults.bias is not None and defaults.padding_mode == "zeros"


def lenet5(layers, dtype):
    """LeNet-5 (modern): `layers` supplies Conv2d, ReLU and MaxPool2d (torch.nn or ours)."""
    L = layers
    return nn.Sequential(
        L.Conv2d(1, 6, 5, padding=2), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(6, 16, 5), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(16, 120, 5), L.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), L.ReLU(), nn.Linear(84, 10),
    ).to(dtype)  # fmt: skip


def train(net, x, labels, steps=20):
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_lenet5_trains_exactly_like_torch_nn(dtype, rtol):
    torch.manual_seed(0)
    ref = lenet5(nn, dtype)
    ours = lenet5(ckt, dtype)
    ours.load_state_dict(ref.state_dict())
    assert sum(type(m).__module__ == "convkernels.torch" for m in ours.modules()) == 9
    x = randn(16, 1, 28, 28, dtype=dtype, seed=12)
    labels = torch.randint(0, 10, (16,), generator=gen(13))
    losses_ref = train(ref, x, labels)
    losses = train(ours, x, labels)
    assert losses[-1] < 0.8 * losses[0], "the net did not train"
    np.testing.assert_allclose(losses, losses_ref, rtol=rtol, atol=0)
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(
            p.detach().numpy(), p_ref.detach().numpy(), rtol=rtol, atol=rtol, err_msg=name
        )


def test_convert_swaps_supported_layers_and_keeps_the_rest():
    torch.manual_seed(0)
    net = lenet5(nn, torch.float64)
    net.append(nn.Conv2d(1, 1, 1, padding_mode="reflect"))  # unsupported: kept
    net.append(nn.MaxPool2d(2, dilation=2))  # unsupported: kept
    converted = ckt.convert(net)
    kinds = [type(m).__module__ for m in converted]
    assert kinds.count("convkernels.torch") == 9
    assert type(converted[-1]) is nn.MaxPool2d and type(converted[-2]) is nn.Conv2d
    assert type(net[0]) is nn.Conv2d and type(net[1]) is nn.ReLU  # the original is untouched
    x = randn(4, 1, 28, 28, seed=14)
    torch.testing.assert_close(converted[:-2](x), net[:-2](x), rtol=1e-12, atol=1e-12)
    same = ckt.convert(net, inplace=True)
    assert same is net and type(net[0]) is ckt.Conv2d
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        ckt.convert(lambda x: x)


def test_assigning_a_layer_into_a_torch_model_just_works():
    torch.manual_seed(0)
    net = lenet5(nn, torch.float32)
    x = randn(2, 1, 28, 28, dtype=torch.float32, seed=15)
    expected = net(x)
    old = net[0]
    net[0] = ckt.Conv2d(1, 6, 5, padding=2)
    net[0].load_state_dict(old.state_dict())
    torch.testing.assert_close(net(x), expected, rtol=2e-5, atol=2e-5)


# ---------------------------------------------------------------------------------------------
# Zero copy in, zero copy out


def record(monkeypatch, name):
    """Wraps convkernels._C.<name>: records the arrays it is given and the array it returns."""
    seen = {}
    real = getattr(_C, name)

    def wrapper(*args):
        seen["args"] = args
        seen["result"] = real(*args)
        return seen["result"]

    monkeypatch.setattr(_C, name, wrapper)
    return seen


def test_tensors_are_read_in_place_and_results_wrap_the_arrays(monkeypatch):
    seen = record(monkeypatch, "conv2d")
    x = randn(2, 3, 8, 8, dtype=torch.float32, seed=1, grad=True)
    w = randn(4, 3, 3, 3, dtype=torch.float32, seed=2, grad=True)
    b = randn(4, dtype=torch.float32, seed=3, grad=True)
    y = ckt.conv2d(x, w, b, padding=1)
    ax, aw, ab = seen["args"][:3]
    assert ax.ctypes.data == x.data_ptr() and aw.ctypes.data == w.data_ptr()
    assert ab.ctypes.data == b.data_ptr()
    assert y.data_ptr() == seen["result"].ctypes.data
    # The same for a backward pass and for pooling with its indices.
    seen = record(monkeypatch, "conv2d_backward_weight")
    dy = randn(*y.shape, dtype=torch.float32, seed=4)
    y.backward(dy)
    assert seen["args"][0].ctypes.data == x.data_ptr()
    seen = record(monkeypatch, "max_pool2d")
    p, idx = ckt.max_pool2d(x, 2, return_indices=True)
    assert seen["args"][0].ctypes.data == x.data_ptr()
    assert p.data_ptr() == seen["result"][0].ctypes.data
    assert idx.data_ptr() == seen["result"][1].ctypes.data


def test_inputs_are_not_modified():
    x = randn(2, 3, 6, 6, seed=1, grad=True)
    w = randn(4, 3, 3, 3, seed=2, grad=True)
    before = x.detach().clone(), w.detach().clone()
    y = ckt.relu(ckt.avg_pool2d(ckt.max_pool2d(ckt.conv2d(x, w, padding=1), 2), 1))
    ckt.local_contrast_norm(ckt.local_response_norm(y, 3), 3).sum().backward()
    assert torch.equal(x.detach(), before[0]) and torch.equal(w.detach(), before[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_non_contiguous_inputs_give_correct_results(dtype):
    x = distinct(2, 3, 9, 8, dtype=dtype, seed=1).transpose(2, 3).requires_grad_()
    w = randn(3, 4, 3, 3, dtype=dtype, seed=2).permute(1, 0, 3, 2).requires_grad_()
    b = randn(8, dtype=dtype, seed=3)[::2].requires_grad_()
    assert not (x.is_contiguous() or w.is_contiguous() or b.is_contiguous())
    cases = [
        (lambda x: ckt.conv2d(x, w, b, padding=1), lambda x: F.conv2d(x, w, b, padding=1)),
        (lambda x: ckt.max_pool2d(x, 3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1)),
        (lambda x: ckt.avg_pool2d(x, 3, 2, 1, True), lambda x: F.avg_pool2d(x, 3, 2, 1, True)),
        (lambda x: ckt.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
        (lambda x: ckt.local_response_norm(x, 3), lambda x: F.local_response_norm(x, 3)),
    ]  # fmt: skip
    for i, (ours, ref) in enumerate(cases):
        y, y_ref = ours(x), ref(x)
        close(y, y_ref, dtype)
        wrt = (x, w, b) if i == 0 else (x,)
        # Non-contiguous output gradients too: expanded (stride 0) and transposed.
        expanded = torch.ones(1, dtype=dtype).expand(y.shape)
        transposed = randn(*y.shape, dtype=dtype, seed=5).transpose(2, 3).contiguous()
        for dy in (expanded, transposed.transpose(2, 3)):
            grads = torch.autograd.grad(y, wrt, dy, retain_graph=True)
            grads_ref = torch.autograd.grad(y_ref, wrt, dy, retain_graph=True)
            for g, g_ref in zip(grads, grads_ref):
                close(g, g_ref, dtype, scale=float(g_ref.abs().mean()))


# ---------------------------------------------------------------------------------------------
# Errors


class FakeCuda(torch.Tensor):
    """A CPU tensor that says it is on a GPU (this test runs without one)."""

    @property
    def device(self):
        return torch.device("cuda", 0)


def test_cuda_tensors_are_refused_clearly():
    x = randn(1, 2, 5, 5)
    cuda = x.as_subclass(FakeCuda)
    for call in (
        lambda: ckt.Conv2d(2, 3, 3, dtype=F64)(cuda),
        lambda: ckt.max_pool2d(cuda, 2),
        lambda: ckt.avg_pool2d(cuda, 2),
        lambda: ckt.relu(cuda, inplace=True),
        lambda: ckt.local_response_norm(cuda, 3),
        lambda: ckt.local_contrast_norm(cuda, 3),
    ):
        with pytest.raises(NotImplementedError, match="x is on cuda:0; CUDA tensors are not sup"):
            call()
    with pytest.raises(NotImplementedError, match="w is on cuda:0"):
        ckt.conv2d(x, randn(3, 2, 3, 3).as_subclass(FakeCuda))
    assert torch.equal(cuda, x), "relu(inplace=True) wrote before refusing"
    with pytest.raises(NotImplementedError, match="meta tensors are not supported yet"):
        ckt.relu(torch.empty(2, 3, device="meta"))


def test_unsupported_input_is_refused_clearly():
    x = randn(1, 2, 5, 5)
    with pytest.raises(TypeError, match="x must be float32 or float64, got torch.float16"):
        ckt.max_pool2d(x.half(), 2)
    with pytest.raises(TypeError, match="x must be float32 or float64, got torch.int64"):
        ckt.relu(torch.arange(3))
    with pytest.raises(TypeError, match="w is torch.float32 but x is torch.float64"):
        ckt.conv2d(x, randn(1, 2, 3, 3, dtype=torch.float32))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got ndarray"):
        ckt.relu(np.ones(3))
    with pytest.raises(TypeError, match="dense"):
        ckt.relu(torch.eye(3, dtype=F64).to_sparse())
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        ckt.Conv2d(2, 1, 3)(randn(2, 5, 5).reshape(1, 1, 2, 5, 5))
    with pytest.raises(ValueError, match="3 or more dimensions"):
        ckt.LocalResponseNorm(3)(randn(2, 5))
    with pytest.raises(ValueError, match="conv2d: stride"):  # the ops' own checks
        ckt.conv2d(x, randn(1, 2, 3, 3), stride=0)
    with pytest.raises(ValueError, match="padding"):
        ckt.max_pool2d(x, 2, padding=2)


def test_unsupported_options_are_refused_when_the_layer_is_built():
    with pytest.raises(ValueError, match="dilation must be 1"):
        ckt.MaxPool2d(3, dilation=2)
    with pytest.raises(ValueError, match="dilation must be 1"):
        ckt.max_pool2d(randn(1, 1, 6, 6), 2, dilation=(1, 2))
    assert ckt.MaxPool2d(3, dilation=(1, 1)).dilation == (1, 1)
    with pytest.raises(ValueError, match="divisor_override"):
        ckt.AvgPool2d(2, divisor_override=3)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        ckt.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="uneven"):
        ckt.Conv2d(1, 1, 4, padding="same")
    with pytest.raises(ValueError, match="stride 1"):
        ckt.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3), padding="same", stride=2)


def test_readme_pytorch_example_runs():
    text = (ROOT / "README.md").read_text()
    assert text.index("## Use from PyTorch") < text.index("## Conventions")
    section = text[text.index("## Use from PyTorch") : text.index("## Conventions")]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(example, "README.md, Use from PyTorch", "exec"), {})
