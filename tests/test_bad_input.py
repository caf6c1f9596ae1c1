"""Wrong input to every op raises TypeError or ValueError naming the argument.

The contract (DESIGN.md, "Ops and their conventions"): every op checks its inputs before any
kernel runs, raises ValueError/TypeError that names the argument, and no input, however wrong,
may crash the process. Inputs are never modified, and inputs that are not C-contiguous or not
aligned are copied first, so they give exactly the results of their contiguous copies.

The tables below start from one valid call per op (VALID) and change one argument per case.
"""

import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import needs_torch, torch, unchanged
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import convkernels as ck
from convkernels.reference import conv2d_output_size, pool_output_size


def _frozen(a):
    """Read-only, so a Python-level write fails loudly; the snapshots catch writes from C++."""
    a.flags.writeable = False
    return a


_rng = np.random.default_rng(1234)
X = _frozen(_rng.standard_normal((2, 4, 6, 6)))  # input of conv (groups=2), pools, LRN, LCN
X2 = _frozen(_rng.standard_normal(X.shape))  # dy of the ops whose output has the shape of x
W = _frozen(_rng.standard_normal((6, 2, 3, 3)))  # groups=2: K=6 filters of C/groups=2 channels
B = _frozen(_rng.standard_normal(6))
DY = _frozen(_rng.standard_normal((2, 6, 4, 4)))  # conv output gradient: stride 1, no padding
DYP = _frozen(_rng.standard_normal((2, 4, 3, 3)))  # 2x2 pooling output gradient
IDX = _frozen(_rng.integers(0, 36, DYP.shape).astype(np.int64))  # flat indices into a 6x6 plane
_MODULE_ARRAYS = [X, X2, W, B, DY, DYP, IDX]
_MODULE_SNAPSHOT = unchanged(*_MODULE_ARRAYS)

CONV = dict(stride=1, padding=0, dilation=1, groups=2)
POOL = dict(kernel_size=2, stride=None, padding=0, ceil_mode=False)

# One valid call per op; every case below changes one argument of one of these.
VALID = {
    "conv2d": dict(x=X, w=W, b=B, **CONV),
    "conv2d_backward_input": dict(dy=DY, w=W, input_shape=X.shape, **CONV),
    "conv2d_backward_weight": dict(x=X, dy=DY, weight_shape=W.shape, **CONV),
    "conv2d_backward_bias": dict(dy=DY),
    "max_pool2d": dict(x=X, **POOL),
    "max_pool2d_backward": dict(dy=DYP, idx=IDX, input_shape=X.shape),
    "avg_pool2d": dict(x=X, **POOL, count_include_pad=True),
    "avg_pool2d_backward": dict(dy=DYP, input_shape=X.shape, **POOL, count_include_pad=True),
    "relu": dict(x=X, negative_slope=0.1),
    "relu_backward": dict(dy=X2, x=X, negative_slope=0.1),
    "tanh": dict(x=X, amplitude=1.7159, slope=2 / 3),
    "tanh_backward": dict(dy=X2, y=X, amplitude=1.7159, slope=2 / 3),
    "lrn": dict(x=X, size=3, alpha=1e-4, beta=0.75, k=1.0),
    "lrn_backward": dict(dy=X2, x=X, size=3, alpha=1e-4, beta=0.75, k=1.0),
    "lcn": dict(x=X, size=3, sigma=1.0, eps=1e-4),
    "lcn_backward": dict(dy=X2, x=X, size=3, sigma=1.0, eps=1e-4),
}
OPS = sorted(VALID)

ARRAY_ARGS = {"x", "w", "b", "dy", "idx", "y"}
FLOAT_ARRAY_ARGS = {"x", "w", "b", "dy", "y"}
VE, TE = ValueError, TypeError

# fmt: off
KIND = {  # the kind of every parameter that is not an array
    "stride": "pair", "padding": "pair", "dilation": "pair", "kernel_size": "pair",
    "groups": "int", "size": "int",
    "negative_slope": "float", "alpha": "float", "beta": "float", "k": "float",
    "sigma": "float", "eps": "float", "amplitude": "float", "slope": "float",
    "ceil_mode": "bool", "count_include_pad": "bool",
    "input_shape": "shape", "weight_shape": "shape",
}
# fmt: on


def _valid(op, dtype=np.float64):
    """VALID[op] with its float arrays in `dtype`."""
    kwargs = dict(VALID[op])
    for name in FLOAT_ARRAY_ARGS & set(kwargs):
        if kwargs[name] is not None:
            kwargs[name] = _frozen(kwargs[name].astype(dtype))
    return kwargs


