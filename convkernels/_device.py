"""Which backend runs an op: the host kernels (convkernels._C) or the CUDA kernels (_cuda).

An op runs on the GPU when its arrays are CUDA device arrays: anything with
``__cuda_array_interface__`` (CuPy, Numba, PyTorch CUDA tensors) or a ``__dlpack__`` on a CUDA
device. Every array of one call must then be on the same device. Inputs are viewed as CuPy arrays
without a copy, except non-contiguous ones, which are copied to a contiguous array first (as on
the host). Results are new CuPy arrays on that device, from CuPy's memory pool, unless ``out=``
gives the buffer; the kernels run on CuPy's current stream for that device and return without
waiting for the GPU.

Both modules expose the same op functions (csrc/op_bindings.h); a device array reaches _cuda
as a NumPy array that describes the device memory without owning or reading it.
"""

import numpy as np

from . import _C
from ._args import as_array

_DLPACK_CUDA = 2
_DLPACK_CUDA_MANAGED = 13


def is_device_array(obj):
    """Whether obj lives in CUDA device memory (by its array interfaces; never imports CuPy)."""
    if type(obj) is np.ndarray or obj is None:
        return False
    try:
        if hasattr(obj, "__cuda_array_interface__"):
            return True
        if hasattr(obj, "__dlpack_device__"):
            return obj.__dlpack_device__()[0] in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED)
    except Exception:  # a property that raises (e.g. a CPU tensor's) means: not a device array
        return False
    return False


class _HostBackend:
    """The host kernels: arrays are read through the buffer protocol or DLPack."""

    module = _C

    def array(self, obj, op, name):
        return as_array(obj, op, name)

    def out(self, obj, op, name="out"):
        return None if obj is None else as_array(obj, op, name)

    def run(self, name, *args):
        return getattr(_C, name)(*args)


HOST = _HostBackend()


class _DeviceHeader:
    """Describes a device array to NumPy (__array_interface__) and keeps the array alive."""

    def __init__(self, owner, interface):
        self.owner = owner
        self.__array_interface__ = interface


def _header(array):
    """A NumPy array describing the contiguous CuPy array `array` (which it keeps alive)."""
    interface = {
        "shape": array.shape,
        "typestr": array.dtype.str,
        "data": (array.data.ptr, False),
        "strides": None,
        "version": 3,
    }
    return np.asarray(_DeviceHeader(array, interface))


def _import_cupy():
    """CuPy (ImportError when missing). The tests replace this with a NumPy stand-in."""
    import cupy

    return cupy


def _allocate_cupy(shape, dtype):
    """_cuda's allocator: a new CuPy array on the current device, as a header."""
    return _header(_import_cupy().empty(shape, dtype=dtype))


class CudaBackend:
    """CUDA device arrays, through CuPy."""

    def __init__(self, cupy, module):
        self.cupy = cupy
        self.module = module
        self.device = None  # the device of the first array seen

    def _cupy_view(self, obj, op, name):
        cupy = self.cupy
        try:
            if hasattr(obj, "__cuda_array_interface__"):
                return cupy.asarray(obj)
            return cupy.from_dlpack(obj)
        except Exception as e:
            raise TypeError(f"{op}: {name} could not be read as a CUDA array: {e}") from e

    def _on_device(self, array, op, name):
        if self.device is None:
            self.device = array.device.id
        elif array.device.id != self.device:
            raise ValueError(
                f"{op}: {name} is on CUDA device {array.device.id} but the other arrays are on "
                f"device {self.device}; pass all arrays of one call on the same device"
            )

    def array(self, obj, op, name):
        view = self._cupy_view(obj, op, name)
        self._on_device(view, op, name)
        if not view.flags.c_contiguous:
            with view.device:
                view = self.cupy.ascontiguousarray(view)  # copied, as the host copies these
        return _header(view)

    def out(self, obj, op, name="out"):
        if obj is None:
            return None
        view = self._cupy_view(obj, op, name)
        self._on_device(view, op, name)
        if not view.flags.c_contiguous:
            raise ValueError(
                f"{op}: {name} must be C-contiguous: the kernel writes into it directly "
                "(pass a contiguous buffer, or no out)"
            )
        if getattr(obj, "__cuda_array_interface__", {}).get("data", (0, False))[1]:
            raise ValueError(f"{op}: {name} is read-only")
        return _header(view)

    def run(self, name, *args):
        """Calls _cuda's op `name` on the arrays' device and its current stream."""
        with self.cupy.cuda.Device(self.device) as device:
            self.module._set_call_context(device.id, self.cupy.cuda.get_current_stream().ptr)
            return self._owners(getattr(self.module, name)(*args))

    def _owners(self, value):
        """The CuPy arrays behind the headers _cuda returned."""
        if isinstance(value, tuple):
            return tuple(self._owners(v) for v in value)
        return value.base.owner


def array_module(*arrays):
    """NumPy, or CuPy when any of `arrays` is a CUDA device array: the one switch the network
    layer makes, so the same layer code runs on either."""
    return _import_cupy() if any(is_device_array(a) for a in arrays) else np


def to_host(array):
    """A NumPy array of `array`'s values: itself for NumPy, a copy from the device for CuPy."""
    return array.get() if is_device_array(array) else np.asarray(array)


def to_device(array, device):
    """`array` on "cpu" (NumPy) or "cuda" (CuPy, the current device)."""
    if device == "cpu":
        return to_host(array)
    if device == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise RuntimeError(f"device 'cuda' is not usable here: {why}")
        return _import_cupy().asarray(array)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def cuda_module():
    """convkernels._cuda, or None when this installation was built without CUDA."""
    try:
        from . import _cuda
    except ImportError:
        return None
    return _cuda


def cuda_status():
    """(usable, reason): whether the CUDA kernels can run here, and if not, why."""
    module = cuda_module()
    if module is None:
        return False, "convkernels was built without CUDA (no nvcc at build time)"
    count, why = module.devices()
    if count == 0:
        return False, why
    try:
        _import_cupy()
    except ImportError:
        return False, "CuPy is not installed (pip install convkernels[cuda12] or [cuda13])"
    return True, ""


def backend(op, *arrays):
    """The backend for one call whose array arguments are `arrays` as (name, obj) pairs."""
    on_device = [(name, is_device_array(obj)) for name, obj in arrays if obj is not None]
    if not any(flag for _, flag in on_device):
        return HOST
    host = [name for name, flag in on_device if not flag]
    if host:
        first_device = next(name for name, flag in on_device if flag)
        raise TypeError(
            f"{op}: {host[0]} is a host array but {first_device} is a CUDA device array; "
            "pass all arrays of one call on the same device"
        )
    usable, why = cuda_status()
    if not usable:
        raise RuntimeError(f"{op}: got CUDA device arrays but the CUDA kernels cannot run: {why}")
    module = cuda_module()
    module._set_allocator(_allocate_cupy)
    return CudaBackend(_import_cupy(), module)
