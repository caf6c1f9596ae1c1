"""out= buffers (written in place, refused when unfit) and ops called from several threads at once.

out= (README, "Buffers: what is copied"): the kernel writes straight into the caller's buffer,
which must have the result's shape and dtype, be C-contiguous, aligned and writable, and share
no memory with an input; the op returns it (a NumPy view of it). ReLU may run in place.
Threads: the GIL is released around every kernel, so ops run concurrently; they must give the
results of sequential calls.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import needs_torch, torch

import convkernels as ck

DTYPES = [np.float32, np.float64]
CONV = dict(stride=2, padding=1, groups=2)
POOL = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
NORM = dict(size=3, alpha=1e-2, beta=0.75, k=2.0)
LCN = dict(size=3, sigma=1.0, eps=1e-4)


def _arrays(dtype):
    rng = np.random.default_rng(7)

    def a(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x = a(2, 4, 7, 7)
    _, idx = ck.max_pool2d(x, **POOL)
    # conv: P = (7 + 2 - 3) // 2 + 1 = 4; pooling with ceil_mode: P = 4 as well.
    return dict(x=x, w=a(6, 2, 3, 3), b=a(6), dy=a(2, 6, 4, 4), dyp=a(2, 4, 4, 4), idx=idx,
                dx=a(2, 4, 7, 7), y=np.tanh(x), a=a(5, 3), bm=a(3, 4), c=a(5, 4))  # fmt: skip


# op -> (names of its array inputs in call order, how to call it with those arrays and out).
CALLS = {
    "conv2d": (("x", "w", "b"), lambda x, w, b, **o: ck.conv2d(x, w, b, **CONV, **o)),
    "conv2d_backward_input": (
        ("dy", "w"),
        lambda dy, w, **o: ck.conv2d_backward_input(dy, w, (2, 4, 7, 7), **CONV, **o),
    ),
    "conv2d_backward_weight": (
        ("x", "dy"),
        lambda x, dy, **o: ck.conv2d_backward_weight(x, dy, (6, 2, 3, 3), **CONV, **o),
    ),
    "conv2d_backward_bias": (("dy",), lambda dy, **o: ck.conv2d_backward_bias(dy, **o)),
    "max_pool2d_backward": (
        ("dyp", "idx"),
        lambda dyp, idx, **o: ck.max_pool2d_backward(dyp, idx, (2, 4, 7, 7), **o),
    ),
    "avg_pool2d": (("x",), lambda x, **o: ck.avg_pool2d(x, **POOL, **o)),
    "avg_pool2d_backward": (
        ("dyp",),
        lambda dyp, **o: ck.avg_pool2d_backward(dyp, (2, 4, 7, 7), **POOL, **o),
    ),
    "relu": (("x",), lambda x, **o: ck.relu(x, 0.1, **o)),
    "relu_backward": (("dx", "x"), lambda dx, x, **o: ck.relu_backward(dx, x, 0.1, **o)),
    "tanh": (("x",), lambda x, **o: ck.tanh(x, 1.5, 0.5, **o)),
    "tanh_backward": (("dx", "y"), lambda dx, y, **o: ck.tanh_backward(dx, y, 1.5, 0.5, **o)),
    "lrn": (("x",), lambda x, **o: ck.lrn(x, **NORM, **o)),
    "lrn_backward": (("dx", "x"), lambda dx, x, **o: ck.lrn_backward(dx, x, **NORM, **o)),
    "lcn": (("x",), lambda x, **o: ck.lcn(x, **LCN, **o)),
    "lcn_backward": (("dx", "x"), lambda dx, x, **o: ck.lcn_backward(dx, x, **LCN, **o)),
    "gemm": (("a", "bm", "c"), lambda a, bm, c, **o: ck.gemm(a, bm, c, alpha=2.0, beta=0.5, **o)),
}
OPS = sorted(CALLS)
# The argument names the messages use, where the table's differ.
ARG_NAME = {"dyp": "dy", "dx": "dy", "bm": "b"}


def _call(op, arrays, **out):
    names, fn = CALLS[op]
    return fn(*(arrays[n] for n in names), **out)


def _nan_like(a):
    return np.full(a.shape, -1 if a.dtype == np.int64 else np.nan, a.dtype)


# ---------------------------------------------------------------------------------------------
# out= receives the result


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_out_receives_the_result_in_place(op, dtype):
    arrays = _arrays(dtype)
    expected = _call(op, arrays)
    out = _nan_like(expected)
    address = out.ctypes.data
    result = _call(op, arrays, out=out)
    assert result is out and out.ctypes.data == address
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_max_pool2d_out_is_a_pair(dtype):
    x = _arrays(dtype)["x"]
    y, idx = ck.max_pool2d(x, **POOL)
    out = (_nan_like(y), _nan_like(idx))
    result = ck.max_pool2d(x, **POOL, out=out)
    assert result[0] is out[0] and result[1] is out[1]
    np.testing.assert_array_equal(out[0], y)
    np.testing.assert_array_equal(out[1], idx)
    # One of the pair may be a list entry too, and max_pool2d_backward writes into its own out.
    dx = np.full(x.shape, np.nan, dtype)
    assert ck.max_pool2d_backward(y, idx, x.shape, out=dx) is dx
    np.testing.assert_array_equal(dx, ck.max_pool2d_backward(y, idx, x.shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_relu_runs_in_place(dtype):
    arrays = _arrays(dtype)
    x, dy = arrays["x"].copy(), arrays["dx"].copy()
    expected_y = ck.relu(x, 0.1)
    expected_dx = ck.relu_backward(dy, x, 0.1)
    assert ck.relu_backward(dy, x, 0.1, out=dy) is dy
    np.testing.assert_array_equal(dy, expected_dx)
    assert ck.relu(x, 0.1, out=x) is x
    np.testing.assert_array_equal(x, expected_y)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_tanh_runs_in_place(dtype):
    arrays = _arrays(dtype)
    x, dy = arrays["x"].copy(), arrays["dx"].copy()
    expected_y = ck.tanh(x, 1.5, 0.5)
    expected_dx = ck.tanh_backward(dy, expected_y, 1.5, 0.5)
    assert ck.tanh_backward(dy, expected_y, 1.5, 0.5, out=dy) is dy
    np.testing.assert_array_equal(dy, expected_dx)
    assert ck.tanh(x, 1.5, 0.5, out=x) is x
    np.testing.assert_array_equal(x, expected_y)


def test_gemm_accumulates_into_c():
    arrays = _arrays(np.float64)
    a, b, c = arrays["a"], arrays["bm"], arrays["c"].copy()
    expected = 2.0 * a @ b + 0.5 * c
    assert ck.gemm(a, b, c, alpha=2.0, beta=0.5, out=c) is c
    np.testing.assert_allclose(c, expected, rtol=1e-13, atol=1e-13)


def test_buffer_protocol_out_is_written():
    x = _arrays(np.float64)["x"]
    storage = bytearray(x.nbytes)
    view = memoryview(storage).cast("B").cast("d", x.shape)
    result = ck.relu(x, out=view)
    expected = ck.relu(x)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(np.frombuffer(storage).reshape(x.shape), expected)
    assert result.ctypes.data == np.frombuffer(storage).ctypes.data


@needs_torch
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64] if torch else [], ids=str)
def test_torch_tensors_as_out(dtype):
    x = torch.randn(2, 3, 8, 8, dtype=dtype)
    w = torch.randn(4, 3, 3, 3, dtype=dtype)
    y = torch.empty(2, 4, 8, 8, dtype=dtype)
    result = ck.conv2d(x, w, padding=1, out=y)
    assert result.ctypes.data == y.data_ptr()  # the op wrote into the tensor's memory
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w, padding=1))
    p, idx = torch.empty(2, 4, 4, 4, dtype=dtype), torch.empty(2, 4, 4, 4, dtype=torch.int64)
    ck.max_pool2d(y, 2, out=(p, idx))
    ref_p, ref_idx = torch.nn.functional.max_pool2d(y, 2, return_indices=True)
    assert torch.equal(p, ref_p) and torch.equal(idx, ref_idx)
    before = y.clone()
    ck.relu(y, out=y)  # in place
    assert torch.equal(y, torch.relu(before))
    with pytest.raises(TypeError, match="out"):
        ck.relu(x, out=torch.empty(2, 3, 8, 8, dtype=dtype, requires_grad=True))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        ck.relu(x, out=torch.empty(2, 3, 8, 8, dtype=dtype).transpose(2, 3))


# ---------------------------------------------------------------------------------------------
# out= refused, before the kernel runs


def _bad_outs(expected):
    """(what, out, exception, message) for buffers the kernel must not write into."""

    def nan(shape, dtype=expected.dtype):
        return np.full(shape, np.nan, dtype)

    other = np.float32 if expected.dtype == np.float64 else np.float64
    wider = nan(expected.shape[:-1] + (2 * expected.shape[-1],))
    read_only = nan(expected.shape)
    read_only.flags.writeable = False
    cases = [
        ("dtype", nan(expected.shape, other), TypeError, "out must have dtype"),
        ("shape", nan(expected.shape[:-1] + (expected.shape[-1] + 1,)), ValueError,
         "out must have shape"),
        ("strided", wider[..., ::2], ValueError, "out must be C-contiguous"),
        ("read-only", read_only, ValueError, "out is read-only"),
        ("list", expected.tolist(), TypeError, "out must be an array"),
        ("str", "abc", TypeError, "out must be an array"),
    ]  # fmt: skip
    if expected.ndim > 1:
        cases += [
            ("flat", nan(expected.size), ValueError, "out must have shape"),
            ("fortran", nan(expected.shape[::-1]).T, ValueError, "out must be C-contiguous"),
        ]
    return cases


@pytest.mark.parametrize("op", OPS)
def test_unfit_out_is_refused(op):
    arrays = _arrays(np.float64)
    expected = _call(op, arrays)
    for what, out, exc, message in _bad_outs(expected):
        with pytest.raises(exc, match=message):
            _call(op, arrays, out=out)
        if isinstance(out, np.ndarray):
            assert np.all(np.isnan(out)), f"{what}: refused, yet written"


def _overlapping(a, out_like, shift):
    """A copy of `a` and an out of out_like's shape/dtype in one buffer, overlapping by `shift`."""
    start = a.nbytes - shift
    storage = np.zeros(start + out_like.nbytes, np.uint8)
    inside = storage[: a.nbytes].view(a.dtype).reshape(a.shape)
    inside[...] = a
    return inside, storage[start:].view(out_like.dtype).reshape(out_like.shape)


