"""pytest-benchmark: ReLU, LRN(5), LCN(9) on AlexNet's first activations, tanh on LeNet's C1."""

import pytest
from bench_helpers import params, run_benchmark


@pytest.mark.parametrize(("case", "impl"), **params("elementwise"))
def test_elementwise(benchmark, case, impl):
    run_benchmark(benchmark, case, impl)
