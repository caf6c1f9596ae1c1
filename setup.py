"""Build convkernels._C: the portable bindings plus one copy of every kernel per ISA level.

The kernel sources (KERNEL_SOURCES) are compiled once per ISA level, each time with
-DCK_ISA=<level> and that level's -m flags, so each copy lives in its own namespace
ck::<level>; csrc/dispatch.cpp picks a copy at import time from what the CPU reports. Nothing is
built with -march=native, so a wheel runs on any x86-64 CPU (and on other architectures, where
only the portable level is built).
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

KERNEL_SOURCES = [
    "csrc/gemm.cpp",
    "csrc/conv2d.cpp",
    "csrc/conv2d_direct.cpp",
    "csrc/max_pool2d.cpp",
    "csrc/avg_pool2d.cpp",
    "csrc/relu.cpp",
    "csrc/lrn.cpp",
    "csrc/lcn.cpp",
    "csrc/kernel_table.cpp",
]
PORTABLE_SOURCES = ["csrc/bindings.cpp", "csrc/params.cpp", "csrc/dispatch.cpp"]
HEADERS = ["csrc/params.h", "csrc/isa.h", "csrc/kernels.h", "csrc/dispatch.h", "csrc/im2col.h"]

# ISA level -> extra compiler flags. Order does not matter here; dispatch.cpp ranks them.
X86_LEVELS = {
    "avx512": [
        "-mavx512f",
        "-mavx512dq",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx2",
        "-mfma",
        "-mprefer-vector-width=512",
    ],
    "avx2": ["-mavx2", "-mfma"],
    "portable": [],
}
COMMON_FLAGS = [
    "-std=c++17",
    "-O3",
    "-ffp-contract=fast",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
]


def isa_levels():
    """The levels to build: all three on x86-64, only the portable one elsewhere."""
    if os.environ.get("CONVKERNELS_ISA_LEVELS"):  # e.g. "portable" for a quick debug build
        wanted = os.environ["CONVKERNELS_ISA_LEVELS"].split(",")
    elif platform.machine().lower() in ("x86_64", "amd64"):
        wanted = list(X86_LEVELS)
    else:
        wanted = ["portable"]
    unknown = set(wanted) - set(X86_LEVELS)
    if unknown:
        sys.exit(f"CONVKERNELS_ISA_LEVELS: unknown level(s) {sorted(unknown)}")
    return {name: X86_LEVELS[name] for name in wanted}


def openmp_flags(compiler_cmd):
    """['-fopenmp'] if the C++ compiler accepts it, else [] (kernels then run single-threaded)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            ok = (
                subprocess.run(
                    [compiler_cmd, "-fopenmp", src, "-o", os.path.join(tmp, "t")],
                    capture_output=True,
                ).returncode
                == 0
            )
        except OSError:
            ok = False
    return ["-fopenmp"] if ok else []


def check_isa_symbols(objects):
    """Fail the build if two ISA copies could share a linker-merged (weak) symbol.

    An inline function or template instantiated outside ck::<level> in a kernel file would be
    emitted by every copy, and the linker would keep one of them, possibly the AVX-512 one, for
    every caller. Kernel files must keep all their code inside ck::<level> (see csrc/isa.h).
    """
    nm = shutil.which("nm")
    if nm is None:
        return
    offenders = set()
    for obj in objects:
        out = subprocess.run([nm, "-C", "--defined-only", obj], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[1] in ("W", "V", "u"):
                name = parts[2]  # symbols that mention ck::<level> differ between copies
                if name.startswith("DW.ref."):  # exception-handling data, not code
                    continue
                if not any(f"ck::{level}::" in name for level in X86_LEVELS):
                    offenders.add(name)
    if offenders:
        sys.exit(
            "ISA kernel objects define shared weak symbols (see csrc/isa.h):\n  "
            + "\n  ".join(sorted(offenders))
        )


class BuildExt(build_ext):
    def build_extension(self, ext):
        compiler_cmd = self.compiler.compiler_so[0]
        omp = openmp_flags(compiler_cmd)
        levels = isa_levels()
        jobs = []
        for level, flags in levels.items():
            out_dir = os.path.join(self.build_temp, f"isa_{level}")
            for src in KERNEL_SOURCES:
                jobs.append((src, out_dir, level, COMMON_FLAGS + omp + flags))

        def compile_one(job):
            src, out_dir, level, flags = job
            return self.compiler.compile(
                [src],
                output_dir=out_dir,
                macros=[("CK_ISA", level)],
                include_dirs=["csrc"],
                extra_postargs=flags,
                depends=HEADERS,
            )

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = [obj for objs in pool.map(compile_one, jobs) for obj in objs]
        check_isa_symbols(objects)
        ext.extra_objects = objects
        ext.define_macros += [
            (f"CK_BUILD_{level.upper()}", "1") for level in levels if level != "portable"
        ]
        ext.extra_compile_args += COMMON_FLAGS + omp
        ext.extra_link_args += omp
        super().build_extension(ext)


setup(
    ext_modules=[
        Pybind11Extension(
            "convkernels._C",
            PORTABLE_SOURCES,
            include_dirs=["csrc"],
            depends=HEADERS + KERNEL_SOURCES,
            cxx_std=17,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