def _call(op, kwargs):
    return getattr(ck, op)(**kwargs)


def _short(value):
    """A test id for a value: 2**70 rather than its digits."""
    if isinstance(value, np.ndarray):
        return f"array{value.shape}-{value.dtype.str}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if type(value) is int and abs(value) >= 2**16:
        n, sign = abs(value), "-" if value < 0 else ""
        if n & (n - 1) == 0:
            return f"{sign}2**{n.bit_length() - 1}"
        if n & (n + 1) == 0:
            return f"{sign}(2**{n.bit_length()}-1)"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _case(op, exc, name, what, **changes):
    """One row: call VALID[op] with `changes`, expect `exc` whose message names `name`."""
    return pytest.param(op, changes, exc, name, id=f"{op}-{what}")


def _arrays_of(op):
    return [name for name, v in VALID[op].items() if name in ARRAY_ARGS and v is not None]


# ---------------------------------------------------------------------------------------------
# the tables

NOT_ARRAYS = [None, [[1.0, 2.0]], "abc", {"x": 1.0}, object(), 1.5, 3, (1.0, 2.0)]
# fmt: off
BAD_FLOAT_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.float16, np.longdouble,
                    np.complex64, np.complex128, ">f4", ">f8", object]
# fmt: on
BAD_IDX_DTYPES = [np.int32, np.uint64, np.int16, np.float64, np.bool_, ">i8"]


def _not_array_cases():
    for op in OPS:
        for name in _arrays_of(op):
            for junk in NOT_ARRAYS:
                if junk is None and name == "b":
                    continue  # b=None: no bias
                yield _case(op, TE, name, f"{name}={_short(junk)}", **{name: junk})


def _dtype_cases():
    for op in OPS:
        kwargs = VALID[op]
        floats = [n for n in _arrays_of(op) if n in FLOAT_ARRAY_ARGS]
        for name in floats:
            for dtype in BAD_FLOAT_DTYPES:
                bad = np.zeros(kwargs[name].shape, dtype)
                yield _case(op, TE, name, f"{name}-{bad.dtype.str}", **{name: bad})
            if len(floats) > 1:  # one array's dtype differs from the others'
                f32 = {n: kwargs[n].astype(np.float32) for n in floats}
                yield _case(op, TE, name, f"{name}-f4-among-f8", **{name: f32[name]})
                others = {n: a for n, a in f32.items() if n != name}
                yield _case(op, TE, name, f"{name}-f8-among-f4", **others)
        if "idx" in kwargs:
            for dtype in BAD_IDX_DTYPES:
                bad = np.zeros(kwargs["idx"].shape, dtype)
                yield _case(op, TE, "idx", f"idx-{bad.dtype.str}", idx=bad)


def _ndim_cases():
    for op in OPS:
        for name in _arrays_of(op):
            if op in ("relu", "tanh") or name == "b":
                continue  # relu and tanh take any shape; b has its own cases
            a = VALID[op][name]
            variants = {"3d": a[0], "5d": a[None], "1d": a.reshape(-1), "0d": np.array(a.flat[0])}
            for what, bad in variants.items():
                yield _case(op, VE, name, f"{name}-{what}", **{name: bad})


# Bad values for each kind of parameter, by the exception they must raise.
# fmt: off
BAD_PARAMS = {
    "pair": {
        TE: [1.0, "1", None, True, np.float64(2.0), 1j, object(), (1, 1.5), (1, True), (1, None)],
        VE: [(1, 1, 1), (1,), [], 2**31, (1, 2**31), 2**63 - 1, 2**63, 2**70, (2**70, 1),
             -(2**70), -(2**31)],
    },
    "positive": {VE: [0, -1, (1, 0), (-3, 1)]},
    "non-negative": {VE: [-1, (0, -1), (-2, 0)]},
    "int": {
        TE: [1.0, "2", None, True, False, (1, 1), np.float32(1.0)],
        VE: [0, -1, 2**31, 2**63 - 1, 2**70, -(2**31), -(2**70)],
    },
    "float": {
        TE: ["1", None, 1j, True, [1.0]],
        VE: [math.nan, math.inf, -math.inf, np.float32("nan"), 2**1024, -(2**1024)],
    },
    "float-positive": {VE: [0.0, -0.0, -1.0, 0, -1e-300]},
    "bool": {TE: [1, 0, "True", None, 1.0]},
    "shape": {
        TE: [None, 5, "abcd", (2, 4, 6.0, 6), (2, 4, True, 6), (2, 4, "6", 6)],
        VE: [(2, 4, 6), (2, 4, 6, 6, 1), (), (0, 4, 6, 6), (2, 4, 6, -6), (2**70, 4, 6, 6),
             (2**40, 2**40, 1, 1), (2**62,) * 4, (2**63 - 1,) * 4],
    },
}
EXTRA_KINDS = {  # parameter -> further kinds of values it must reject
    "stride": ["positive"], "kernel_size": ["positive"], "dilation": ["positive"],
    "padding": ["non-negative"], "sigma": ["float-positive"], "eps": ["float-positive"],
}
# fmt: on


