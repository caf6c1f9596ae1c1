"""Build convkernels: the shared library of kernels and C API, and the Python module over it.

convkernels/lib/libconvkernels.so holds one copy of every kernel per ISA level, the validation
(params.cpp), the run-time dispatch (dispatch.cpp) and the C API (c_api.cpp, declared in
convkernels/include/convkernels.h). The kernel sources (KERNEL_SOURCES) are compiled once per ISA
level, each time with -DCK_ISA=<level> and that level's -m flags, so each copy lives in its own
namespace ck::<level>; dispatch.cpp picks a copy when the library is first used, from
CONVKERNELS_ISA or what the CPU reports. Nothing is tuned for the build machine's CPU, so a
wheel runs on any x86-64 CPU (and on other architectures, where only the portable level is
built).

The pybind11 module convkernels._C is bindings.cpp alone, linked against that library and
finding it through an $ORIGIN rpath; so Python and C callers share one library, one ISA choice
and one thread setting. The library exports the C API (ck_*) and, for _C, the C++ functions of
params.h and dispatch.h (namespace ck); a linker version script hides everything else.

When a CUDA toolkit is found ($CUDA_HOME, else /usr/local/cuda), convkernels._cuda is built too:
the kernels in cuda/*.cu compiled by nvcc (warnings and register spills are errors) and
cuda/bindings.cpp, linked against the same library (for params.cpp) and the static CUDA
runtime, so importing it needs no CUDA installation and no GPU. CONVKERNELS_CUDA=auto (default)
builds it when nvcc is there, 1 requires it, 0 skips it; CONVKERNELS_CUDA_ARCHS lists the
compute capabilities (default "75,80,86,89,90": SASS for each, plus PTX of the last for newer
GPUs).
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
    "csrc/conv2d_backward_weight_nhwc.cpp",
    "csrc/conv2d_forward_nhwc.cpp",
    "csrc/conv2d_winograd.cpp",
    "csrc/conv2d_depthwise.cpp",
    "csrc/max_pool2d.cpp",
    "csrc/avg_pool2d.cpp",
    "csrc/relu.cpp",
    "csrc/tanh.cpp",
    "csrc/lrn.cpp",
    "csrc/lcn.cpp",
    "csrc/fma_peak.cpp",
    "csrc/kernel_table.cpp",
]
# Compiled once (baseline ISA) into the library. _C calls params.cpp and dispatch.cpp directly,
# so they are built with default visibility; c_api.cpp exports only what convkernels.h marks.
LIBRARY_SOURCES = ["csrc/params.cpp", "csrc/dispatch.cpp", "csrc/c_api.cpp"]
EXPORTED_CXX_SOURCES = {"csrc/params.cpp", "csrc/dispatch.cpp"}
BINDING_SOURCES = ["csrc/bindings.cpp"]
CUDA_SOURCES = [
    "cuda/conv2d.cu",
    "cuda/max_pool2d.cu",
    "cuda/avg_pool2d.cu",
    "cuda/relu.cu",
    "cuda/tanh.cu",
    "cuda/lrn.cu",
    "cuda/lcn.cu",
    "cuda/device.cu",
]
CUDA_BINDING_SOURCES = ["cuda/bindings.cpp"]
CUDA_HEADERS = ["cuda/runtime.cuh", "cuda/cuda_kernels.h"]
DEFAULT_CUDA_ARCHS = "75,80,86,89,90"
PUBLIC_INCLUDE = "convkernels/include"  # convkernels.get_include()
LIBRARY = "convkernels"  # convkernels/lib/libconvkernels.so; convkernels.get_library_dir()
LIBRARY_FILE = f"lib{LIBRARY}.so"
# What the library exports (GNU ld / lld); the C++ part is private to _C, built with it.
VERSION_SCRIPT = """{
  global:
    ck_*;
    extern "C++" { ck::*; };
  local: *;
};
"""
HEADERS = [
    "csrc/params.h",
    "csrc/isa.h",
    "csrc/kernels.h",
    "csrc/dispatch.h",
    "csrc/im2col.h",
    "csrc/gemm_micro_kernel.h",
    "csrc/pool_2x2.h",
    "csrc/transpose.h",
    "csrc/op_bindings.h",
    f"{PUBLIC_INCLUDE}/convkernels.h",
]

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
    # No kernel reads errno; without this, every std::sqrt keeps a scalar errno path and loops
    # with one (LRN's D^-beta, LCN's sigma) do not vectorise. IEEE results are unchanged.
    "-fno-math-errno",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
]


# For the tests only (tests/test_avx512_emulation.py), never for a wheel: the AVX-512 level built
# with the AVX2 flags over tests/emulation/avx512_on_avx2.h, and dispatched on an AVX2 CPU, so its
# code paths can be checked where no AVX-512 CPU is at hand.
EMULATE_AVX512 = os.environ.get("CONVKERNELS_EMULATE_AVX512", "0") == "1"
AVX512_EMULATION_FLAGS = [
    "-mavx2",
    "-mfma",
    "-Wno-psabi",  # 64-byte vectors passed by value without AVX-512: no ABI is shared here
    "-include",
    os.path.abspath("tests/emulation/avx512_on_avx2.h"),
]
if EMULATE_AVX512:
    HEADERS.append(AVX512_EMULATION_FLAGS[-1])


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
    levels = {name: X86_LEVELS[name] for name in wanted}
    if EMULATE_AVX512 and "avx512" in levels:
        levels["avx512"] = AVX512_EMULATION_FLAGS
    return levels


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


def cuda_toolkit():
    """The CUDA toolkit directory to build _cuda with, or None (per CONVKERNELS_CUDA)."""
    mode = os.environ.get("CONVKERNELS_CUDA", "auto").lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"CONVKERNELS_CUDA must be auto, 0 or 1, got {mode!r}")
    if mode == "0":
        return None
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    found = os.path.isfile(os.path.join(home, "bin", "nvcc")) and os.path.isfile(
        os.path.join(home, "lib64", "libcudart_static.a")
    )
    if not found and mode == "1":
        sys.exit(f"CONVKERNELS_CUDA=1 but no CUDA toolkit (bin/nvcc, lib64/libcudart_static.a) "
                 f"in {home}; set CUDA_HOME")  # fmt: skip
    return home if found else None


def nvcc_arch_flags():
    """-gencode flags: SASS for every listed architecture, PTX for the last."""
    archs = os.environ.get("CONVKERNELS_CUDA_ARCHS", DEFAULT_CUDA_ARCHS)
    archs = [a.strip().removeprefix("sm_") for a in archs.replace(";", ",").split(",") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        sys.exit(f"CONVKERNELS_CUDA_ARCHS must list compute capabilities like 75,90, got {archs}")
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    return flags + [f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}"]


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
    """Builds libconvkernels next to _C (in build_lib, or in place for editable installs)."""

    def library_path(self, ext):
        """Where the library goes: lib/ beside the extension module, wherever that is built."""
        return os.path.join(os.path.dirname(self.get_ext_fullpath(ext.name)), "lib", LIBRARY_FILE)

    def build_extension(self, ext):
        if ext.name == "convkernels._cuda":
            return self.build_cuda_extension(ext)
        compiler_cmd = self.compiler.compiler_so[0]
        omp = openmp_flags(compiler_cmd)
        levels = isa_levels()
        build_macros = [
            (f"CK_BUILD_{level.upper()}", "1") for level in levels if level != "portable"
        ]
        if EMULATE_AVX512:
            build_macros.append(("CK_EMULATE_AVX512", "1"))
        jobs = []  # (source, object dir, macros, flags)
        for level, flags in levels.items():
            out_dir = os.path.join(self.build_temp, f"isa_{level}")
            for src in KERNEL_SOURCES:
                jobs.append((src, out_dir, [("CK_ISA", level)], COMMON_FLAGS + omp + flags))
        kernel_jobs = len(jobs)
        for src in LIBRARY_SOURCES:
            visibility = ["-fvisibility=default"] if src in EXPORTED_CXX_SOURCES else []
            jobs.append((src, os.path.join(self.build_temp, "lib"), build_macros,
                         COMMON_FLAGS + omp + visibility))  # fmt: skip

        def compile_one(job):
            src, out_dir, macros, flags = job
            return self.compiler.compile(
                [src],
                output_dir=out_dir,
                macros=macros,
                include_dirs=["csrc", PUBLIC_INCLUDE],
                extra_postargs=flags,
                depends=HEADERS,
            )

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            compiled = list(pool.map(compile_one, jobs))
        check_isa_symbols([obj for objs in compiled[:kernel_jobs] for obj in objs])
        objects = [obj for objs in compiled for obj in objs]

        library = self.library_path(ext)
        link_args = list(omp)
        if sys.platform.startswith("linux"):
            script = os.path.join(self.build_temp, "libconvkernels.map")
            os.makedirs(self.build_temp, exist_ok=True)
            with open(script, "w") as f:
                f.write(VERSION_SCRIPT)
            link_args += [
                f"-Wl,-soname,{LIBRARY_FILE}",
                f"-Wl,--version-script={script}",
                "-Wl,--no-undefined",
            ]
        self.compiler.link_shared_object(
            objects, library, extra_postargs=link_args, target_lang="c++"
        )

        ext.library_dirs += [os.path.dirname(library)]
        ext.libraries += [LIBRARY]
        ext.extra_compile_args += COMMON_FLAGS
        ext.extra_link_args += ["-Wl,-rpath,$ORIGIN/lib"]
        super().build_extension(ext)

    def build_cuda_extension(self, ext):
        """_cuda: nvcc objects of cuda/*.cu plus the bindings, after _C built the library."""
        home = ext.cuda_home
        nvcc = os.path.join(home, "bin", "nvcc")
        flags = [
            "-std=c++17",
            "-O3",
            "-Icsrc",
            "-Xcompiler=-fPIC,-fvisibility=hidden",
            "-Werror=all-warnings",
            "-Xptxas=-warn-spills,-Werror",  # a register spill fails the build
        ] + nvcc_arch_flags()
        out_dir = os.path.join(self.build_temp, "cuda")
        os.makedirs(out_dir, exist_ok=True)

        def compile_one(src):
            obj = os.path.join(out_dir, os.path.basename(src) + ".o")
            deps = [src] + CUDA_HEADERS + ["csrc/params.h", "csrc/dispatch.h"]
            if os.path.exists(obj) and os.path.getmtime(obj) >= max(map(os.path.getmtime, deps)):
                return obj
            cmd = [nvcc, *flags, "-c", src, "-o", obj]
            print(" ".join(cmd))
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"nvcc failed on {src}:\n{result.stdout}{result.stderr}")
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            ext.extra_objects += list(pool.map(compile_one, CUDA_SOURCES))
        library = self.library_path(ext)
        ext.library_dirs += [os.path.dirname(library), os.path.join(home, "lib64")]
        ext.libraries += [LIBRARY, "cudart_static", "dl", "rt", "pthread"]
        ext.extra_compile_args += COMMON_FLAGS
        ext.extra_link_args += ["-Wl,-rpath,$ORIGIN/lib"]
        super().build_extension(ext)

    # The library is one more output: a wheel carries it (from build_lib), and an editable install
    # gets it copied into the source tree beside _C.
    def _library_mapping(self):
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            package = ext.name.rpartition(".")[0]
            if ext.name.endswith("._cuda"):
                continue  # built by _C's pass
            regular = os.path.join(self.build_lib, *package.split("."), "lib", LIBRARY_FILE)
            yield regular, os.path.join(build_py.get_package_dir(package), "lib", LIBRARY_FILE)

    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        for regular, inplace in self._library_mapping():
            self.mkpath(os.path.dirname(inplace))
            self.copy_file(regular, inplace, level=self.verbose)

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace:
            mapping.update(dict(self._library_mapping()))
        return mapping

    def get_outputs(self):
        outputs = super().get_outputs()
        if not self.inplace:
            outputs += [self.library_path(self.extensions[0])]
        return outputs


def extensions():
    modules = [
        Pybind11Extension(
            "convkernels._C",
            BINDING_SOURCES,
            include_dirs=["csrc"],
            depends=HEADERS + KERNEL_SOURCES + LIBRARY_SOURCES,
            cxx_std=17,
        )
    ]
    home = cuda_toolkit()
    if home is not None:
        cuda = Pybind11Extension(
            "convkernels._cuda",
            CUDA_BINDING_SOURCES,
            include_dirs=["csrc", "cuda"],
            depends=HEADERS + CUDA_HEADERS + CUDA_SOURCES,
            cxx_std=17,
        )
        cuda.cuda_home = home
        modules.append(cuda)
    return modules


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
