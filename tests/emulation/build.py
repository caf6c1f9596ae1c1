"""Builds the CUDA kernels (cuda/*.cu) for the host emulation (cuda_host.h), for the tests.

Two kinds of build, each cached under build/emulation/<kind>-<hash of sources and flags>/ so a
test run compiles only what changed (older builds of a kind are removed when it is used):

- the Python module _cuda_emulated: cuda/*.cu and cuda/bindings.cpp compiled as C++ with
  -DCK_CUDA_EMULATION, linked against libconvkernels (params.cpp) like the real _cuda;
- the sanitizer drivers: driver.cpp with the same kernels, under -fsanitize=thread or
  -fsanitize=address,undefined.

Run as a script it builds everything and prints the paths (python tests/emulation/build.py).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
CACHE = ROOT / "build" / "emulation"
CUDA_SOURCES = sorted((ROOT / "cuda").glob("*.cu"))
HEADERS = sorted((ROOT / "cuda").glob("*.h*")) + sorted((ROOT / "csrc").glob("*.h"))
HEADERS += [HERE / "cuda_host.h"]
CXX = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")

COMMON = [
    "-std=c++20",
    "-fPIC",
    "-x",
    "c++",
    "-DCK_CUDA_EMULATION",
    f"-I{HERE}",
    f"-I{ROOT / 'csrc'}",
    f"-I{ROOT / 'cuda'}",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unknown-pragmas",  # #pragma unroll
]
SANITIZERS = {
    "thread": ["-O1", "-g", "-fsanitize=thread"],
    "address": [
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=undefined",
    ],  # fmt: skip
}


def _library_dir():
    import convkernels

    return convkernels.get_library_dir()


def _digest(files, flags):
    h = hashlib.sha256()
    for path in files:
        h.update(str(path).encode())
        h.update(pathlib.Path(path).read_bytes())
    h.update(repr(flags).encode())
    return h.hexdigest()[:16]


def _run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}")


def _compile_all(sources, flags, out_dir):
    """Object files for sources, two compilers at a time (this machine has two cores)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(src):
        obj = out_dir / (pathlib.Path(src).name + ".o")
        _run([CXX, *flags, "-c", str(src), "-o", str(obj)])
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, sources))


def _link(objects, out, flags, shared):
    lib = _library_dir()
    tmp = out.with_suffix(".tmp")
    cmd = [CXX, *flags, *(["-shared"] if shared else []), *map(str, objects), "-o", str(tmp)]
    _run(cmd + [f"-L{lib}", "-lconvkernels", f"-Wl,-rpath,{lib}", "-pthread"])
    tmp.replace(out)  # atomic: a concurrent run never sees half a file
    return out


def prune_stale(current):
    """Removes the other cached builds of current's kind (its name up to the hash): builds are
    keyed by a hash of their inputs, so once those change the older ones are never used again
    (they added up to half a gigabyte over a few sessions)."""
    kind = current.name.rsplit("-", 1)[0]
    for other in current.parent.glob(kind + "-*"):
        if other != current and other.name.rsplit("-", 1)[0] == kind:
            shutil.rmtree(other, ignore_errors=True)


def emulated_module():
    """The directory holding _cuda_emulated (built if needed); put it on sys.path to import."""
    import pybind11

    flags = COMMON + ["-O1", "-DCK_CUDA_MODULE=_cuda_emulated", f"-I{pybind11.get_include()}"]
    flags += [f"-I{sysconfig.get_paths()['include']}", "-fvisibility=hidden"]
    sources = CUDA_SOURCES + [ROOT / "cuda" / "bindings.cpp"]
    out_dir = CACHE / (
        "module-" + _digest(sources + HEADERS + [ROOT / "csrc/op_bindings.h"], flags)
    )
    target = out_dir / ("_cuda_emulated" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not target.exists():
        _link(_compile_all(sources, flags, out_dir), target, ["-fPIC"], shared=True)
    prune_stale(out_dir)
    return out_dir


def sanitizer_driver(kind):
    """The path of the driver built with the `kind` sanitizer ('thread' or 'address')."""
    flags = COMMON + SANITIZERS[kind]
    sources = CUDA_SOURCES + [HERE / "driver.cpp"]
    out_dir = CACHE / (f"driver-{kind}-" + _digest(sources + HEADERS, flags))
    target = out_dir / "driver"
    if not target.exists():
        _link(_compile_all(sources, flags, out_dir), target, SANITIZERS[kind], shared=False)
    prune_stale(out_dir)
    return target


if __name__ == "__main__":
    print(emulated_module())
    for kind in SANITIZERS:
        print(sanitizer_driver(kind))
    sys.exit(0)
