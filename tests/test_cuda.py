"""The CUDA kernels, verified without a GPU, and on one when there is one.

- The build: with a CUDA toolkit present, `pip install` built convkernels._cuda (nvcc, warnings
  and register spills as errors); importing it needs no GPU, and without one every device call
  fails with a RuntimeError that says why.
- The emulation: the same cuda/*.cu sources compiled as C++ over tests/emulation/cuda_host.h
  (module _cuda_emulated) run behind the real device path (ops.py -> _device.py -> the shared
  bindings) on fake device arrays (tests/emulation/fake_cupy.py), compared with the NumPy
  reference and the CPU kernels, on small shapes with partial tiles and blocks.
- The sanitizer drivers: every kernel under ThreadSanitizer (a missing __syncthreads is a race
  between emulated threads) and under AddressSanitizer + UBSan (out-of-bounds global or shared
  memory), with canaries proving each sanitizer catches what it is there for.
- On a GPU (marked `gpu`, skipped without one): the real kernels on CuPy arrays against the CPU
  kernels, and against cuDNN through PyTorch when a CUDA PyTorch is installed.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from emulation import build, fake_cupy
from helpers import assert_close, directional_gradcheck, torch

import convkernels as ck
from convkernels import _device, datasets, models, nn, train
from convkernels import reference as ref

DTYPES = (np.float32, np.float64)
needs_cxx = pytest.mark.skipif(build.CXX is None, reason="no C++ compiler (g++ or $CXX)")
CUDA_HOME = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
HAS_TOOLKIT = os.path.isfile(os.path.join(CUDA_HOME, "bin", "nvcc"))


# ---------------------------------------------------------------------------------------------
# the build


@pytest.mark.skipif(
    not HAS_TOOLKIT and os.environ.get("CONVKERNELS_CUDA") != "1",
    reason=f"no CUDA toolkit in {CUDA_HOME}",
)
def test_cuda_module_was_built_and_imports_without_a_gpu():
    module = _device.cuda_module()
    assert module is not None, "a CUDA toolkit is present but convkernels._cuda was not built"
    assert module.runtime_version() >= 12000
    count, why = module.devices()
    info = ck.cuda_info()
    assert info["compiled"] is True
    assert len(info["devices"]) == count
    if count == 0:
        assert why and not ck.cuda_available() and info["reason"] == why


@pytest.mark.skipif(ck.cuda_available(), reason="a GPU is usable here")
def test_device_arrays_without_a_usable_gpu_raise_and_say_why(monkeypatch):
    monkeypatch.setattr(_device, "_import_cupy", lambda: fake_cupy)
    x = fake_cupy.to_device(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="relu: got CUDA device arrays but the CUDA kernels"):
        ck.relu(x)


# ---------------------------------------------------------------------------------------------
# the emulated kernels behind the real device path


@pytest.fixture(scope="module")
def emulated_module():
    if build.CXX is None:
        pytest.skip("no C++ compiler (g++ or $CXX)")
    path = str(build.emulated_module())
    sys.path.insert(0, path)
    try:
        import _cuda_emulated
    finally:
        sys.path.remove(path)
    _cuda_emulated._set_poison_outputs(True)  # unwritten outputs show up as NaN
    return _cuda_emulated


@pytest.fixture
def dev(emulated_module, monkeypatch):
    """Routes device arrays to the emulated kernels; returns fake_cupy.to_device."""
    monkeypatch.setattr(_device, "cuda_module", lambda: emulated_module)
    monkeypatch.setattr(_device, "_import_cupy", lambda: fake_cupy)
    return fake_cupy.to_device


def host(result):
    assert isinstance(result, fake_cupy.FakeDeviceArray), f"got {type(result).__name__}"
    return result.get()


CONV_CASES = [
    # (N, C, H, W), (K, R, S), stride, padding, dilation, groups
    ((2, 3, 7, 9), (5, 3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((1, 4, 6, 5), (70, 3, 3), 1, 1, 1, 2),  # more filters than one 64-row tile
    ((3, 1, 12, 12), (6, 5, 5), 1, 0, 1, 1),  # LeNet C1-like: N P Q = 192 spans 3 tiles
    ((2, 6, 9, 9), (4, 3, 3), 3, 2, 1, 2),  # stride 3: backward-input skips non-dividing taps
    ((1, 2, 5, 5), (3, 5, 5), 1, 2, 1, 1),  # filter as large as the image
    ((2, 2, 48, 48), (3, 1, 1), 1, 0, 1, 1),  # N P Q = 4608: two backward-weight k-slices
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"x{c[0]}w{c[1]}s{c[2]}g{c[5]}")
def test_conv2d_emulated(dev, case, dtype):
    (N, C, H, W), (K, R, S), stride, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = ref.conv2d(x, w, b, **args)
    reduction = C // groups * R * S
    assert_close(host(ck.conv2d(dev(x), dev(w), dev(b), **args)), expected, dtype, reduction)
    fused = host(ck.conv2d(dev(x), dev(w), dev(b), relu=True, **args))
    np.testing.assert_array_equal(fused, host(ck.relu(ck.conv2d(dev(x), dev(w), dev(b), **args))))
    assert fused.min() >= 0 and np.any(fused == 0) and np.any(fused > 0)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx = host(ck.conv2d_backward_input(dev(dy), dev(w), x.shape, **args))
    assert_close(dx, ref.conv2d_backward_input(dy, w, x.shape, **args), dtype, K * R * S)
    dw = host(ck.conv2d_backward_weight(dev(x), dev(dy), w.shape, **args))
    depth = N * expected.shape[2] * expected.shape[3]
    assert_close(dw, ref.conv2d_backward_weight(x, dy, w.shape, **args), dtype, depth)
    db = host(ck.conv2d_backward_bias(dev(dy)))
    assert_close(db, ref.conv2d_backward_bias(dy), dtype, depth)


POOL_CASES = [
    # (N, C, H, W), kernel, stride, padding, ceil_mode, count_include_pad
    ((2, 3, 7, 8), 3, 2, 1, True, False),
    ((2, 3, 7, 8), 3, 2, 1, False, True),
    ((1, 2, 6, 6), 2, None, 0, False, True),
    ((1, 5, 13, 13), 3, 2, 0, False, True),  # AlexNet's overlapping 3/2 pooling
    ((2, 1, 9, 5), (3, 2), (2, 1), (1, 0), True, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"x{c[0]}k{c[1]}s{c[2]}c{c[4]:d}")
def test_pooling_emulated(dev, case, dtype):
    shape, kernel, stride, padding, ceil_mode, count_include_pad = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    y, idx = ck.max_pool2d(dev(x), **args)
    y_ref, idx_ref = ck.max_pool2d(x, **args)
    np.testing.assert_array_equal(host(y), y_ref)
    np.testing.assert_array_equal(host(idx), idx_ref)
    assert_close(host(y), ref.max_pool2d(x, **args)[0], dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx = host(ck.max_pool2d_backward(dev(dy), idx, shape))
    assert_close(dx, ref.max_pool2d_backward(dy, idx_ref, shape), dtype, 4)

    avg = dict(args, count_include_pad=count_include_pad)
    y = host(ck.avg_pool2d(dev(x), **avg))
    np.testing.assert_array_equal(y, ck.avg_pool2d(x, **avg))  # same order of additions
    assert_close(y, ref.avg_pool2d(x, **avg), dtype, 9)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = host(ck.avg_pool2d_backward(dev(dy), shape, **avg))
    np.testing.assert_array_equal(dx, ck.avg_pool2d_backward(dy, shape, **avg))
    assert_close(dx, ref.avg_pool2d_backward(dy, shape, **avg), dtype, 9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_emulated(dev, dtype, slope):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1000).astype(dtype)  # 1000: a partial block of 256 threads
    x[:4] = [0.0, -0.0, np.nan, -np.inf]
    dy = rng.standard_normal(1000).astype(dtype)
    np.testing.assert_array_equal(host(ck.relu(dev(x), slope)), ck.relu(x, slope))
    np.testing.assert_array_equal(host(ck.relu(dev(x), slope)), ref.relu(x, slope))
    dx = host(ck.relu_backward(dev(dy), dev(x), slope))
    np.testing.assert_array_equal(dx, ref.relu_backward(dy, x, slope))
    # In place, as on the host: out=x writes x's own device buffer.
    buffer = dev(x)
    assert ck.relu(buffer, slope, out=buffer) is buffer
    np.testing.assert_array_equal(buffer.get(), ref.relu(x, slope))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_emulated(dev, dtype):
    rng = np.random.default_rng(4)
    x = (3 * rng.standard_normal(1000)).astype(dtype)  # 1000: a partial block of 256 threads
    x[:5] = [0.0, -0.0, np.nan, -np.inf, 40.0]
    dy = rng.standard_normal(1000).astype(dtype)
    scales = (1.7159, 2.0 / 3.0)
    y = host(ck.tanh(dev(x), *scales))
    with np.errstate(invalid="ignore"):
        expected = ref.tanh(x.astype(np.float64), *scales)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    finite = ~np.isnan(expected)
    assert_close(y[finite], expected[finite], dtype, 4)
    dx = host(ck.tanh_backward(dev(dy), dev(y), *scales))
    assert_close(dx[finite], ref.tanh_backward(dy, y, *scales)[finite], dtype, 4)
    buffer = dev(x)  # in place, as on the host
    assert ck.tanh(buffer, *scales, out=buffer) is buffer
    np.testing.assert_array_equal(buffer.get(), y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, beta", [(5, 0.75), (4, 0.6), (1, 0.75), (9, 1.5)])
def test_lrn_emulated(dev, dtype, size, beta):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 3, 5)).astype(dtype)
    args = dict(size=size, alpha=0.5, beta=beta, k=2.0)
    assert_close(host(ck.lrn(dev(x), **args)), ref.lrn(x, **args), dtype, size)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = host(ck.lrn_backward(dev(dy), dev(x), **args))
    assert_close(dx, ref.lrn_backward(dy, x, **args), dtype, 4 * size)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", [((2, 3, 6, 7), 5), ((1, 1, 11, 4), 9), ((1, 2, 3, 3), 1)])
def test_lcn_emulated(dev, dtype, shape, size):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    args = dict(size=size, sigma=1.5, eps=1e-4)
    reduction = shape[1] * size * size
    assert_close(host(ck.lcn(dev(x), **args)), ref.lcn(x, **args), dtype, reduction)
    dy = rng.standard_normal(shape).astype(dtype)
    dx = host(ck.lcn_backward(dev(dy), dev(x), **args))
    assert_close(dx, ref.lcn_backward(dy, x, **args), dtype, 4 * reduction)
    constant = np.full(shape, 3.25, dtype)
    np.testing.assert_array_equal(host(ck.lcn(dev(constant), **args)), 0)


def test_gradients_emulated_float64(dev):
    """Finite differences through the device path itself, for the backward kernels."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 3))
    args = dict(stride=(2, 1), padding=1, groups=2)

    def conv_x(v):
        return host(ck.conv2d(dev(v), dev(w), **args))

    def conv_dx(dy, v):
        return host(ck.conv2d_backward_input(dev(dy), dev(w), v.shape, **args))

    directional_gradcheck(conv_x, conv_dx, x, rng, what="conv2d wrt x [emulated]")

    def lcn_x(v):
        return host(ck.lcn(dev(v), size=3, sigma=1.0))

    def lcn_dx(dy, v):
        return host(ck.lcn_backward(dev(dy), dev(v), size=3, sigma=1.0))

    directional_gradcheck(lcn_x, lcn_dx, x, rng, what="lcn wrt x [emulated]")

    def lrn_x(v):
        return host(ck.lrn(dev(v), 3, alpha=0.3, k=1.0))

    def lrn_dx(dy, v):
        return host(ck.lrn_backward(dev(dy), dev(v), 3, alpha=0.3, k=1.0))

    directional_gradcheck(lrn_x, lrn_dx, x, rng, what="lrn wrt x [emulated]")


