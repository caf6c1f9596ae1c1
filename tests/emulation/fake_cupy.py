"""A stand-in for the part of CuPy that convkernels._device uses, over host memory.

With it and the emulated module (build.emulated_module()), the whole device path runs without a
GPU: ops.py sees arrays with __cuda_array_interface__, _device.py views them "as CuPy arrays",
checks their device, copies non-contiguous ones, allocates results through the registered
allocator, and _cuda_emulated's bindings and kernels run on their (host) memory.
"""

import numpy as np


class Device:
    def __init__(self, id=None):
        self.id = 0 if id is None else id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Pointer:
    def __init__(self, ptr):
        self.ptr = ptr


class FakeDeviceArray:
    """Host memory that presents itself as a CUDA array (as CuPy's ndarray does)."""

    def __init__(self, array, device=0, readonly=False):
        self._array = array
        self.device = Device(device)
        self.readonly = readonly

    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    flags = property(lambda self: self._array.flags)
    strides = property(lambda self: self._array.strides)
    data = property(lambda self: _Pointer(self._array.__array_interface__["data"][0]))

    @property
    def __cuda_array_interface__(self):
        interface = dict(self._array.__array_interface__)
        interface["data"] = (interface["data"][0], self.readonly)
        interface["version"] = 3
        interface["stream"] = None
        return interface

    def __getitem__(self, key):
        return FakeDeviceArray(self._array[key], self.device.id, self.readonly)

    def get(self):
        """A NumPy copy (cupy.ndarray.get)."""
        return self._array.copy()


def asarray(obj):
    if isinstance(obj, FakeDeviceArray):
        return obj
    raise TypeError(f"fake cupy cannot view {type(obj).__name__}")


def from_dlpack(obj):
    raise TypeError("fake cupy has no DLPack")


def ascontiguousarray(a):
    return FakeDeviceArray(np.ascontiguousarray(a._array), a.device.id)


def empty(shape, dtype):
    return FakeDeviceArray(np.empty(shape, dtype=dtype))


def to_device(array, device=0, readonly=False):
    """A fake device array holding a copy of `array`."""
    return FakeDeviceArray(np.array(array), device, readonly)


class _Stream:
    ptr = 0


class cuda:  # noqa: N801 - mirrors cupy.cuda
    Device = Device

    @staticmethod
    def get_current_stream():
        return _Stream()
