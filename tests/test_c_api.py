"""The C API: convkernels.h and libconvkernels.so, as a C program and through ctypes.

A small C program is compiled with the system C compiler against get_include() and
get_library_dir() and run; its printed results must match the Python ops (skipped without a C
compiler). Every C function is also called through ctypes, in this process, against the same
Python op: the Python module runs on this same library, so the results must be identical.
The README's "Use from C" snippet is compiled and run exactly as the README shows it.
"""

import ctypes
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import convkernels as ck

CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or $CC)")
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
LIBRARY = os.path.join(ck.get_library_dir(), "libconvkernels.so")
CK_OK, CK_INVALID, CK_NULL, CK_ISA = 0, 1, 2, 4


def test_header_and_library_are_installed():
    assert os.path.isfile(os.path.join(ck.get_include(), "convkernels.h"))
    assert os.path.isfile(LIBRARY)


# ---------------------------------------------------------------------------------------------
# a C program

PROGRAM = r"""
#include <stdio.h>
#include <convkernels.h>

enum { NX = 2 * 3 * 5 * 6, NW = 4 * 3 * 3 * 3, NY = 2 * 4 * 3 * 6 };

int main(void) {
  static float x[NX], w[NW], b[4], y[NY];
  int i;
  ck_status s;
  ck_conv2d_params p = CK_CONV2D_PARAMS_INIT, bad;
  for (i = 0; i < NX; ++i) x[i] = (float)((i * 37) % 23 - 11) / 8.0f;
  for (i = 0; i < NW; ++i) w[i] = (float)((i * 13) % 17 - 8) / 16.0f;
  for (i = 0; i < 4; ++i) b[i] = 0.25f * (float)i;
  p.N = 2, p.C = 3, p.H = 5, p.W = 6, p.K = 4, p.R = 3, p.S = 3;
  p.stride_h = 2, p.pad_h = 1, p.pad_w = 1;

  printf("api %d %d\n", ck_api_version(), CK_API_VERSION);
  s = ck_conv2d_check(&p);
  printf("check %d %lld %lld\n", (int)s, (long long)p.P, (long long)p.Q);
  s = ck_conv2d_forward_f32(&p, x, w, b, y);
  printf("forward %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  if (s == CK_ERROR_ISA) {
    printf("set_isa %d\n", (int)ck_set_isa("portable"));
    s = ck_conv2d_forward_f32(&p, x, w, b, y);
    printf("forward %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  }
  printf("isa %s\n", ck_isa());
  printf("y");
  for (i = 0; i < NY; ++i) printf(" %.9g", y[i]);
  printf("\n");

  bad = p;
  bad.stride_w = 0;
  s = ck_conv2d_forward_f32(&bad, x, w, b, y);
  printf("bad_stride %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  s = ck_conv2d_forward_f32(&p, NULL, w, b, y);
  printf("null %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  s = ck_conv2d_forward_f32(&p, x, w, b, x);
  printf("overlap %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  s = ck_set_num_threads(0);
  printf("threads0 %d %s|%s\n", (int)s, ck_status_name(s), ck_last_error());
  s = ck_set_num_threads(1);
  printf("threads1 %d %d\n", (int)s, ck_get_num_threads());
  return 0;
}
"""


def _compile(source, tmp, name, std="-std=c99"):
    src = tmp / f"{name}.c"
    src.write_text(source)
    exe = tmp / name
    lib = ck.get_library_dir()
    cmd = [CC, std, "-Wall", "-Wextra", "-Werror", "-pedantic", str(src), "-I", ck.get_include(),
           "-L", lib, f"-Wl,-rpath,{lib}", "-lconvkernels", "-o", str(exe)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stderr}"
    return exe


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or $CC)")
    return _compile(PROGRAM, tmp_path_factory.mktemp("c_api"), "conv")


def _run(exe, **env):
    base = {k: v for k, v in os.environ.items() if k != "CONVKERNELS_ISA"}
    out = subprocess.run([str(exe)], capture_output=True, text=True, env={**base, **env})
    assert out.returncode == 0, out.stderr
    lines = {}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(" ")
        lines.setdefault(key, []).append(rest)
    return lines