def test_device_path_rules(dev):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = ck.conv2d(x, w, padding=1)
    # Non-contiguous inputs are copied, never misread, and never written.
    wide = dev(np.concatenate([x, x], axis=3))[..., ::2]
    before = wide.get()
    assert not wide.flags.c_contiguous
    assert_close(host(ck.conv2d(wide, dev(w), padding=1)), ck.conv2d(before, w, padding=1),
                 np.float32, 27)  # fmt: skip
    np.testing.assert_array_equal(wide.get(), before)
    # out= is written in place and returned.
    out = dev(np.zeros(expected.shape, np.float32))
    assert ck.conv2d(dev(x), dev(w), padding=1, out=out) is out
    assert_close(out.get(), expected, np.float32, 27)
    y, idx = dev(np.zeros((2, 3, 4, 4), np.float32)), dev(np.zeros((2, 3, 4, 4), np.int64))
    assert ck.max_pool2d(dev(x), 2, out=(y, idx)) == (y, idx)
    np.testing.assert_array_equal(y.get(), ck.max_pool2d(x, 2)[0])
    # Host and device arrays do not mix; all arrays share one device.
    with pytest.raises(TypeError, match="conv2d: w is a host array but x is a CUDA device"):
        ck.conv2d(dev(x), w)
    with pytest.raises(ValueError, match="conv2d: w is on CUDA device 1 but the other arrays"):
        ck.conv2d(dev(x), fake_cupy.to_device(w, device=1))
    with pytest.raises(ValueError, match="out is read-only"):
        ck.relu(dev(x), out=fake_cupy.to_device(x, readonly=True))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        ck.relu(dev(x[..., :4]), out=dev(np.zeros((2, 3, 8, 8), np.float32))[..., ::2])