@pytest.mark.parametrize("op", OPS)
def test_out_overlapping_an_input_is_refused(op):
    arrays = _arrays(np.float64)
    expected = _call(op, arrays)
    for name in CALLS[op][0]:
        moved, out = _overlapping(arrays[name], expected, shift=8)
        with pytest.raises(ValueError, match=f"out shares memory with {ARG_NAME.get(name, name)}"):
            _call(op, {**arrays, name: moved}, out=out)
        np.testing.assert_array_equal(moved, arrays[name])  # nothing was written


def test_relu_in_place_means_the_same_array_only():
    x = _arrays(np.float64)["x"]
    moved, out = _overlapping(x, x, shift=x.nbytes - 8)  # out starts one element into x
    with pytest.raises(ValueError, match="only out=x exactly"):
        ck.relu(moved, out=out)
    dy, x2 = _arrays(np.float64)["dx"], x.copy()
    with pytest.raises(ValueError, match="out shares memory with x"):
        ck.relu_backward(dy, x2, out=x2)  # in place is for dy only
    with pytest.raises(ValueError, match="out shares memory with x"):
        ck.lrn(x2, 3, out=x2)  # LRN reads neighbouring channels: never in place


def test_max_pool2d_out_refusals():
    x = _arrays(np.float64)["x"]
    y, idx = ck.max_pool2d(x, **POOL)
    with pytest.raises(TypeError, match=r"out must be a pair \(y, idx\)"):
        ck.max_pool2d(x, **POOL, out=np.empty_like(y))
    with pytest.raises(TypeError, match=r"out\[1\] \(idx\) must have dtype int64"):
        ck.max_pool2d(x, **POOL, out=(np.empty_like(y), np.empty_like(y)))
    with pytest.raises(TypeError, match=r"out\[0\] \(y\) must have dtype float64"):
        ck.max_pool2d(x, **POOL, out=(np.empty_like(idx), np.empty_like(idx)))
    storage = np.zeros(y.nbytes + 8, np.uint8)  # y and idx overlapping each other
    y_out = storage[: y.nbytes].view(np.float64).reshape(y.shape)
    idx_out = storage[8:].view(np.int64).reshape(idx.shape)
    with pytest.raises(ValueError, match=r"out\[1\] \(idx\) shares memory with out\[0\] \(y\)"):
        ck.max_pool2d(x, **POOL, out=(y_out, idx_out))
    moved, y_out = _overlapping(x, y, shift=8)
    with pytest.raises(ValueError, match=r"out\[0\] \(y\) shares memory with x"):
        ck.max_pool2d(moved, **POOL, out=(y_out, np.empty_like(idx)))