def _param_cases():
    for op in OPS:
        for name in VALID[op]:
            if name in ARRAY_ARGS:
                continue
            for kind in [KIND[name], *EXTRA_KINDS.get(name, [])]:
                for exc, values in BAD_PARAMS[kind].items():
                    for value in values:
                        if value is None and name == "stride" and "pool" in op:
                            continue  # pooling: stride=None means stride=kernel_size
                        yield _case(op, exc, name, f"{name}={_short(value)}", **{name: value})


def _rows(op, rows):
    """ValueError cases of one op: (argument the message names, id, changes)."""
    return [_case(op, VE, name, what, **changes) for name, what, changes in rows]


# Values of the right type and form that do not fit together.
# fmt: off
SEMANTIC_CASES = [
    *_rows("conv2d", [
        ("groups", "C-not-divisible-by-groups", dict(groups=3)),
        ("groups", "K-not-divisible-by-groups", dict(groups=4)),
        ("groups", "groups-over-C", dict(groups=8)),
        ("x", "C-odd-groups-2", dict(x=X[:, :3])),
        ("w", "K-odd-groups-2", dict(w=W[:5], b=B[:5])),
        ("w", "w-channels-not-C/groups", dict(w=np.ones((6, 4, 3, 3)))),
        ("w", "w-channels-groups-1", dict(groups=1)),
        ("x", "input-smaller-than-kernel", dict(x=X[:, :, :2, :2])),
        ("x", "dilated-kernel-too-large", dict(dilation=3)),
        ("x", "empty-by-width", dict(x=X[:, :, :, :2])),
        ("x", "zero-batch", dict(x=X[:0])),
        ("x", "zero-height", dict(x=X[:, :, :0])),
        ("w", "zero-filters", dict(w=W[:0], b=None)),
        ("w", "zero-width-kernel", dict(w=W[..., :0])),
        ("b", "b-too-short", dict(b=B[:5])),
        ("b", "b-too-long", dict(b=np.ones(7))),
        ("b", "b-empty", dict(b=np.ones(0))),
        ("b", "b-2d", dict(b=B[None])),
        ("b", "b-column", dict(b=B[:, None])),
        ("b", "b-0d", dict(b=np.array(1.0))),
        ("b", "b-4d", dict(b=B.reshape(1, 6, 1, 1))),
    ]),
    *_rows("conv2d_backward_input", [
        ("dy", "dy-wrong-width", dict(dy=DY[..., :3])),
        ("dy", "dy-wrong-K", dict(dy=DY[:, :5])),
        ("dy", "dy-wrong-N", dict(dy=DY[:1])),
        ("dy", "dy-for-stride-1", dict(stride=2)),
        ("dy", "dy-for-no-padding", dict(padding=1)),
        ("dy", "huge-height-small-dy", dict(input_shape=(2, 4, 2**31, 6))),
        ("input_shape", "empty-output", dict(input_shape=(2, 4, 2, 2))),
        ("input_shape", "C-not-divisible", dict(input_shape=(2, 3, 6, 6))),
        ("input_shape", "C-not-matching-w", dict(input_shape=(2, 8, 6, 6))),
        ("input_shape", "overflow", dict(input_shape=(2**40, 2**40, 1, 1))),
        ("groups", "K-not-divisible", dict(groups=4)),
        ("w", "zero-filters", dict(w=W[:0])),
    ]),
    *_rows("conv2d_backward_weight", [
        ("dy", "dy-wrong-height", dict(dy=DY[:, :, :3])),
        ("dy", "dy-wrong-N", dict(dy=DY[:1])),
        ("dy", "dy-for-other-K", dict(weight_shape=(4, 2, 3, 3))),
        ("weight_shape", "channels-not-C/groups", dict(weight_shape=(6, 3, 3, 3))),
        ("weight_shape", "K-not-divisible", dict(weight_shape=(5, 2, 3, 3))),
        ("x", "kernel-larger-than-input", dict(weight_shape=(6, 2, 7, 7))),
        ("weight_shape", "kernel-too-large", dict(weight_shape=(6, 2, 2**31, 1))),
        ("weight_shape", "overflow", dict(weight_shape=(2**40, 2**40, 1, 1))),
        ("weight_shape", "overflow-kernel", dict(weight_shape=(6, 2, 2**40, 2**40))),
        ("weight_shape", "overflow-bytes", dict(weight_shape=(2**62, 2, 3, 3))),
        ("x", "C-odd", dict(x=X[:, :3])),
    ]),
    *_rows("conv2d_backward_bias", [("dy", "dy-3d", dict(dy=DY[0]))]),
    *_rows("max_pool2d", [
        ("padding", "padding-over-half", dict(padding=2)),
        ("padding", "padding-over-half-k3", dict(kernel_size=3, padding=2)),
        ("padding", "padding-over-half-w", dict(kernel_size=(2, 4), padding=(1, 3))),
        ("x", "input-smaller-than-kernel", dict(kernel_size=7)),
        ("x", "input-smaller-than-kernel-w", dict(kernel_size=(2, 7))),
        ("x", "zero-width", dict(x=X[..., :0])),
        ("x", "zero-channels", dict(x=X[:, :0])),
    ]),
    *_rows("max_pool2d_backward", [
        ("idx", "idx-past-plane", dict(idx=np.where(IDX == IDX.flat[0], 36, IDX))),
        ("idx", "idx-negative", dict(idx=np.where(IDX == IDX.flat[-1], -1, IDX))),
        ("idx", "idx-huge", dict(idx=IDX + 2**62)),
        ("idx", "idx-most-negative", dict(idx=np.full(IDX.shape, np.iinfo(np.int64).min))),
        ("idx", "idx-for-smaller-input", dict(input_shape=(2, 4, 3, 3))),
        ("idx", "idx-wrong-shape", dict(idx=IDX[:, :, :2])),
        ("idx", "idx-wrong-channels", dict(idx=IDX[:, :3])),
        ("idx", "idx-transposed-shape", dict(idx=np.zeros((2, 4, 3, 2), np.int64),
                                             dy=DYP[..., :2].swapaxes(2, 3))),
        ("input_shape", "batch-not-dy", dict(input_shape=(1, 4, 6, 6))),
        ("input_shape", "channels-not-dy", dict(input_shape=(2, 3, 6, 6))),
        ("input_shape", "overflow", dict(input_shape=(2**40, 2**40, 1, 1))),
        ("input_shape", "overflow-plane", dict(input_shape=(2, 4, 2**62, 2**62))),
    ]),
    *_rows("avg_pool2d", [
        ("padding", "padding-over-half", dict(padding=2)),
        ("padding", "padding-over-half-h", dict(kernel_size=(3, 2), padding=(2, 0))),
        ("x", "input-smaller-than-kernel", dict(kernel_size=(7, 1))),
        ("x", "zero-batch", dict(x=X[:0])),
    ]),
    *_rows("avg_pool2d_backward", [
        ("dy", "dy-wrong-width", dict(dy=DYP[..., :2])),
        ("dy", "dy-wrong-channels", dict(dy=DYP[:, :3])),
        ("dy", "dy-for-stride-1", dict(stride=1)),
        ("dy", "dy-for-ceil-mode", dict(input_shape=(2, 4, 7, 7), ceil_mode=True)),
        ("dy", "huge-height-small-dy", dict(input_shape=(2, 4, 2**31, 6))),
        ("padding", "padding-over-half", dict(padding=2)),
        ("input_shape", "input-smaller-than-kernel", dict(input_shape=(2, 4, 1, 1))),
        ("input_shape", "overflow", dict(input_shape=(2**40, 2**40, 1, 1))),
    ]),
    *_rows("relu_backward", [
        ("dy", "dy-other-shape", dict(dy=X2[..., :5])),
        ("dy", "dy-transposed-shape", dict(dy=X2[..., :5].swapaxes(2, 3))),
        ("dy", "dy-broadcastable", dict(dy=X2[:1])),
    ]),
    *_rows("tanh_backward", [
        ("dy", "dy-other-shape", dict(dy=X2[..., :5])),
        ("dy", "dy-broadcastable", dict(dy=X2[:1])),
        ("amplitude", "amplitude-zero", dict(amplitude=0.0)),
        ("amplitude", "amplitude-inf", dict(amplitude=math.inf)),
        ("slope", "slope-nan", dict(slope=math.nan)),
    ]),
    *_rows("tanh", [
        ("amplitude", "amplitude-nan", dict(amplitude=math.nan)),
        ("slope", "slope-inf", dict(slope=-math.inf)),
    ]),
    *_rows("lrn", [("x", "zero-channels", dict(x=X[:, :0]))]),
    *_rows("lrn_backward", [
        ("dy", "dy-other-shape", dict(dy=X2[:, :3])),
        ("x", "zero-height", dict(x=X[:, :, :0], dy=X2[:, :, :0])),
    ]),
    *_rows("lcn", [
        ("size", "even-size-2", dict(size=2)),
        ("size", "even-size-8", dict(size=8)),
        ("size", "size-4096", dict(size=4096)),
        ("size", "size-4097", dict(size=4097)),
        ("x", "zero-width", dict(x=X[..., :0])),
    ]),
    *_rows("lcn_backward", [
        ("size", "even-size-4", dict(size=4)),
        ("dy", "dy-other-shape", dict(dy=X2[:1])),
        ("x", "zero-batch", dict(x=X[:0], dy=X2[:0])),
    ]),
]
# fmt: on