def test_contiguous_device_arrays_reach_the_kernels_without_a_copy(
    dev, emulated_module, monkeypatch
):
    seen = []
    real = emulated_module.conv2d

    def spy(*args):
        seen.extend(a.__array_interface__["data"][0] for a in args[:2])
        return real(*args)

    monkeypatch.setattr(emulated_module, "conv2d", spy)
    x, w = dev(np.ones((1, 2, 5, 5), np.float32)), dev(np.ones((3, 2, 3, 3), np.float32))
    y = ck.conv2d(x, w)
    assert seen == [x.data.ptr, w.data.ptr]  # the kernels read the caller's memory
    out = dev(np.zeros(y.shape, np.float32))
    assert ck.conv2d(x, w, out=out).data.ptr == out.data.ptr


def test_readme_cuda_example_runs(dev, monkeypatch):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"## CUDA\n.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    namespace = {}
    exec(compile(example, "README.md CUDA example", "exec"), namespace)
    assert isinstance(namespace["y"], fake_cupy.FakeDeviceArray)
    assert namespace["dx"].shape == namespace["x"].shape


BAD_CALLS = [
    ("conv2d", lambda a: ck.conv2d(a(np.ones((1, 3, 5, 5))), a(np.ones((2, 2, 3, 3))))),
    ("conv2d", lambda a: ck.conv2d(a(np.ones((1, 3, 5, 5))), a(np.ones((2, 3, 3, 3), "f4")))),
    ("conv2d", lambda a: ck.conv2d(a(np.ones((1, 1, 2, 2))), a(np.ones((1, 1, 3, 3))))),
    ("max_pool2d", lambda a: ck.max_pool2d(a(np.ones((1, 1, 4, 4))), 3, padding=2)),
    ("relu_backward", lambda a: ck.relu_backward(a(np.ones(3)), a(np.ones(4)))),
    ("lrn", lambda a: ck.lrn(a(np.ones((1, 2, 3, 3))), 0)),
    ("lcn", lambda a: ck.lcn(a(np.ones((1, 2, 3, 3))), size=4)),
    ("conv2d", lambda a: ck.conv2d(a(np.ones((1, 1, 4, 4))), a(np.ones((1, 1, 3, 3))),
                                   out=a(np.ones((1, 1, 3, 3))))),
    ("relu", lambda a: ck.relu(a(np.ones(4, np.int32)))),
]  # fmt: skip


