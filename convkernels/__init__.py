"""convkernels: hand-written CPU and CUDA kernels for convolutional networks, forward and backward.

The functional API (see convkernels.ops) works on NCHW float32/float64 arrays. The CPU kernels
are compiled for several ISA levels and the best one this CPU supports is chosen at import; set
CONVKERNELS_ISA=avx512|avx2|portable to force one, or call set_isa(). CPU convolutions choose
their algorithm per shape (Winograd, direct, im2col + GEMM); set_conv_algorithm() forces one.
CUDA device arrays (CuPy and others) run the CUDA kernels when the package was built with nvcc;
cuda_available() and cuda_info() say whether that can work here. Importing convkernels never
needs a GPU.

The same kernels are a C library: get_include() and get_library_dir() give the directories of
convkernels.h and libconvkernels.so (see README.md, "Use from C").
"""

import os

from . import _C
from .ops import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_backward_weight,
    gemm,
    lcn,
    lcn_backward,
    lrn,
    lrn_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
    tanh,
    tanh_backward,
)

__version__ = "0.1.0"

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_bias",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "gemm",
    "lcn",
    "lcn_backward",
    "lrn",
    "lrn_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "tanh",
    "tanh_backward",
    "cuda_available",
    "cuda_info",
    "get_conv_algorithm",
    "get_include",
    "get_isa",
    "get_library_dir",
    "get_num_threads",
    "info",
    "set_conv_algorithm",
    "set_isa",
    "set_num_threads",
    "supported_isas",
]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def get_include():
    """The directory of convkernels.h, the C API header: cc -I"$(that)" ... (as numpy's)."""
    return os.path.join(_PACKAGE_DIR, "include")


def get_library_dir():
    """The directory of libconvkernels.so, the kernels and the C API: -L"$(that)" -lconvkernels.

    Link with -Wl,-rpath,<this directory> (or set LD_LIBRARY_PATH) so the program finds it when
    it runs. The Python module convkernels._C runs on this same library.
    """
    return os.path.join(_PACKAGE_DIR, "lib")


def get_isa():
    """The ISA level whose kernels run now: 'avx512', 'avx2' or 'portable'."""
    return _C.isa()


def set_isa(name):
    """Run the kernels built for `name` from now on (ValueError if this CPU lacks it)."""
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    if not name.isascii():
        levels = ", ".join(_C.compiled_isas())
        raise ValueError(f"set_isa: unknown ISA level {name!r} (this build has: {levels})")
    _C.set_isa(name)


def supported_isas():
    """ISA levels built into this package that this CPU can run, best first."""
    return list(_C.supported_isas())


CONV_ALGORITHMS = ("auto", "gemm", "direct", "winograd")


def get_conv_algorithm():
    """The convolution algorithm in force on the CPU: see set_conv_algorithm."""
    return _C.get_conv_algorithm()


def set_conv_algorithm(name):
    """Choose how CPU convolutions are computed from now on (process-wide).

    'auto' (the default) picks per shape and direction. The others force one where it applies
    and leave the rest to 'auto': 'gemm' (im2col + packed GEMM), 'direct' (stride-1 kernels
    without im2col) and 'winograd' (F(4x4, 3x3) and F(2x2, 5x5): 3x3 and 5x5 filters, stride
    1, no dilation; 4x and 2.8x less arithmetic, float32 rounding errors about 10x those of the
    direct sum). 'auto' uses Winograd for such layers with at least 32 channels and filters
    per group; set 'gemm' where the last bits of float32 accuracy matter more than speed.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_conv_algorithm: name must be a str, got {type(name).__name__}")
    if name not in CONV_ALGORITHMS:
        raise ValueError(
            f"set_conv_algorithm: name must be one of {', '.join(map(repr, CONV_ALGORITHMS))}, "
            f"got {name!r}"
        )
    _C.set_conv_algorithm(name)


def get_num_threads():
    return _C.get_num_threads()


def set_num_threads(n):
    """Threads the kernels use (OpenMP); defaults to OMP_NUM_THREADS or the core count."""
    from ._args import as_int

    n = as_int(n, "set_num_threads", "n")
    if not 1 <= n <= 65536:
        raise ValueError(f"set_num_threads: n must be between 1 and 65536, got {n}")
    _C.set_num_threads(n)


def cuda_available():
    """Whether the CUDA kernels can run here: built with CUDA, a GPU and driver, and CuPy.

    Never raises: any CUDA error counts as "not available" (cuda_info() says why).
    """
    return cuda_info()["available"]


def cuda_info():
    """{compiled, available, reason, devices, runtime_version}: the CUDA side of info()."""
    from . import _device

    module = _device.cuda_module()
    result = {"compiled": module is not None, "available": False, "reason": "", "devices": []}
    result["runtime_version"] = module.runtime_version() if module is not None else None
    try:
        available, reason = _device.cuda_status()
        if module is not None:
            count = module.devices()[0]
            result["devices"] = [module.device_name(i) for i in range(count)]
    except Exception as e:  # a broken driver must not break import-time introspection
        available, reason = False, f"{type(e).__name__}: {e}"
    result["available"], result["reason"] = available, reason
    return result


def info():
    """What this installation is and runs: version, ISA levels, threads, CUDA."""
    return {
        "version": __version__,
        "isa": get_isa(),
        "supported_isas": supported_isas(),
        "compiled_isas": list(_C.compiled_isas()),
        "threads": get_num_threads(),
        "openmp": bool(_C.openmp),
        "conv_algorithm": get_conv_algorithm(),
        "cuda": cuda_info(),
    }


def _apply_isa_override():
    forced = os.environ.get("CONVKERNELS_ISA")
    if forced:
        try:
            set_isa(forced)
        except ValueError as e:
            raise ImportError(f"CONVKERNELS_ISA={forced}: {e}") from None


_apply_isa_override()
