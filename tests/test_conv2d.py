"""conv2d forward and its three backward passes against the NumPy reference and PyTorch."""

import numpy as np
import pytest
from helpers import (
    CONV_ALGORITHMS,
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
def conv_configs(draw, max_channels=4, depthwise=False):
    """depthwise: one input and one output channel per group (groups = C = K), the layers
    conv2d_depthwise.cpp takes (LeNet-5's subsampling), otherwise drawn only now and then."""
    groups = draw(st.integers(2, 8) if depthwise else st.integers(1, 3))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    # The smallest input that still gives one output row/column, plus some slack.
    H = max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 9))
    W = max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 9))
    return dict(
        N=draw(st.integers(1, 3)),
        C=groups * (1 if depthwise else draw(st.integers(1, max_channels))),
        K=groups * (1 if depthwise else draw(st.integers(1, max_channels))),
        H=H,
        W=W,
        R=R,
        S=S,
        # Mix the int and pair forms, as callers do.
        stride=stride if stride[0] != stride[1] else stride[0],
        padding=padding if padding[0] != padding[1] else padding[0],
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def make_conv(cfg, dtype):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal((cfg["N"], cfg["C"], cfg["H"], cfg["W"])).astype(dtype)
    w = rng.standard_normal((cfg["K"], cfg["C"] // cfg["groups"], cfg["R"], cfg["S"]))
    w = w.astype(dtype)
    b = rng.standard_normal(cfg["K"]).astype(dtype) if cfg["bias"] else None
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    return x, w, b, kw, rng


def check_conv_against_reference(cfg, dtype):
    x, w, b, kw, rng = make_conv(cfg, dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    snapshot = unchanged(x, w, *([] if b is None else [b]))
    taps = w.shape[1] * cfg["R"] * cfg["S"]

    y_ref = ref.conv2d(x64, w64, b64, **kw)
    check_each_isa(
        lambda: ck.conv2d(x, w, b, **kw),
        y_ref,
        dtype,
        taps + 1,
        "forward",
        conv_algorithms=CONV_ALGORITHMS,
    )

    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dy64 = dy.astype(np.float64)
    N, K, P, Q = y_ref.shape
    check_each_isa(
        lambda: ck.conv2d_backward_input(dy, w, x.shape, **kw),
        ref.conv2d_backward_input(dy64, w64, x.shape, **kw),
        dtype,
        K // cfg["groups"] * cfg["R"] * cfg["S"],
        "backward input",
        conv_algorithms=CONV_ALGORITHMS,
    )
    check_each_isa(
        lambda: ck.conv2d_backward_weight(x, dy, w.shape, **kw),
        ref.conv2d_backward_weight(x64, dy64, w.shape, **kw),
        dtype,
        N * P * Q,
        "backward weight",
        conv_algorithms=CONV_ALGORITHMS,
    )
    check_each_isa(
        lambda: ck.conv2d_backward_bias(dy),
        ref.conv2d_backward_bias(dy64),
        dtype,
        N * P * Q,
        "backward bias",
    )
    snapshot.check()


@given(conv_configs())
def test_conv2d_matches_reference_float64(cfg):
    check_conv_against_reference(cfg, np.float64)


@given(conv_configs())
def test_conv2d_matches_reference_float32(cfg):
    check_conv_against_reference(cfg, np.float32)


@given(conv_configs(depthwise=True))
def test_depthwise_conv2d_matches_reference_float64(cfg):
    check_conv_against_reference(cfg, np.float64)


@given(conv_configs(depthwise=True))
def test_depthwise_conv2d_matches_reference_float32(cfg):
    check_conv_against_reference(cfg, np.float32)


@settings(max_examples=15)
@given(st.booleans().flatmap(lambda depthwise: conv_configs(3, depthwise)))
def test_conv2d_gradients_match_finite_differences(cfg):
    x, w, b, kw, rng = make_conv(cfg, np.float64)
    b = rng.standard_normal(cfg["K"])
    directional_gradcheck(
        lambda x_: ck.conv2d(x_, w, b, **kw),
        lambda dy, x_: ck.conv2d_backward_input(dy, w, x_.shape, **kw),
        x,
        rng,
        what="d/dx",
    )
    directional_gradcheck(
        lambda w_: ck.conv2d(x, w_, b, **kw),
        lambda dy, w_: ck.conv2d_backward_weight(x, dy, w_.shape, **kw),
        w,
        rng,
        what="d/dw",
    )
    directional_gradcheck(
        lambda b_: ck.conv2d(x, w, b_, **kw),
        lambda dy, b_: ck.conv2d_backward_bias(dy),
        b,
        rng,
        what="d/db",
    )


# Real layers at small batch: (name, N, C, H, K, R, stride, padding, groups).
LAYERS = [
    ("lenet5-c1", 4, 1, 32, 6, 5, 1, 0, 1),
    ("lenet5-s2", 4, 6, 28, 6, 2, 2, 0, 6),  # classic subsampling as a depthwise convolution
    ("lenet5-c3", 4, 6, 14, 16, 5, 1, 0, 1),
    ("lenet5-c5", 4, 16, 5, 120, 5, 1, 0, 1),
    ("cifar-conv1", 2, 3, 32, 32, 5, 1, 2, 1),
    ("cifar-conv2", 2, 32, 16, 32, 5, 1, 2, 1),
    ("cifar-conv3", 2, 32, 8, 64, 5, 1, 2, 1),
    ("alexnet-conv1", 1, 3, 224, 96, 11, 4, 2, 1),
    ("alexnet-conv2", 1, 96, 27, 256, 5, 1, 2, 2),
    ("alexnet-conv3", 1, 256, 13, 384, 3, 1, 1, 1),
    ("alexnet-conv4", 1, 384, 13, 384, 3, 1, 1, 2),
    ("alexnet-conv5", 1, 384, 13, 256, 3, 1, 1, 2),
]


@pytest.mark.parametrize("layer", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_real_layer_shapes(layer):
    _, N, C, H, K, R, stride, padding, groups = layer
    cfg = dict(
        N=N,
        C=C,
        K=K,
        H=H,
        W=H,
        R=R,
        S=R,
        stride=stride,
        padding=padding,
        dilation=1,
        groups=groups,
        bias=True,
        seed=len(layer[0]),
    )
    check_conv_against_reference(cfg, np.float32)


def check_fused_relu(cfg, dtype):
    """conv2d(relu=True) gives relu(conv2d(...)) bit for bit on every ISA and algorithm,
    NaN and signed zeros included."""
    x, w, b, kw, _ = make_conv(cfg, dtype)
    x.flat[:: max(1, x.size // 3)] = np.nan  # NaN outputs must stay NaN
    w[-1] = -0.0  # the last filter's sums are zeros of either sign: the ReLU's 0
    if b is not None:
        b[-1] = 0.0
    for isa, (fused, unfused) in each_isa(
        lambda: (ck.conv2d(x, w, b, relu=True, **kw), ck.relu(ck.conv2d(x, w, b, **kw))),
        conv_algorithms=CONV_ALGORITHMS,
    ).items():
        np.testing.assert_array_equal(fused, unfused, err_msg=isa)
        assert np.array_equal(np.signbit(fused), np.signbit(unfused)), isa
        assert not np.any(np.signbit(fused[~np.isnan(fused)])), isa  # no negatives, no -0


@pytest.mark.parametrize("layer", LAYERS, ids=[layer[0] for layer in LAYERS])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_conv2d_fused_relu_on_real_layers(layer, bias):
    # Every forward path: direct (LeNet C1), filters in lanes (C3, AlexNet conv1), fully
    # connected (C5), depthwise (S2), Winograd (CIFAR c2-c3, AlexNet conv2-5), GEMM (forced).
    _, N, C, H, K, R, stride, padding, groups = layer
    cfg = dict(N=N, C=C, K=K, H=H, W=H, R=R, S=R, stride=stride, padding=padding, dilation=1)
    check_fused_relu(dict(cfg, groups=groups, bias=bias, seed=len(layer[0])), np.float32)


@settings(max_examples=40)
@given(st.booleans().flatmap(lambda depthwise: conv_configs(4, depthwise)))
def test_conv2d_fused_relu(cfg):
    check_fused_relu(cfg, np.float64)


def test_conv2d_relu_must_be_a_bool():
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match=r"^conv2d: relu must be a bool, got str$"):
        ck.conv2d(x, w, relu="yes")


@needs_torch
@given(conv_configs(), st.sampled_from([np.float32, np.float64]))
def test_conv2d_matches_pytorch(cfg, dtype):
    F = torch.nn.functional
    x, w, b, kw, rng = make_conv(cfg, dtype)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    y_torch = F.conv2d(tx, tw, tb, **kw).numpy()
    taps = w.shape[1] * cfg["R"] * cfg["S"]
    assert_close(ck.conv2d(x, w, b, **kw), y_torch, dtype, taps + 1, "forward vs torch")

    dy = rng.standard_normal(y_torch.shape).astype(dtype)
    tdy = torch.from_numpy(dy)
    dx_torch = torch.nn.grad.conv2d_input(x.shape, tw, tdy, **kw).numpy()
    dw_torch = torch.nn.grad.conv2d_weight(tx, w.shape, tdy, **kw).numpy()
    N, K, P, Q = y_torch.shape
    assert_close(
        ck.conv2d_backward_input(dy, w, x.shape, **kw),
        dx_torch,
        dtype,
        K * cfg["R"] * cfg["S"],
        "backward input vs torch",
    )
    assert_close(
        ck.conv2d_backward_weight(x, dy, w.shape, **kw),
        dw_torch,
        dtype,
        N * P * Q,
        "backward weight vs torch",
    )
    assert_close(
        ck.conv2d_backward_bias(dy),
        dy.sum(axis=(0, 2, 3), dtype=np.float64),
        dtype,
        N * P * Q,
        "backward bias",
    )


@needs_torch
@pytest.mark.parametrize("layer", LAYERS[:6], ids=[layer[0] for layer in LAYERS[:6]])
def test_real_layer_shapes_match_pytorch(layer):
    _, N, C, H, K, R, stride, padding, groups = layer
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, R, R)).astype(np.float32)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y_torch = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw)
    assert_close(ck.conv2d(x, w, **kw), y_torch.numpy(), np.float32, C * R * R, layer[0])