@pytest.mark.parametrize(
    "op, call", BAD_CALLS, ids=[f"{op}-{i}" for i, (op, _) in enumerate(BAD_CALLS)]
)
def test_bad_input_gives_the_host_error_on_the_device(dev, op, call):  # fmt: skip
    with pytest.raises((TypeError, ValueError)) as on_host:
        call(lambda v: v)
    with pytest.raises(on_host.type) as on_device:
        call(dev)
    assert str(on_device.value) == str(on_host.value)
    assert str(on_device.value).startswith(op + ":")


def test_max_pool2d_backward_checks_indices_on_the_device(dev):
    dy = np.ones((1, 1, 2, 2), np.float32)
    idx = np.array([0, 3, 16, 1], np.int64).reshape(1, 1, 2, 2)
    with pytest.raises(ValueError, match="idx holds 16, outside the input plane"):
        ck.max_pool2d_backward(dev(dy), dev(idx), (1, 1, 4, 4))
    idx.flat[2] = -1
    with pytest.raises(ValueError, match="idx holds -1, outside the input plane"):
        ck.max_pool2d_backward(dev(dy), dev(idx), (1, 1, 4, 4))


# ---------------------------------------------------------------------------------------------
# the network layer on the device


def _layer_outputs(model, x):
    """Every layer's output, in order (forward, layer by layer)."""
    outputs = []
    for layer in model.layers:
        x = layer.forward(x)
        outputs.append(x)
    return outputs


