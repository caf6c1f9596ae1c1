"""The AVX-512 level's kernels, checked on a CPU without AVX-512.

On such a CPU the other tests cover only the avx2 and portable levels, and the AVX-512 code
paths (64-byte vectors, wider register tiles, their own loop counts and tails) would never run
before they reached a user who has one. Here they are built over tests/emulation/avx512_on_avx2.h
(see tests/emulation/avx512.py) and the kernel tests run again in a subprocess, with that build
imported and CONVKERNELS_ISA=avx512. On an AVX-512 CPU the real level is tested directly and
this is skipped.
"""

import os
import platform
import subprocess
import sys

import pytest
from emulation import avx512

import convkernels as ck

KERNEL_TESTS = [
    "test_conv2d.py",
    "test_conv2d_nhwc.py",
    "test_winograd.py",
    "test_gemm.py",
    "test_pooling.py",
    "test_elementwise_and_norm.py",
    "test_out_and_threads.py",
    "test_bad_input.py",
    "test_bench.py::test_fma_peak_counts_the_flops_it_runs",
]
TESTS = os.path.dirname(os.path.abspath(__file__))

pytestmark = [
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only"),
    pytest.mark.skipif(
        "avx512" in ck.supported_isas(),
        reason="this CPU runs the AVX-512 level itself, and the other tests cover it",
    ),
    pytest.mark.skipif("avx2" not in ck.supported_isas(), reason="the emulation needs an AVX2 CPU"),
]


def run_with_emulated_avx512(args, package):
    env = dict(os.environ, CONVKERNELS_ISA="avx512")
    env.pop("PYTHONPATH", None)  # the package directory, the working directory, comes first
    return subprocess.run(
        [sys.executable, *args], cwd=package, env=env, capture_output=True, text=True
    )


def test_kernel_tests_pass_on_the_emulated_avx512_level():
    package = avx512.package_dir()
    probe = run_with_emulated_avx512(
        ["-c", "import convkernels as ck; print(ck.__file__); print(ck.get_isa())"], package
    )
    assert probe.returncode == 0, probe.stderr
    where, isa = probe.stdout.split()
    assert where.startswith(str(package)) and isa == "avx512", probe.stdout

    tests = [os.path.join(TESTS, name) for name in KERNEL_TESTS]
    result = run_with_emulated_avx512(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], package
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
