"""Package-level behaviour: info, ISA selection, threads, array interop without copies."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import needs_torch, torch

import convkernels as ck


def test_info_reports_the_build():
    info = ck.info()
    assert info["version"] == ck.__version__
    assert info["isa"] in info["supported_isas"]
    assert info["supported_isas"][-1] == "portable"
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert info["threads"] >= 1
    assert info["conv_algorithm"] == ck.get_conv_algorithm() == "auto"
    cuda = info["cuda"]
    assert set(cuda) == {"compiled", "available", "reason", "devices", "runtime_version"}
    assert cuda["available"] is ck.cuda_available()
    assert cuda["available"] or cuda["reason"]  # unavailable always says why


def test_best_isa_is_the_default():
    code = "import convkernels as ck; print(ck.get_isa(), ck.supported_isas()[0])"
    env = {k: v for k, v in os.environ.items() if k != "CONVKERNELS_ISA"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out[0] == out[1]


@pytest.mark.parametrize("isa", ck.supported_isas())
def test_environment_forces_an_isa(isa):
    code = "import convkernels as ck; print(ck.get_isa())"
    env = dict(os.environ, CONVKERNELS_ISA=isa)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == isa


def test_environment_with_unknown_isa_fails_clearly():
    env = dict(os.environ, CONVKERNELS_ISA="sse9")
    out = subprocess.run(
        [sys.executable, "-c", "import convkernels"], capture_output=True, text=True, env=env
    )
    assert out.returncode != 0
    assert "CONVKERNELS_ISA=sse9" in out.stderr and "unknown ISA level" in out.stderr


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 12, 12))
    dy = rng.standard_normal((5, 6, 8, 8))
    before = ck.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            ck.set_num_threads(n)
            assert ck.get_num_threads() == n
            results.append(
                (
                    ck.conv2d(x, np.ones((6, 4, 5, 5))),
                    ck.conv2d_backward_weight(x, dy, (6, 4, 5, 5)),
                )
            )
    finally:
        ck.set_num_threads(before)
    for y, dw in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-12)
        np.testing.assert_allclose(dw, results[0][1], rtol=1e-12)


def test_buffer_protocol_input_is_accepted():
    x = np.arange(-4.0, 4.0).reshape(1, 2, 2, 2)
    y = ck.relu(memoryview(x))
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@needs_torch
def test_torch_tensors_go_in_without_copies():
    tx = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    tw = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    # The view NumPy gets through DLPack shares the tensor's memory.
    from convkernels._args import as_array

    assert as_array(tx, "op", "x").ctypes.data == tx.data_ptr()
    y = ck.conv2d(tx, tw, padding=1)
    expected = torch.nn.functional.conv2d(tx, tw, padding=1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # Non-contiguous tensors are copied, not misread.
    txt = tx.transpose(2, 3)
    np.testing.assert_array_equal(ck.relu(txt), torch.relu(txt).numpy())


@needs_torch
def test_tensors_that_require_grad_get_a_clear_error():
    with pytest.raises(TypeError, match="x could not be read through __dlpack__"):
        ck.relu(torch.ones(2, requires_grad=True))


def test_every_python_file_is_packaged(tmp_path):
    """A wheel must carry every module (subpackages too), not only what an editable install sees.

    build_py runs on a clean copy of the sources (no egg-info from an earlier install, which
    would mask a missing package) and must produce every .py file of convkernels/.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    clean = tmp_path / "src"
    clean.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(root, name), clean / name)
    shutil.copytree(os.path.join(root, "convkernels"), clean / "convkernels",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))  # fmt: skip
    out = tmp_path / "build"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(out)], cwd=clean,
                   check=True, capture_output=True)  # fmt: skip

    def python_files(top):
        return {
            os.path.relpath(os.path.join(d, f), top)
            for d, _, files in os.walk(top)
            for f in files
            if f.endswith(".py")
        }

    assert python_files(out / "convkernels") == python_files(clean / "convkernels")