@pytest.mark.parametrize("variant", ["modern", "classic"])
def test_lenet5_trains_on_the_device_step_for_step_as_on_the_host(dev, variant):
    rng = np.random.default_rng(10)
    batches = [(rng.standard_normal((4, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 4))
               for _ in range(2)]  # fmt: skip
    on_host = models.lenet5(variant, seed=0)
    on_device = models.lenet5(variant, seed=0).to("cuda")
    assert all(isinstance(p.data, fake_cupy.FakeDeviceArray) for _, p in on_device.parameters())
    optimizers = [nn.SGD(m.parameters(), lr=0.05) for m in (on_host, on_device)]
    for x, y in batches:
        losses = []
        for model, optimizer, x_in in zip((on_host, on_device), optimizers, (x, dev(x))):
            outputs = _layer_outputs(model, x_in)
            if model is on_device:  # data stays on the device from layer to layer
                assert all(isinstance(o, fake_cupy.FakeDeviceArray) for o in outputs)
            loss, dlogits = nn.softmax_cross_entropy(outputs[-1], y)
            model.backward(dlogits)
            optimizer.step()
            losses.append(loss)
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    for (name, p), (_, q) in zip(on_host.parameters(), on_device.parameters()):
        assert isinstance(q.data, fake_cupy.FakeDeviceArray), name
        assert_close(q.data.get(), p.data, np.float32, 64, what=name)
    assert isinstance(on_device.state_dict()["0.weight"], np.ndarray)  # saved from the host


def test_small_alexnet_runs_on_the_device(dev):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    on_host = models.alexnet_small(10, 1, 28, seed=0).eval()
    on_device = models.alexnet_small(10, 1, 28, seed=0).to("cuda").eval()
    expected = on_host.forward(x)
    assert_close(host(on_device.forward(dev(x))), expected, np.float32, 800)
    on_device.train()  # dropout masks drawn on the device
    loss, dlogits = nn.softmax_cross_entropy(on_device.forward(dev(x)), np.array([1, 2]))
    on_device.backward(dlogits)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(p.grad.get())) for _, p in on_device.parameters())


def test_train_job_on_the_device(dev, monkeypatch, tmp_path):
    from test_train import config, tiny_dataset

    monkeypatch.setattr(datasets, "load", lambda *a, **k: tiny_dataset(n_train=16, n_test=8))
    settings = dict(epochs=1, batch_size=8)
    on_host = train.train(config(tmp_path / "host", **settings), log=lambda *a: None)
    on_device = train.train(config(tmp_path / "cuda", device="cuda", **settings),
                            log=lambda *a: None)  # fmt: skip
    for key in ("train_loss", "test_loss", "test_accuracy", "train_accuracy"):
        assert on_device[0][key] == pytest.approx(on_host[0][key], rel=1e-4), key


# ---------------------------------------------------------------------------------------------
# the sanitizer drivers


def run_driver(kind, *args):
    path = build.sanitizer_driver(kind)
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1", ASAN_OPTIONS="detect_leaks=1")
    return subprocess.run([str(path), *args], capture_output=True, text=True, env=env, timeout=600)


@needs_cxx
@pytest.mark.parametrize("kind", ["thread", "address"])
def test_every_kernel_under_sanitizers(kind):
    result = run_driver(kind)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 failure(s)" in result.stdout
    checks = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert len(checks) >= 56  # 28 comparisons per dtype


@needs_cxx
def test_thread_sanitizer_catches_a_missing_syncthreads():
    assert run_driver("thread", "canary-sync").returncode == 0
    racy = run_driver("thread", "canary-race")
    assert racy.returncode != 0 and "ThreadSanitizer: data race" in racy.stderr


@needs_cxx
def test_address_sanitizer_catches_a_shared_memory_overflow():
    assert run_driver("address", "canary-sync").returncode == 0
    overflow = run_driver("address", "canary-oob")
    assert overflow.returncode != 0
    assert "out of bounds" in overflow.stderr or "AddressSanitizer" in overflow.stderr


# ---------------------------------------------------------------------------------------------
# on a real GPU