BAD_CALLS = [*_not_array_cases(), *_dtype_cases(), *_ndim_cases(), *_param_cases(), *SEMANTIC_CASES]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_valid_calls_succeed(op, dtype):
    """The starting point of every table row is a valid call."""
    result = _call(op, _valid(op, dtype))
    outs = result if op == "max_pool2d" else (result,)
    assert all(isinstance(a, np.ndarray) for a in outs)
    assert outs[0].dtype == dtype
    assert np.all(np.isfinite(outs[0]))


@pytest.mark.parametrize("op, changes, exc, name", BAD_CALLS)
def test_bad_argument_raises_naming_it(op, changes, exc, name):
    snapshot = unchanged(*[v for v in changes.values() if isinstance(v, np.ndarray)])
    with pytest.raises(exc, match=rf"\b{re.escape(name)}\b"):
        _call(op, {**VALID[op], **changes})
    snapshot.check()
    _MODULE_SNAPSHOT.check()


# fmt: off
@pytest.mark.parametrize("op, changes, name", [
    pytest.param("relu_backward", dict(negative_slope=math.nan), "negative_slope", id="slope"),
    pytest.param("lrn_backward", dict(size=0), "size", id="lrn-size"),
    pytest.param("lrn_backward", dict(x=X[:0], dy=X2[:0]), "x", id="lrn-empty"),
    pytest.param("lcn_backward", dict(sigma=0.0), "sigma", id="lcn-sigma"),
    pytest.param("lcn_backward", dict(x=X[:0], dy=X2[:0]), "x", id="lcn-empty"),
])
# fmt: on
def test_backward_errors_name_the_backward_op(op, changes, name):
    """A message starts with the function called, not the forward whose checks it shares."""
    with pytest.raises(ValueError, match=rf"^{op}: .*\b{name}\b"):
        _call(op, {**VALID[op], **changes})