# ---------------------------------------------------------------------------------------------
# threads

THREADS, ITERATIONS = 4, 20


def _workload(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 8, 12, 12))
    w = rng.standard_normal((16, 8, 3, 3))
    dy = rng.standard_normal((3, 16, 12, 12))
    return x, w, dy


def _run(x, w, dy, outs=None):
    """conv2d, its backward, max_pool2d (+ backward) and LRN (+ backward) on one workload."""
    o = outs or {}
    y = ck.conv2d(x, w, padding=1, out=o.get("y"))
    dx = ck.conv2d_backward_input(dy, w, x.shape, padding=1, out=o.get("dx"))
    dw = ck.conv2d_backward_weight(x, dy, w.shape, padding=1, out=o.get("dw"))
    pool = o.get("p"), o.get("idx")
    p, idx = ck.max_pool2d(y, 2, out=pool if pool[0] is not None else None)
    dp = ck.max_pool2d_backward(p, idx, y.shape, out=o.get("dp"))
    n = ck.lrn(y, 5, alpha=1e-3, k=2.0, out=o.get("n"))
    dn = ck.lrn_backward(dy, y, 5, alpha=1e-3, k=2.0, out=o.get("dn"))
    return {"y": y, "dx": dx, "dw": dw, "p": p, "idx": idx, "dp": dp, "n": n, "dn": dn}


