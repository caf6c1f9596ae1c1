"""Builds convkernels with its AVX-512 level emulated on AVX2 (avx512_on_avx2.h), for the tests.

setup.py, run with CONVKERNELS_EMULATE_AVX512=1 and only the avx512 and portable levels, compiles
that level's kernel files with the AVX2 flags and the header above, and lets the dispatch pick it
on an AVX2 CPU. The result goes into a package directory of its own, a copy of the Python sources
beside the emulated _C and libconvkernels, cached under build/emulation/avx512-<hash of the C++
sources and the build script>/ (older ones are removed), so the installed package is untouched
and a second test run does not rebuild. Importing convkernels with that directory first on
sys.path (the working directory of `python -m pytest`) and CONVKERNELS_ISA=avx512 runs the
AVX-512 code paths.

Run as a script it builds and prints the package directory (python tests/emulation/avx512.py).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

try:
    from emulation.build import prune_stale
except ImportError:  # run as a script: tests/emulation itself is on sys.path
    from build import prune_stale

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
CACHE = ROOT / "build" / "emulation"
BUILD_INPUTS = sorted(
    [ROOT / "setup.py", HERE / "avx512_on_avx2.h"]
    + list((ROOT / "csrc").glob("*"))
    + list((ROOT / "convkernels" / "include").glob("*"))
)


def _digest(files):
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _build(out):
    """The emulated _C and library under out/lib/convkernels/ (setup.py's build_lib layout)."""
    env = dict(
        os.environ,
        CONVKERNELS_EMULATE_AVX512="1",
        CONVKERNELS_ISA_LEVELS="avx512,portable",
        CONVKERNELS_CUDA="0",
    )
    cmd = [sys.executable, "setup.py", "-q", "build_ext"]
    cmd += ["--build-lib", str(out / "lib"), "--build-temp", str(out / "tmp")]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )


def package_dir():
    """A directory holding the package `convkernels` with the emulated AVX-512 level (built if
    needed); its Python files are copied afresh from the source tree on every call."""
    out = CACHE / ("avx512-" + _digest(BUILD_INPUTS))
    built = out / "lib" / "convkernels"
    if not (built / "lib" / "libconvkernels.so").exists():
        _build(out)
    prune_stale(out)
    package = out / "package" / "convkernels"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(
        ROOT / "convkernels", package, ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    for extension in built.glob("_C*.so"):
        shutil.copy2(extension, package)
    shutil.copy2(built / "lib" / "libconvkernels.so", package / "lib")
    return package.parent


if __name__ == "__main__":
    print(package_dir())