# ---------------------------------------------------------------------------------------------
# run-time settings


# fmt: off
@pytest.mark.parametrize("name, exc, match", [
    pytest.param("foo", VE, "'foo'", id="foo"),
    pytest.param("", VE, "ISA level ''", id="empty"),
    pytest.param("AVX2", VE, "'AVX2'", id="upper-case"),
    pytest.param("avx2 ", VE, "'avx2 '", id="trailing-space"),
    pytest.param("\ud800", VE, "ISA level", id="lone-surrogate"),  # a str with no UTF-8 form
    pytest.param(None, TE, r"\bname\b", id="None"),
    pytest.param(2, TE, r"\bname\b", id="int"),
    pytest.param(b"avx2", TE, r"\bname\b", id="bytes"),
    pytest.param(["avx2"], TE, r"\bname\b", id="list"),
])
# fmt: on
def test_set_isa_rejects(name, exc, match):
    before = ck.get_isa()
    try:
        with pytest.raises(exc, match=match):
            ck.set_isa(name)
        assert ck.get_isa() == before
    finally:
        ck.set_isa(before)


# fmt: off
@pytest.mark.parametrize("n, exc", [
    (0, VE), (-1, VE), (-(2**31), VE), (2**31, VE), (2**40, VE), (-(2**40), VE), (2**70, VE),
    (1.5, TE), ("2", TE), (None, TE), (True, TE),
], ids=lambda v: v.__name__ if isinstance(v, type) else _short(v))
# fmt: on
def test_set_num_threads_rejects(n, exc):
    before = ck.get_num_threads()
    try:
        with pytest.raises(exc, match=r"^set_num_threads: .*\bn\b"):
            ck.set_num_threads(n)
        assert ck.get_num_threads() == before
    finally:
        ck.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# layouts: non-contiguous inputs give the results of their contiguous copies


