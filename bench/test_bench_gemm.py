"""pytest-benchmark: SGEMM 1024³ (convkernels.gemm, torch.mm, NumPy's matmul)."""

import pytest
from bench_helpers import params, run_benchmark


@pytest.mark.parametrize(("case", "impl"), **params("gemm"))
def test_gemm(benchmark, case, impl):
    run_benchmark(benchmark, case, impl)
