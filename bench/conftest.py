"""pytest-benchmark suites (run explicitly: pytest bench/ --benchmark-only; see README.md)."""

import pytest
from bench_helpers import THREADS, TORCH

import convkernels as ck


@pytest.fixture(autouse=True, scope="session")
def same_threads():
    """convkernels and PyTorch on the same number of threads for the whole session."""
    before = ck.get_num_threads()
    torch_before = TORCH.get_num_threads() if TORCH is not None else None
    ck.set_num_threads(THREADS)
    if TORCH is not None:
        TORCH.set_num_threads(THREADS)
    yield THREADS
    ck.set_num_threads(before)
    if TORCH is not None:
        TORCH.set_num_threads(torch_before)