def _expected_conv():
    x = (((np.arange(2 * 3 * 5 * 6) * 37) % 23 - 11) / 8).astype(np.float32).reshape(2, 3, 5, 6)
    w = (((np.arange(4 * 3 * 3 * 3) * 13) % 17 - 8) / 16).astype(np.float32).reshape(4, 3, 3, 3)
    b = (0.25 * np.arange(4)).astype(np.float32)
    return ck.conv2d(x, w, b, stride=(2, 1), padding=1)


def _status(line):
    status, _, message = line.partition("|")
    code, name = status.split()
    return int(code), name, message


@needs_cc
def test_c_program_matches_python(program):
    out = _run(program)
    assert out["api"] == [f"{1} {1}"]
    assert out["check"] == ["0 3 6"]
    assert _status(out["forward"][0]) == (CK_OK, "CK_OK", "")
    assert out["isa"] == [ck.supported_isas()[0]]
    y = np.array([float(v) for v in out["y"][0].split()], np.float32)
    np.testing.assert_allclose(y.reshape(2, 4, 3, 6), _expected_conv(), rtol=1e-5, atol=1e-5)


@needs_cc
def test_c_program_gets_errors_as_status_and_message(program):
    out = _run(program)
    assert _status(out["bad_stride"][0]) == (
        CK_INVALID,
        "CK_ERROR_INVALID_ARGUMENT",
        "ck_conv2d_forward_f32: stride must be positive (at most 2147483647), got (2, 0)",
    )
    assert _status(out["null"][0]) == (
        CK_NULL,
        "CK_ERROR_NULL_POINTER",
        "ck_conv2d_forward_f32: x is NULL",
    )
    code, _, message = _status(out["overlap"][0])
    assert code == CK_INVALID and message.startswith("ck_conv2d_forward_f32: y overlaps x")
    code, _, message = _status(out["threads0"][0])
    assert code == CK_INVALID and "n must be between 1 and 65536, got 0" in message
    assert out["threads1"] == ["0 1"]


@needs_cc
@pytest.mark.parametrize("isa", ck.supported_isas())
def test_c_program_follows_convkernels_isa(program, isa):
    out = _run(program, CONVKERNELS_ISA=isa)
    assert out["isa"] == [isa]
    y = np.array([float(v) for v in out["y"][0].split()], np.float32)
    np.testing.assert_allclose(y.reshape(2, 4, 3, 6), _expected_conv(), rtol=1e-5, atol=1e-5)


@needs_cc
def test_c_program_with_unknown_isa_gets_an_error_until_set_isa(program):
    out = _run(program, CONVKERNELS_ISA="sse9")
    code, name, message = _status(out["forward"][0])
    assert (code, name) == (CK_ISA, "CK_ERROR_ISA")
    assert message.startswith("ck_conv2d_forward_f32: CONVKERNELS_ISA=sse9: unknown ISA level")
    assert out["set_isa"] == ["0"]
    assert _status(out["forward"][1])[0] == CK_OK and out["isa"] == ["portable"]