def _fortran(a):
    return np.asfortranarray(a)


def _transposed(a):
    """The same values, stored with the last two axes swapped."""
    if a.ndim < 2:
        return _reversed(a)
    return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)


def _step(a):
    """Every other element of a buffer twice as wide."""
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _reversed(a):
    """A negative stride along the last axis."""
    return np.ascontiguousarray(a[..., ::-1])[..., ::-1]


def _unaligned(a):
    """C-contiguous, but one byte off the element alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _broadcast(a):
    """A read-only zero-stride view: the first column repeated (other values, same layout)."""
    return np.broadcast_to(a[..., :1], a.shape)


# fmt: off
LAYOUTS = {"fortran": _fortran, "transposed": _transposed, "step": _step, "reversed": _reversed,
           "unaligned": _unaligned, "broadcast": _broadcast}
# fmt: on


def _assert_same_results(expected, actual):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
    else:
        expected, actual = (expected,), (actual,)
    for e, a in zip(expected, actual):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_inputs_match_contiguous_copies(op, layout, dtype):
    kwargs = _valid(op, dtype)
    odd = {
        k: LAYOUTS[layout](v) if k in ARRAY_ARGS and v is not None else v for k, v in kwargs.items()
    }
    arrays = [v for k, v in odd.items() if k in ARRAY_ARGS and v is not None]
    assert all(not (a.flags.c_contiguous and a.flags.aligned) for a in arrays if a.ndim > 1)
    copies = {
        k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in odd.items()
    }
    snapshot = unchanged(*arrays)
    expected = _call(op, copies)
    actual = _call(op, odd)
    snapshot.check()
    _assert_same_results(expected, actual)


@needs_torch
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_torch_tensors_match_contiguous_copies(op):
    """Strided tensors come in through __dlpack__ and are copied like strided arrays."""
    kwargs = _valid(op)
    # [..., 0] of a stacked pair: the last axis has stride 2.
    odd = {
        k: torch.from_numpy(np.stack([v, v], axis=-1))[..., 0]
        if k in ARRAY_ARGS and v is not None
        else v
        for k, v in kwargs.items()
    }
    assert all(not t.is_contiguous() for t in odd.values() if isinstance(t, torch.Tensor))
    before = {k: t.clone() for k, t in odd.items() if isinstance(t, torch.Tensor)}
    _assert_same_results(_call(op, kwargs), _call(op, odd))
    for k, t in before.items():
        assert torch.equal(t, odd[k]), f"{k} was modified"


# A zero-stride view of 2**40 float32 elements (4 TiB) cannot be copied to C order: the op must
# raise (MemoryError is fair here), not crash. Run in a child process with its address space
# capped, so a crash fails one test instead of the run, and no allocation can succeed.
_HUGE_VIEW_CHILD = textwrap.dedent(
    """
    import resource
    import numpy as np
    import convkernels as ck
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = 8 << 30 if hard == resource.RLIM_INFINITY else min(8 << 30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    big = np.broadcast_to(np.float32(1), (2**16, 2**16, 2**8, 1))
    try:
        {call}
    except (MemoryError, ValueError, TypeError) as e:
        print("raised", type(e).__name__)
    else:
        print("returned")
    """
)


@pytest.mark.parametrize(
    "call",
    [
        "ck.relu(big)",
        "ck.conv2d_backward_bias(big)",
        "ck.max_pool2d(big, 1)",
        "ck.lrn_backward(np.ones((1, 1, 1, 1), np.float32), big, 1)",
    ],
    ids=["relu", "conv2d_backward_bias", "max_pool2d", "lrn_backward"],
)
def test_huge_zero_stride_view_raises_instead_of_crashing(call):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _HUGE_VIEW_CHILD.format(call=call)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, (
        f"{call} killed the process (exit status {proc.returncode}): {proc.stderr[-2000:]}"
    )
    assert proc.stdout.startswith("raised"), proc.stdout


@pytest.mark.parametrize("sigma", [1e-200, 5e-324], ids=["1e-200", "subnormal"])
@pytest.mark.parametrize("op", ["lcn", "lcn_backward"])
def test_lcn_tiny_sigma_is_rejected_or_finite(op, sigma):
    """A positive sigma whose square underflows: reject it by name, or return finite numbers."""
    try:
        result = _call(op, {**VALID[op], "sigma": sigma})
    except ValueError as e:
        assert re.search(r"\bsigma\b", str(e)), str(e)
    else:
        assert np.all(np.isfinite(result)), f"{op}(sigma={sigma}) returned non-finite values"


# ---------------------------------------------------------------------------------------------
# fuzz: random shapes, dtypes and parameters into every op

SMALL_INTS = st.integers(-3, 8)
# Huge values are all beyond what validation accepts (>= 2**31 or <= -2**31), so no call can ask
# for a huge valid output.
HUGE_INTS = st.one_of(
    st.integers(2**31, 2**70),
    st.integers(-(2**70), -(2**31)),
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63), 2**1024]),
)
WRONG_TYPES = st.sampled_from(
    [None, 1.5, "2", True, False, (1, 2, 3), [1], object(), 1j, np.float64(2.0), b"1", {}]
)
INT_LIKE = st.one_of(SMALL_INTS, HUGE_INTS, WRONG_TYPES)
JUNK = {
    "pair": st.one_of(INT_LIKE, st.tuples(INT_LIKE, INT_LIKE)),
    "int": INT_LIKE,
    "float": st.one_of(st.floats(), SMALL_INTS, HUGE_INTS, WRONG_TYPES),
    "bool": st.one_of(st.booleans(), SMALL_INTS, WRONG_TYPES),
    "shape": st.one_of(
        st.tuples(INT_LIKE, INT_LIKE, INT_LIKE, INT_LIKE),
        st.lists(st.one_of(SMALL_INTS, HUGE_INTS), max_size=5).map(tuple),
        WRONG_TYPES,
    ),
}
FUZZ_DTYPES = [np.float32, np.float64, *BAD_FLOAT_DTYPES]
FUZZ_LAYOUTS = ["C", "fortran", "step", "reversed"]


def _fuzz_values(shape, dtype):
    """Small deterministic values in any dtype, without a cast that warns."""
    base = np.arange(math.prod(shape), dtype=np.int64).reshape(shape) % 7 - 3
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        values = base > 0
    elif dtype.kind in "iu":
        values = np.abs(base)
    else:
        values = base * 0.5
    return np.array(values, dtype=dtype)  # an array even for shape () (arithmetic gave a scalar)


def _layout(a, layout):
    if layout == "C" or a.ndim == 0 or a.size == 0:
        return a
    return LAYOUTS[layout](a)


@st.composite
def random_arrays(draw):
    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=5)))
    a = _fuzz_values(shape, draw(st.sampled_from(FUZZ_DTYPES)))
    return _layout(a, draw(st.sampled_from(FUZZ_LAYOUTS)))


ARRAY_JUNK = st.one_of(random_arrays(), st.sampled_from(NOT_ARRAYS))


@st.composite
def _conv_base(draw, make):
    g, Cg, Kg = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    N, R, S = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = max(1, dil[0] * (R - 1) + 1 - 2 * pad[0]) + draw(st.integers(0, 3))
    W_ = max(1, dil[1] * (S - 1) + 1 - 2 * pad[1]) + draw(st.integers(0, 3))
    P = conv2d_output_size(H, R, stride[0], pad[0], dil[0])
    Q = conv2d_output_size(W_, S, stride[1], pad[1], dil[1])
    x, w = make((N, g * Cg, H, W_)), make((g * Kg, Cg, R, S))
    params = dict(stride=stride, padding=pad, dilation=dil, groups=g)
    return dict(
        x=x,
        w=w,
        b=make((g * Kg,)) if draw(st.booleans()) else None,
        dy=make((N, g * Kg, P, Q)),
        params=params,
    )


@st.composite
def _pool_base(draw, make):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    ceil_mode = draw(st.booleans())
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H = max(1, kernel[0] - 2 * pad[0]) + draw(st.integers(0, 3))
    W_ = max(1, kernel[1] - 2 * pad[1]) + draw(st.integers(0, 3))
    s = kernel if stride is None else stride
    P = pool_output_size(H, kernel[0], s[0], pad[0], ceil_mode)
    Q = pool_output_size(W_, kernel[1], s[1], pad[1], ceil_mode)
    seed = draw(st.integers(0, 2**32 - 1))
    idx = np.random.default_rng(seed).integers(0, H * W_, (N, C, P, Q)).astype(np.int64)
    params = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=ceil_mode)
    return dict(
        x=make((N, C, H, W_)),
        dy=make((N, C, P, Q)),
        idx=idx,
        params=params,
        count_include_pad=draw(st.booleans()),
    )


@st.composite
def valid_calls(draw, op):
    """A small valid call of `op`, so that unmutated calls reach the kernels."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    layout = draw(st.sampled_from(FUZZ_LAYOUTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def make(shape):
        return _layout(np.array(rng.standard_normal(shape), dtype=dtype), layout)

    if op.startswith("conv2d"):
        c = draw(_conv_base(make))
        x_shape = c["x"].shape
        return {
            "conv2d": dict(x=c["x"], w=c["w"], b=c["b"], **c["params"]),
            "conv2d_backward_input": dict(dy=c["dy"], w=c["w"], input_shape=x_shape, **c["params"]),
            "conv2d_backward_weight": dict(
                x=c["x"], dy=c["dy"], weight_shape=c["w"].shape, **c["params"]
            ),
            "conv2d_backward_bias": dict(dy=c["dy"]),
        }[op]
    if "pool" in op:
        p = draw(_pool_base(make))
        cip = dict(count_include_pad=p["count_include_pad"])
        return {
            "max_pool2d": dict(x=p["x"], **p["params"]),
            "max_pool2d_backward": dict(dy=p["dy"], idx=p["idx"], input_shape=p["x"].shape),
            "avg_pool2d": dict(x=p["x"], **p["params"], **cip),
            "avg_pool2d_backward": dict(dy=p["dy"], input_shape=p["x"].shape, **p["params"], **cip),
        }[op]
    if op.startswith("relu"):
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=5)))
        kwargs = dict(x=make(shape), negative_slope=draw(st.floats(-1, 1)))
    elif op.startswith("tanh"):
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=5)))
        scales = dict(amplitude=draw(st.floats(0.5, 2)), slope=draw(st.floats(-1, 1)))
        kwargs = (
            dict(y=make(shape), **scales)
            if op == "tanh_backward"
            else dict(x=make(shape), **scales)
        )
    else:
        shape = (
            draw(st.integers(1, 2)),
            draw(st.integers(1, 5)),
            draw(st.integers(1, 4)),
            draw(st.integers(1, 4)),
        )
        kwargs = dict(x=make(shape))
        if op.startswith("lrn"):
            kwargs.update(
                size=draw(st.integers(1, 6)),
                alpha=draw(st.floats(0, 1)),
                beta=draw(st.floats(0, 1)),
                k=draw(st.floats(0.5, 2)),
            )
        else:
            kwargs.update(
                size=draw(st.sampled_from([1, 3, 5, 7])),
                sigma=draw(st.floats(0.5, 3)),
                eps=draw(st.floats(1e-5, 1)),
            )
    if op.endswith("_backward"):
        kwargs = dict(dy=make(shape), **kwargs)
    return kwargs


