"""pytest-benchmark: convolutions (LeNet-5, cuda-convnet CIFAR-10, AlexNet) in 3 directions,
and forward with bias and ReLU fused for a few of them."""

import pytest
from bench_helpers import params, run_benchmark


@pytest.mark.parametrize(("case", "impl"), **params("conv"))
def test_conv(benchmark, case, impl):
    run_benchmark(benchmark, case, impl)
