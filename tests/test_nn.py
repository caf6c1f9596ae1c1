"""convkernels.nn: layers against the functional ops and finite differences, SGD, models."""

import numpy as np
import pytest
from helpers import directional_gradcheck

import convkernels as ck
from convkernels import models, nn


def layer_gradcheck(layer, x, rng, what):
    """Input and parameter gradients of a float64 layer against finite differences."""

    def forward_x(x_):
        return layer.forward(x_)

    def backward_x(dy, x_):
        layer.forward(x_)
        return layer.backward(dy)

    directional_gradcheck(forward_x, backward_x, x, rng, what=f"{what} d/dx")
    for name, p in layer.parameters():
        original = p.data.copy()

        def forward_p(value, p=p):
            p.data = value
            return layer.forward(x)

        def backward_p(dy, value, p=p):
            p.data = value
            layer.forward(x)
            layer.backward(dy)
            return p.grad

        directional_gradcheck(forward_p, backward_p, original, rng, what=f"{what} d/d{name}")
        p.data = original


F64 = dict(dtype=np.float64)


@pytest.mark.parametrize(
    "make_layer, shape",
    [
        (lambda rng: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=rng, **F64),
         (2, 4, 7, 7)),
        (lambda rng: nn.Linear(5, 3, rng=rng, **F64), (4, 5)),
        (lambda rng: nn.Tanh(), (3, 4)),
        (lambda rng: nn.Sigmoid(), (3, 4)),
        (lambda rng: nn.Subsample2d(3, **F64), (2, 3, 6, 6)),
        (lambda rng: nn.RBF(6, 4, rng=rng, **F64), (3, 6)),
        (lambda rng: nn.AvgPool2d(2), (2, 3, 6, 6)),
        (lambda rng: nn.LRN(3, 0.1, 0.75, 2.0), (2, 5, 3, 3)),
        (lambda rng: nn.LCN(3, 1.0), (2, 3, 5, 5)),
        (lambda rng: nn.Flatten(), (2, 3, 2, 2)),
    ],
    ids=["conv", "linear", "tanh", "sigmoid", "subsample", "rbf", "avgpool", "lrn", "lcn",
         "flatten"],
)  # fmt: skip
def test_layer_gradients_match_finite_differences(make_layer, shape):
    rng = np.random.default_rng(0)
    layer = make_layer(rng)
    for _, p in layer.parameters():  # move parameters off their special initial values
        p.data = p.data + 0.1 * rng.standard_normal(p.shape)
    layer_gradcheck(layer, rng.standard_normal(shape), rng, type(layer).__name__)


def test_layers_call_the_functional_ops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    conv = nn.Conv2d(4, 6, 3, padding=1, rng=rng)
    conv.bias.data[:] = rng.standard_normal(6)
    np.testing.assert_array_equal(
        conv(x), ck.conv2d(x, conv.weight.data, conv.bias.data, padding=1)
    )
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    y = pool(x)
    np.testing.assert_array_equal(y, ck.max_pool2d(x, 3, 2, ceil_mode=True)[0])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, idx = ck.max_pool2d(x, 3, 2, ceil_mode=True)
    np.testing.assert_array_equal(pool.backward(dy), ck.max_pool2d_backward(dy, idx, x.shape))
    relu = nn.ReLU()
    relu(x)
    np.testing.assert_array_equal(relu.backward(x), ck.relu_backward(x, x))


def test_subsample_is_the_scaled_block_sum_plus_bias():
    rng = np.random.default_rng(2)
    layer = nn.Subsample2d(3, dtype=np.float64)
    layer.coefficient.data = rng.standard_normal(3)
    layer.bias.data = rng.standard_normal(3)
    x = rng.standard_normal((2, 3, 7, 7))  # odd: the last row and column are dropped
    sums = x[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).sum(axis=(3, 5))
    expected = sums * layer.coefficient.data[:, None, None] + layer.bias.data[:, None, None]
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(expected.shape)
    dx = layer.backward(dy)
    np.testing.assert_allclose(
        layer.coefficient.grad, np.einsum("nchw,nchw->c", dy, sums), rtol=1e-12
    )
    np.testing.assert_allclose(layer.bias.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-12)
    expected_dx = np.zeros_like(x)
    spread = np.repeat(np.repeat(dy * layer.coefficient.data[:, None, None], 2, 2), 2, 3)
    expected_dx[:, :, :6, :6] = spread
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-12)