@needs_cc
def test_header_compiles_as_cpp(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "t.cpp"
    src.write_text(
        "#include <convkernels.h>\n"
        "int main() { ck_pool2d_params p = CK_POOL2D_PARAMS_INIT; return ck_pool2d_check(&p); }\n"
    )
    cmd = [cxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I",
           ck.get_include(), str(src)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------------------------
# the README's snippet, compiled as the README says


def _readme_blocks():
    section = README.read_text().split("## Use from C", 1)[1].split("\n## ", 1)[0]
    c_code = re.search(r"```c\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    expected = re.search(r"prints `(.*?)`", section).group(1)
    return c_code, commands, expected


def test_readme_snippet_is_short():
    c_code, _, _ = _readme_blocks()
    assert len(c_code.strip().splitlines()) <= 20


@pytest.mark.skipif(shutil.which("cc") is None, reason="the README compiles with cc")
def test_readme_snippet_compiles_and_runs(tmp_path):
    c_code, commands, expected = _readme_blocks()
    (tmp_path / "example.c").write_text(c_code)
    bin_dir = tmp_path / "bin"  # `python` in the README is this interpreter
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("CONVKERNELS_ISA", None)
    out = subprocess.run(["bash", "-e", "-c", commands], cwd=tmp_path, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


# ---------------------------------------------------------------------------------------------
# every function through ctypes, against the Python ops


def _struct(name, fields):
    return type(name, (ctypes.Structure,), {"_fields_": fields})


I64, F64, I32 = ctypes.c_int64, ctypes.c_double, ctypes.c_int32
ConvParams = _struct("ConvParams", [(n, I64) for n in
                     "N C H W K R S stride_h stride_w pad_h pad_w dilation_h dilation_w groups P Q"
                     .split()])  # fmt: skip
PoolParams = _struct(
    "PoolParams",
    [(n, I64) for n in "N C H W kernel_h kernel_w stride_h stride_w pad_h pad_w".split()]
    + [("ceil_mode", I32), ("count_include_pad", I32), ("P", I64), ("Q", I64)],
)
ReluParams = _struct("ReluParams", [("count", I64), ("negative_slope", F64)])
TanhParams = _struct("TanhParams", [("count", I64), ("amplitude", F64), ("slope", F64)])
LrnParams = _struct("LrnParams", [(n, I64) for n in "N C H W size".split()]
                    + [("alpha", F64), ("beta", F64), ("k", F64)])  # fmt: skip
LcnParams = _struct("LcnParams", [(n, I64) for n in "N C H W size".split()]
                    + [("sigma", F64), ("eps", F64)])  # fmt: skip


@pytest.fixture(scope="module")
def lib():
    lib = ctypes.CDLL(LIBRARY)
    for name in ("ck_last_error", "ck_isa", "ck_supported_isas", "ck_compiled_isas",
                 "ck_status_name"):  # fmt: skip
        getattr(lib, name).restype = ctypes.c_char_p
    return lib


def _p(a):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def _call(lib, name, *args):
    status = getattr(lib, name)(*args)
    return status, lib.ck_last_error().decode()


def _ok(lib, name, *args):
    status, message = _call(lib, name, *args)
    assert status == CK_OK, f"{name}: {status} {message}"
    assert message == ""


def _nan(shape, dtype):
    return np.full(shape, np.nan, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_every_c_function_matches_python(lib, dtype):
    sfx = "_f32" if dtype == np.float32 else "_f64"
    rng = np.random.default_rng(3)

    def a(*shape):
        return rng.standard_normal(shape).astype(dtype)

    # conv2d: groups 2, stride (2, 1), padding (1, 0), dilation (1, 2)
    x, w, b = a(2, 4, 9, 8), a(6, 2, 3, 2), a(6)
    conv = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    cp = ConvParams(N=2, C=4, H=9, W=8, K=6, R=3, S=2, stride_h=2, stride_w=1, pad_h=1, pad_w=0,
                    dilation_h=1, dilation_w=2, groups=2)  # fmt: skip
    assert lib.ck_conv2d_check(ctypes.byref(cp)) == CK_OK
    y = ck.conv2d(x, w, b, **conv)
    assert (cp.P, cp.Q) == y.shape[2:]
    for bias in (b, None):
        out = _nan(y.shape, dtype)
        _ok(lib, "ck_conv2d_forward" + sfx, ctypes.byref(cp), _p(x), _p(w), _p(bias), _p(out))
        np.testing.assert_array_equal(out, ck.conv2d(x, w, bias, **conv))
        out = _nan(y.shape, dtype)
        fused = "ck_conv2d_forward_relu" + sfx
        _ok(lib, fused, ctypes.byref(cp), _p(x), _p(w), _p(bias), _p(out))
        np.testing.assert_array_equal(out, ck.conv2d(x, w, bias, relu=True, **conv))
        assert np.all(out >= 0) and np.any(out == 0)
    dy = a(*y.shape)
    out = _nan(x.shape, dtype)
    _ok(lib, "ck_conv2d_backward_input" + sfx, ctypes.byref(cp), _p(dy), _p(w), _p(out))
    np.testing.assert_array_equal(out, ck.conv2d_backward_input(dy, w, x.shape, **conv))
    out = _nan(w.shape, dtype)
    _ok(lib, "ck_conv2d_backward_weight" + sfx, ctypes.byref(cp), _p(x), _p(dy), _p(out))
    np.testing.assert_array_equal(out, ck.conv2d_backward_weight(x, dy, w.shape, **conv))
    out = _nan(b.shape, dtype)
    _ok(lib, "ck_conv2d_backward_bias" + sfx, ctypes.byref(cp), _p(dy), _p(out))
    np.testing.assert_array_equal(out, ck.conv2d_backward_bias(dy))

    # pooling: kernel 3x2, stride 2, padding (1, 1), ceil_mode, count_include_pad off
    pool = dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True)
    pp = PoolParams(N=2, C=4, H=9, W=8, kernel_h=3, kernel_w=2, stride_h=2, stride_w=2, pad_h=1,
                    pad_w=1, ceil_mode=1, count_include_pad=0)  # fmt: skip
    assert lib.ck_pool2d_check(ctypes.byref(pp)) == CK_OK
    y, idx = ck.max_pool2d(x, **pool)
    assert (pp.P, pp.Q) == y.shape[2:]
    out, out_idx = _nan(y.shape, dtype), np.full(y.shape, -1, np.int64)
    _ok(lib, "ck_max_pool2d_forward" + sfx, ctypes.byref(pp), _p(x), _p(out), _p(out_idx))
    np.testing.assert_array_equal(out, y)
    np.testing.assert_array_equal(out_idx, idx)
    dy = a(*y.shape)
    out = _nan(x.shape, dtype)
    _ok(lib, "ck_max_pool2d_backward" + sfx, ctypes.byref(pp), _p(dy), _p(idx), _p(out))
    np.testing.assert_array_equal(out, ck.max_pool2d_backward(dy, idx, x.shape))
    out = _nan(y.shape, dtype)
    _ok(lib, "ck_avg_pool2d_forward" + sfx, ctypes.byref(pp), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.avg_pool2d(x, **pool, count_include_pad=False))
    out = _nan(x.shape, dtype)
    _ok(lib, "ck_avg_pool2d_backward" + sfx, ctypes.byref(pp), _p(dy), _p(out))
    expected = ck.avg_pool2d_backward(dy, x.shape, **pool, count_include_pad=False)
    np.testing.assert_array_equal(out, expected)

    # relu, in place too
    rp = ReluParams(count=x.size, negative_slope=0.1)
    dx = a(*x.shape)
    out = _nan(x.shape, dtype)
    _ok(lib, "ck_relu_forward" + sfx, ctypes.byref(rp), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.relu(x, 0.1))
    _ok(lib, "ck_relu_backward" + sfx, ctypes.byref(rp), _p(dx), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.relu_backward(dx, x, 0.1))
    inplace = x.copy()
    _ok(lib, "ck_relu_forward" + sfx, ctypes.byref(rp), _p(inplace), _p(inplace))
    np.testing.assert_array_equal(inplace, ck.relu(x, 0.1))
    inplace = dx.copy()
    _ok(lib, "ck_relu_backward" + sfx, ctypes.byref(rp), _p(inplace), _p(x), _p(inplace))
    np.testing.assert_array_equal(inplace, ck.relu_backward(dx, x, 0.1))

    # scaled tanh, in place too; amplitude 0 is refused naming it
    tp = TanhParams(count=x.size, amplitude=1.7159, slope=2 / 3)
    out = _nan(x.shape, dtype)
    _ok(lib, "ck_tanh_forward" + sfx, ctypes.byref(tp), _p(x), _p(out))
    y = ck.tanh(x, 1.7159, 2 / 3)
    np.testing.assert_array_equal(out, y)
    _ok(lib, "ck_tanh_backward" + sfx, ctypes.byref(tp), _p(dx), _p(y), _p(out))
    np.testing.assert_array_equal(out, ck.tanh_backward(dx, y, 1.7159, 2 / 3))
    inplace = x.copy()
    _ok(lib, "ck_tanh_forward" + sfx, ctypes.byref(tp), _p(inplace), _p(inplace))
    np.testing.assert_array_equal(inplace, y)
    inplace = dx.copy()
    _ok(lib, "ck_tanh_backward" + sfx, ctypes.byref(tp), _p(inplace), _p(y), _p(inplace))
    np.testing.assert_array_equal(inplace, ck.tanh_backward(dx, y, 1.7159, 2 / 3))
    bad = TanhParams(count=x.size, amplitude=0.0, slope=1.0)
    status, message = _call(lib, "ck_tanh_forward" + sfx, ctypes.byref(bad), _p(x), _p(out))
    assert status != CK_OK and "amplitude" in message

    # lrn and lcn
    lp = LrnParams(N=2, C=4, H=9, W=8, size=3, alpha=1e-2, beta=0.75, k=2.0)
    norm = dict(size=3, alpha=1e-2, beta=0.75, k=2.0)
    _ok(lib, "ck_lrn_forward" + sfx, ctypes.byref(lp), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.lrn(x, **norm))
    _ok(lib, "ck_lrn_backward" + sfx, ctypes.byref(lp), _p(dx), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.lrn_backward(dx, x, **norm))
    cp = LcnParams(N=2, C=4, H=9, W=8, size=5, sigma=1.5, eps=1e-3)
    _ok(lib, "ck_lcn_forward" + sfx, ctypes.byref(cp), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.lcn(x, size=5, sigma=1.5, eps=1e-3))
    _ok(lib, "ck_lcn_backward" + sfx, ctypes.byref(cp), _p(dx), _p(x), _p(out))
    np.testing.assert_array_equal(out, ck.lcn_backward(dx, x, size=5, sigma=1.5, eps=1e-3))

    # gemm, with transposes and beta
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    for trans_a in (0, 1):
        for trans_b in (0, 1):
            A = a(7, 5) if trans_a else a(5, 7)
            B = a(6, 7) if trans_b else a(7, 6)
            C = a(5, 6)
            expected = ck.gemm(A, B, C, bool(trans_a), bool(trans_b), alpha=1.5, beta=-0.5)
            lda, ldb = I64(A.shape[1]), I64(B.shape[1])
            _ok(lib, "ck_gemm" + sfx, trans_a, trans_b, I64(5), I64(6), I64(7), scalar(1.5),
                _p(A), lda, _p(B), ldb, scalar(-0.5), _p(C), I64(6))  # fmt: skip
            np.testing.assert_array_equal(C, expected)


def test_c_errors_name_the_function_and_argument(lib):
    x, y = np.ones((1, 1, 4, 4)), np.zeros((1, 1, 2, 2))
    w = np.ones((1, 1, 3, 3))
    cp = ConvParams(N=1, C=1, H=4, W=4, K=1, R=3, S=3, stride_h=1, stride_w=0, dilation_h=1,
                    dilation_w=1, groups=1)  # fmt: skip
    fwd = "ck_conv2d_forward_f64"
    assert _call(lib, fwd, ctypes.byref(cp), _p(x), _p(w), None, _p(y)) == (
        CK_INVALID,
        f"{fwd}: stride must be positive (at most 2147483647), got (1, 0)",
    )
    cp.stride_w = 1
    assert _call(lib, fwd, None, _p(x), _p(w), None, _p(y)) == (CK_NULL, f"{fwd}: p is NULL")
    assert _call(lib, fwd, ctypes.byref(cp), _p(x), None, None, _p(y)) == (
        CK_NULL,
        f"{fwd}: w is NULL",
    )
    status, message = _call(lib, fwd, ctypes.byref(cp), _p(x), _p(w), None, _p(x))
    assert status == CK_INVALID and message.startswith(f"{fwd}: y overlaps x")
    cp.P, cp.Q = 3, 3  # a stale output size
    status, message = _call(lib, fwd, ctypes.byref(cp), _p(x), _p(w), None, _p(y))
    assert status == CK_INVALID and "P, Q = (3, 3) do not match the output size (2, 2)" in message
    cp.P = cp.Q = 0
    _ok(lib, fwd, ctypes.byref(cp), _p(x), _p(w), None, _p(y))  # success clears the message
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 9.0))

    cp.groups = 0  # never a division by zero
    status, message = _call(lib, "ck_conv2d_check", ctypes.byref(cp))
    assert status == CK_INVALID and "groups must be positive" in message

    pp = PoolParams(N=1, C=1, H=4, W=4, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2,
                    count_include_pad=1)  # fmt: skip
    dy, idx, dx = np.ones((1, 1, 2, 2)), np.array([0, 5, 99, 15]).reshape(1, 1, 2, 2), np.ones(16)
    status, message = _call(lib, "ck_max_pool2d_backward_f64", ctypes.byref(pp), _p(dy), _p(idx),
                            _p(dx))  # fmt: skip
    assert status == CK_INVALID and "idx[2] = 99 lies outside the input plane" in message
    pp.ceil_mode = 2
    status, message = _call(lib, "ck_pool2d_check", ctypes.byref(pp))
    assert status == CK_INVALID and "ceil_mode and count_include_pad must be 0 or 1" in message

    rp = ReluParams(count=15, negative_slope=0.0)
    status, message = _call(lib, "ck_relu_forward_f64", ctypes.byref(rp), _p(dx), _p(dx[1:]))
    assert status == CK_INVALID and "only y == x, in place, is allowed" in message
    rp.count = -1
    status, message = _call(lib, "ck_relu_forward_f64", ctypes.byref(rp), _p(dx), _p(x))
    assert status == CK_INVALID and "count must be a non-negative number" in message

    lp = LrnParams(N=1, C=1, H=4, W=4, size=0, alpha=1e-4, beta=0.75, k=1.0)
    status, message = _call(lib, "ck_lrn_forward_f32", ctypes.byref(lp), _p(x), _p(dx))
    assert status == CK_INVALID and message.startswith(
        "ck_lrn_forward_f32: size must be a positive"
    )

    status, message = _call(lib, "ck_gemm_f64", 0, 0, I64(2), I64(2), I64(2), F64(1.0), _p(x),
                            I64(1), _p(x), I64(2), F64(0.0), _p(y), I64(2))  # fmt: skip
    assert status == CK_INVALID and "leading dimension of A must be at least 2, got 1" in message

    assert _call(lib, "ck_set_num_threads", 0)[0] == CK_INVALID
    status, message = _call(lib, "ck_set_isa", b"sse9")
    assert status == CK_ISA and message.startswith("ck_set_isa: unknown ISA level 'sse9'")
    assert _call(lib, "ck_set_isa", None) == (CK_NULL, "ck_set_isa: name is NULL")
    assert lib.ck_status_name(CK_ISA) == b"CK_ERROR_ISA"
    assert lib.ck_api_version() == 1


def test_last_error_belongs_to_the_calling_thread(lib):
    assert _call(lib, "ck_set_num_threads", 0)[0] == CK_INVALID
    mine = lib.ck_last_error().decode()
    theirs = []

    def other():
        lib.ck_set_isa(b"sse9")
        theirs.append(lib.ck_last_error().decode())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert "unknown ISA level" in theirs[0]
    assert lib.ck_last_error().decode() == mine and "set_num_threads" in mine


def test_isa_and_threads_are_one_setting_with_python(lib):
    isa, threads = ck.get_isa(), ck.get_num_threads()
    try:
        assert lib.ck_supported_isas().decode().split(",") == ck.supported_isas()
        assert lib.ck_compiled_isas().decode().split(",") == ck.info()["compiled_isas"]
        for level in ck.supported_isas():
            ck.set_isa(level)
            assert lib.ck_isa().decode() == level
            assert lib.ck_set_isa(level.encode()) == CK_OK and ck.get_isa() == level
        ck.set_num_threads(1)
        assert lib.ck_get_num_threads() == 1
        assert lib.ck_set_num_threads(3) == CK_OK and ck.get_num_threads() == 3
        assert lib.ck_has_openmp() == int(ck.info()["openmp"])
    finally:
        ck.set_isa(isa)
        ck.set_num_threads(threads)
