"""A stand-in for CuPy over host memory, for running the device path without a GPU.

Its arrays are NumPy arrays (a subclass) that also present __cuda_array_interface__, as CuPy's
do, and its functions are NumPy's, returning such arrays. With it and the emulated module
(build.emulated_module()), the whole device path runs here: ops.py sees CUDA arrays,
_device.py views them "as CuPy arrays", checks their device, copies non-contiguous ones and
allocates results through the registered allocator, the shared bindings and the emulated
kernels run on their memory, and the network layer's `xp` code runs on "CuPy".
"""

import types

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


class FakeDeviceArray(np.ndarray):
    """Host memory that presents itself as a CUDA array (as CuPy's ndarray does)."""

    device_id = 0
    readonly = False

    def __array_finalize__(self, obj):
        self.device_id = getattr(obj, "device_id", 0)
        self.readonly = False

    @property
    def device(self):
        return Device(self.device_id)

    @property
    def data(self):
        return _Pointer(self.__array_interface__["data"][0])

    @property
    def __cuda_array_interface__(self):
        interface = dict(self.__array_interface__)
        interface["data"] = (interface["data"][0], self.readonly)
        interface.update(version=3, stream=None)
        return interface

    def get(self):
        """A NumPy copy (cupy.ndarray.get)."""
        return np.array(self.view(np.ndarray))


def _wrap(value):
    if isinstance(value, np.ndarray) and not isinstance(value, FakeDeviceArray):
        return value.view(FakeDeviceArray)
    return value


def to_device(array, device=0, readonly=False):
    """A fake device array holding a copy of `array`."""
    result = np.array(array).view(FakeDeviceArray)
    result.device_id, result.readonly = device, readonly
    return result


def asarray(obj, dtype=None):
    if isinstance(obj, FakeDeviceArray) and (dtype is None or obj.dtype == dtype):
        return obj
    if hasattr(obj, "__cuda_array_interface__") and not isinstance(obj, np.ndarray):
        raise TypeError(f"fake cupy cannot view {type(obj).__name__}")
    return to_device(np.asarray(obj, dtype=dtype))  # host -> "device": a copy, as CuPy's


def from_dlpack(obj):
    raise TypeError("fake cupy has no DLPack")


def empty(shape, dtype=float):
    return np.empty(shape, dtype=dtype).view(FakeDeviceArray)


def ascontiguousarray(a, dtype=None):
    result = np.ascontiguousarray(a, dtype=dtype).view(FakeDeviceArray)
    result.device_id = getattr(a, "device_id", 0)
    return result


def __getattr__(name):
    """Everything else is NumPy's, with array results as fake device arrays."""
    value = getattr(np, name)
    if not callable(value) or isinstance(value, type):
        return value

    def call(*args, **kwargs):
        return _wrap(value(*args, **kwargs))

    return call


class _Stream:
    ptr = 0


cuda = types.SimpleNamespace(Device=Device, get_current_stream=lambda: _Stream())
random = types.SimpleNamespace(RandomState=np.random.RandomState)
