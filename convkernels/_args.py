"""Turning what callers pass into what convkernels._C takes.

The compiled module validates values (shapes, ranges, dtypes) in one place, csrc/params.cpp and
csrc/bindings.cpp. This module only normalises forms: array-likes into NumPy arrays without
copying, ints-or-pairs into pairs, shapes into 4-tuples, so every op accepts what the matching
torch.nn.functional op accepts.
"""

import itertools
import numbers
import operator

import numpy as np

_INT64_MAX = 2**63 - 1


def as_array(obj, op, name):
    """A NumPy view of `obj` (ndarray, __dlpack__, or buffer protocol); never a copy."""
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack__"):
        try:
            return np.from_dlpack(obj)
        except (TypeError, BufferError, RuntimeError, ValueError) as e:
            raise TypeError(f"{op}: {name} could not be read through __dlpack__: {e}") from e
    try:
        return np.asarray(memoryview(obj))
    except TypeError:
        raise TypeError(
            f"{op}: {name} must be an array (NumPy, or any object with the buffer "
            f"protocol or __dlpack__), got {type(obj).__name__}"
        ) from None


def as_int(value, op, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int, got bool")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}") from None
    if abs(result) > _INT64_MAX:
        raise ValueError(f"{op}: {name} is out of range, got {result}")
    return result


def as_pair(value, op, name):
    """(h, w) from an int or a sequence of two ints."""
    if isinstance(value, (tuple, list)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        return as_int(value[0], op, name), as_int(value[1], op, name)
    v = as_int(value, op, name)
    return v, v


def as_shape4(value, op, name):
    """(N, C, H, W) from any sequence of four ints (tuple, list, torch.Size)."""
    try:
        items = list(itertools.islice(value, 5))  # never more: the iterable could be endless
    except TypeError:
        raise TypeError(
            f"{op}: {name} must be a sequence of 4 ints (N, C, H, W), got {type(value).__name__}"
        ) from None
    if len(items) != 4:
        raise ValueError(f"{op}: {name} must have 4 entries (N, C, H, W), got {value!r}")
    return tuple(as_int(v, op, name) for v in items)


def as_float(value, op, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{op}: {name} is too large for a float64, got {value!r}") from None


def as_bool(value, op, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)