def test_masked_conv_keeps_its_connection_table():
    table = np.zeros((16, 6))
    for k, maps in enumerate(models.LENET5_C3_TABLE):
        table[k, maps] = 1
    conv = nn.Conv2d(6, 16, 5, connections=table)
    assert conv.num_parameters() == 1516  # the paper's count for C3
    x = np.random.default_rng(0).standard_normal((2, 6, 9, 9)).astype(np.float32)
    conv.forward(x)
    conv.backward(np.ones((2, 16, 5, 5), np.float32))
    assert np.all(conv.weight.grad[table == 0] == 0)
    assert np.all(conv.weight.data[table == 0] == 0)


def test_sequential_fuses_conv_and_relu(monkeypatch):
    """Conv2d + ReLU run as conv2d(relu=True): the same outputs and gradients, bit for bit, as
    the layers one by one, with no separate ReLU pass (a ReLU with a slope is never fused)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)

    def network(fuse):
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, rng=np.random.default_rng(1)),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, rng=np.random.default_rng(2)),
            nn.ReLU(0.1),  # leaky: stays a layer of its own
            nn.Flatten(),
            fuse=fuse,
        )

    relu_calls = []
    real_relu = nn.layers.ops.relu
    monkeypatch.setattr(
        nn.layers.ops, "relu", lambda *a, **k: relu_calls.append(1) or real_relu(*a, **k)
    )
    results = {}
    for fuse in (True, False):
        net, relu_calls[:] = network(fuse), []
        y = net.forward(x)
        dy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
        dx = net.backward(dy)
        results[fuse] = [y] + [p.grad for _, p in net.parameters()]
        assert dx is None  # the first layer needs no input gradient
        assert len(relu_calls) == (1 if fuse else 2)
    for fused, separate in zip(results[True], results[False], strict=True):
        np.testing.assert_array_equal(fused, separate)


def test_dropout_train_and_eval():
    layer = nn.Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((1000,), np.float32)
    y = layer(x)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < np.mean(y == 0) < 0.6
    np.testing.assert_array_equal(layer.backward(x), y)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)


def test_softmax_cross_entropy():
    logits = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    loss, grad = nn.softmax_cross_entropy(logits, np.array([0, 2]))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-(np.log(p[0, 0]) + np.log(p[1, 2])) / 2)
    expected = p.copy()
    expected[0, 0] -= 1
    expected[1, 2] -= 1
    np.testing.assert_allclose(grad, expected / 2)


def test_sgd_is_the_alexnet_rule():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = nn.SGD([("p", p)], lr=0.1, momentum=0.9, weight_decay=0.0005)
    v = np.zeros(2)
    w = p.data.copy()
    for grad in ([0.5, 0.5], [-1.0, 2.0]):
        p.grad = np.array(grad)
        opt.step()
        v = 0.9 * v - 0.0005 * 0.1 * w - 0.1 * np.array(grad)
        w = w + v
        np.testing.assert_allclose(p.data, w)
    schedule = nn.StepLR(opt, step_size=2, gamma=0.1)
    assert [schedule.set_epoch(e) for e in range(5)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_parameter_counts_match_the_papers():
    assert models.lenet5("classic").num_parameters() == 60_840
    assert models.lenet5("modern").num_parameters() == 61_706
    assert models.alexnet().num_parameters() == 60_965_224


# The classic net (tanh, RBF output at temperature 0.1) starts slower than the modern one.
@pytest.mark.parametrize("variant, steps", [("classic", 50), ("modern", 25)])
def test_a_tiny_training_run_lowers_the_loss(variant, steps):
    # Ten noisy class templates: learnable in a few steps, unlike random labels.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 32)
    templates = rng.random((10, 1, 28, 28))
    x = (templates[labels] + 0.3 * rng.standard_normal((32, 1, 28, 28))).astype(np.float32)
    model = models.lenet5(variant)
    opt = nn.SGD(model.parameters(), lr=0.02)
    losses = []
    for _ in range(steps):
        loss, dlogits = nn.softmax_cross_entropy(model.forward(x), labels)
        model.backward(dlogits)
        opt.step()
        losses.append(loss)
    assert losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize("variant", ["18pct", "80sec"])
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_small_alexnets_run_forward_and_backward(variant, channels, size):
    model = models.alexnet_small(in_channels=channels, image_size=size, variant=variant)
    x = np.random.default_rng(0).random((2, channels, size, size)).astype(np.float32)
    logits = model.forward(x)
    assert logits.shape == (2, 10)
    _, dlogits = nn.softmax_cross_entropy(logits, np.array([1, 2]))
    model.backward(dlogits)
    assert all(np.all(np.isfinite(p.grad)) for _, p in model.parameters())


def test_save_and_load_round_trip(tmp_path):
    model = models.lenet5("modern", seed=1)
    model.save(tmp_path / "w.npz")
    other = models.lenet5("modern", seed=2)
    other.load(tmp_path / "w.npz")
    for (_, a), (_, b) in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="missing"):
        models.lenet5("classic").load(tmp_path / "w.npz")
