"""The GEMM under every convolution, against NumPy: transposes, alpha/beta, edges of its blocks."""

import numpy as np
from helpers import assert_close, each_isa
from hypothesis import given
from hypothesis import strategies as st

from convkernels import _C

# Sizes around the register tile (6 rows, 16 or 32 floats per AVX2 or AVX-512 row), the groups of
# 4 panels B is packed in (64 or 128 columns) and the blocks (k 256; n 512 floats, 256 doubles).
edge_sizes = st.sampled_from(
    [1, 2, 3, 5, 6, 7, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513]
)
small_sizes = st.integers(1, 40)


@given(
    edge_sizes | small_sizes,
    edge_sizes | small_sizes,
    edge_sizes | small_sizes,
    st.booleans(),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from([(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 2.0)]),
    st.integers(0, 2**32 - 1),
)
def test_gemm_matches_numpy(M, N, K, trans_a, trans_b, dtype, alpha_beta, seed):
    rng = np.random.default_rng(seed)
    alpha, beta = alpha_beta
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    expected = alpha * (op_a.astype(np.float64) @ op_b.astype(np.float64)) + beta * c
    for isa, result in each_isa(lambda: _C.gemm(a, b, c, trans_a, trans_b, alpha, beta)).items():
        assert_close(result, expected, dtype, K + 1, f"gemm [{isa}]")


def test_gemm_beta_zero_never_reads_c():
    """BLIS's rule: with beta == 0, NaN in C must not leak into the result."""
    a, b = np.ones((5, 3)), np.ones((3, 6))
    c = np.full((5, 6), np.nan)
    np.testing.assert_array_equal(_C.gemm(a, b, c, False, False, 1.0, 0.0), np.full((5, 6), 3.0))