def _in_threads(work):
    """Runs work(thread_index) on THREADS threads started together; re-raises their failures."""
    barrier = threading.Barrier(THREADS)
    errors = []

    def main(t):
        try:
            barrier.wait()
            work(t)
        except BaseException as e:  # noqa: BLE001 - reported below, with the thread
            errors.append((t, e))

    threads = [threading.Thread(target=main, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError(f"thread {errors[0][0]} failed") from errors[0][1]


def _assert_same(actual, expected, what):
    for key in expected:
        np.testing.assert_allclose(
            actual[key], expected[key], rtol=1e-12, atol=1e-12, err_msg=f"{what}: {key}"
        )


@pytest.mark.parametrize("with_out", [False, True], ids=["new-arrays", "out-buffers"])
def test_concurrent_calls_match_sequential_ones(with_out):
    workloads = [_workload(seed) for seed in range(6)]
    expected = [_run(*wl) for wl in workloads]

    def work(t):
        outs = {k: np.empty_like(v) for k, v in expected[0].items()} if with_out else None
        for i in range(ITERATIONS):
            k = (t * 7 + i) % len(workloads)  # threads work on different inputs at once
            result = _run(*workloads[k], outs=outs)
            _assert_same(result, expected[k], f"thread {t}, iteration {i}, workload {k}")

    _in_threads(work)


def test_thread_count_holds_for_every_thread():
    """set_num_threads is one setting for the process, not per thread (as OpenMP's own is)."""
    before = ck.get_num_threads()
    x, w, dy = _workload(0)
    expected = _run(x, w, dy)
    seen = []
    try:
        ck.set_num_threads(1)

        def work(t):
            seen.append(ck.get_num_threads())
            _assert_same(_run(x, w, dy), expected, f"thread {t}")

        _in_threads(work)
    finally:
        ck.set_num_threads(before)
    assert seen == [1] * THREADS


_SMALLER_TEAM_SCRIPT = """
import numpy as np
import convkernels as ck
from convkernels import reference as ref

ck.set_num_threads(2)  # asked for 2, OMP_THREAD_LIMIT=1 gives teams of 1
rng = np.random.default_rng(0)
a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 100))
np.testing.assert_allclose(ck.gemm(a, b), a @ b, rtol=1e-12, atol=1e-12)
for algorithm in ("auto", "direct", "gemm", "winograd"):
    ck.set_conv_algorithm(algorithm)
    for N, C, H, K, R, pad in [(4, 6, 14, 16, 5, 0), (4, 32, 16, 32, 5, 2), (2, 64, 13, 64, 3, 1)]:
        x, w = rng.standard_normal((N, C, H, H)), rng.standard_normal((K, C, R, R))
        y = ck.conv2d(x, w, padding=pad)
        dy = rng.standard_normal(y.shape)
        for got, want in [
            (y, ref.conv2d(x, w, padding=pad)),
            (ck.conv2d_backward_input(dy, w, x.shape, padding=pad),
             ref.conv2d_backward_input(dy, w, x.shape, padding=pad)),
            (ck.conv2d_backward_weight(x, dy, w.shape, padding=pad),
             ref.conv2d_backward_weight(x, dy, w.shape, padding=pad)),
        ]:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=algorithm)
print("ok")
"""


def test_kernels_share_work_by_the_team_that_runs():
    """OpenMP may run a region with fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC, a
    caller's own parallel region): work shared by the count asked for went undone (the GEMM
    left rows unwritten)."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _SMALLER_TEAM_SCRIPT], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