@st.composite
def fuzz_calls(draw):
    """(op, kwargs): a valid call with any subset of its arguments replaced by junk."""
    op = draw(st.sampled_from(OPS))
    kwargs = draw(valid_calls(op))
    names = sorted(kwargs)
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        if name == "idx" and draw(st.booleans()) and isinstance(kwargs["dy"], np.ndarray):
            # int64 indices of the shape of dy, some outside the plane
            seed = draw(st.integers(0, 2**32 - 1))
            shape = kwargs["dy"].shape
            kwargs[name] = np.random.default_rng(seed).integers(-3, 80, shape).astype(np.int64)
        elif name in ARRAY_ARGS:
            kwargs[name] = draw(ARRAY_JUNK)
        else:
            kwargs[name] = draw(JUNK[KIND[name]])
    return op, kwargs


def _could_allocate_much(op, kwargs):
    """max_pool2d_backward's output is input_shape, bounded only by the indices in idx."""
    shape = kwargs.get("input_shape") if op == "max_pool2d_backward" else None
    if not (isinstance(shape, tuple) and len(shape) == 4):
        return False
    if not all(type(v) is int and v >= 1 for v in shape):
        return False
    return 2**22 < math.prod(shape) and math.prod(shape) * 8 < 2**63


@settings(max_examples=200)
@given(fuzz_calls())
def test_fuzz_returns_float_arrays_or_raises_value_or_type_error(call):
    op, kwargs = call
    assume(not _could_allocate_much(op, kwargs))
    arrays = [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    snapshot = unchanged(*arrays)
    dtypes = [v.dtype for v in arrays]
    try:
        result = _call(op, kwargs)
    except (ValueError, TypeError) as e:
        event(f"{op}: {type(e).__name__}")
    else:
        event(f"{op}: returned")
        if op == "max_pool2d":
            assert isinstance(result, tuple) and len(result) == 2
            y, idx = result
            assert isinstance(idx, np.ndarray) and idx.dtype == np.int64
            assert idx.shape == y.shape
        else:
            y = result
        assert isinstance(y, np.ndarray), type(y)
        assert y.dtype in (np.float32, np.float64), y.dtype
        assert y.dtype == dtypes[0]
    snapshot.check()
    assert [v.dtype for v in arrays] == dtypes
