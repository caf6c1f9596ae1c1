"""pytest-benchmark: max- and avg-pooling, fwd and bwd (AlexNet 3×3/2, LeNet 2×2)."""

import pytest
from bench_helpers import params, run_benchmark


@pytest.mark.parametrize(("case", "impl"), **params("pool"))
def test_pool(benchmark, case, impl):
    run_benchmark(benchmark, case, impl)