needs_gpu = pytest.mark.skipif(not ck.cuda_available(), reason=ck.cuda_info()["reason"])


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_on_the_gpu_matches_the_cpu(dtype):
    import cupy

    rng = np.random.default_rng(7)
    for case in CONV_CASES:
        (N, C, H, W), (K, R, S), stride, padding, dilation, groups = case
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        y = ck.conv2d(cupy.asarray(x), cupy.asarray(w), **args)
        assert isinstance(y, cupy.ndarray)
        assert_close(y.get(), ck.conv2d(x, w, **args), dtype, C * R * S)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = ck.conv2d_backward_input(cupy.asarray(dy), cupy.asarray(w), x.shape, **args)
        assert_close(dx.get(), ck.conv2d_backward_input(dy, w, x.shape, **args), dtype, K * R * S)
        dw = ck.conv2d_backward_weight(cupy.asarray(x), cupy.asarray(dy), w.shape, **args)
        depth = N * y.shape[2] * y.shape[3]
        assert_close(dw.get(), ck.conv2d_backward_weight(x, dy, w.shape, **args), dtype, depth)
    for shape, kernel, stride, padding, ceil_mode, cip in POOL_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
        y, idx = ck.max_pool2d(cupy.asarray(x), **args)
        np.testing.assert_array_equal(idx.get(), ck.max_pool2d(x, **args)[1])
        y = ck.avg_pool2d(cupy.asarray(x), count_include_pad=cip, **args)
        np.testing.assert_array_equal(y.get(), ck.avg_pool2d(x, count_include_pad=cip, **args))
    x = rng.standard_normal((4, 16, 13, 13)).astype(dtype)
    assert_close(ck.lrn(cupy.asarray(x), 5).get(), ck.lrn(x, 5), dtype, 5)
    assert_close(ck.lcn(cupy.asarray(x)).get(), ck.lcn(x), dtype, 16 * 81)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(
    torch is None or not torch.cuda.is_available(), reason="needs a CUDA build of PyTorch"
)
def test_conv2d_on_the_gpu_matches_cudnn():
    import cupy

    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 96, 27, 27)).astype(np.float32)
    w = rng.standard_normal((256, 48, 5, 5)).astype(np.float32) * 0.05
    tx, tw = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
    expected = torch.nn.functional.conv2d(tx, tw, padding=2, groups=2).cpu().numpy()
    y = ck.conv2d(tx, tw, padding=2, groups=2)  # a CUDA tensor goes in through its interface
    assert isinstance(y, cupy.ndarray)
    assert_close(y.get(), expected, np.float32, 48 * 25)


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA driver here")
def test_a_machine_with_a_driver_reports_cuda_consistently():
    info = ck.cuda_info()
    assert info["available"] == bool(info["devices"]) or not info["compiled"]


# ---------------------------------------------------------------------------------------------
# the GPU benchmark suite


def test_gpu_peaks_from_device_attributes():
    from convkernels import bench_gpu

    # An H100 SXM: 132 SMs x 128 lanes x 2 x 1.98 GHz; HBM3 2.6 GHz x 5120 bits x 2.
    h100 = dict(ClockRate=1_980_000, MultiProcessorCount=132, MemoryClockRate=2_619_000,
                GlobalMemoryBusWidth=5120)  # fmt: skip
    tflops, gbs = bench_gpu.peaks(h100, 9, 0)
    assert tflops == pytest.approx(66.9, rel=0.01)
    assert gbs == pytest.approx(3352, rel=0.01)
    assert bench_gpu.fp32_lanes(7, 5) == 64 and bench_gpu.fp32_lanes(8, 6) == 128


def test_gpu_table_format():
    from convkernels import bench_gpu

    device = dict(name="Test GPU", sm="90", peak_tflops=60.0, peak_gbs=3000.0, l2_bytes=1 << 25)
    rows = [dict(label="LeNet C1 b64", direction="fwd", convkernels_ms=0.05, cudnn_ms=0.04,
                 speedup=0.8, metric="TFLOP/s", rate=1.5, pct_peak=2.5),
            dict(label="LCN(9) b16", direction="bwd", convkernels_ms=1.0, cudnn_ms=None,
                 speedup=None, metric="GB/s", rate=500.0, pct_peak=16.7)]  # fmt: skip
    text = bench_gpu.format_text({"device": device, "rows": rows})
    assert "Test GPU (sm_90)" in text and "0.80×" in text and "—" in text


def test_gpu_bench_without_a_gpu_says_why(capsys):
    if ck.cuda_available():
        pytest.skip("a GPU is usable here")
    from convkernels import cli

    assert cli.main(["bench", "--device", "cuda", "--quick"]) == 2
    assert "CUDA is not usable here" in capsys.readouterr().err


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(
    torch is None or not torch.cuda.is_available(), reason="needs a CUDA build of PyTorch"
)
def test_gpu_suite_runs_and_validates():
    from convkernels import bench, bench_gpu

    result = bench_gpu.run(bench.cases(quick=True, kinds=("conv", "elementwise")), repeats=3)
    assert result["rows"] and all(r["convkernels_ms"] > 0 for r in result["rows"])
