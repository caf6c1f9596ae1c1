// Declarations of every CPU kernel, in the ISA namespace the including file is compiled for.
// Kernels take raw pointers and a params struct already checked by params.cpp, overwrite their
// outputs, and never read an output before writing it. Each is instantiated for float and double.
#pragma once

#include "dispatch.h"
#include "isa.h"
#include "params.h"

namespace ck {
namespace CK_ISA {

enum class Trans { No, Yes };

// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, row-major, leading dimensions lda,
// ldb, ldc. op(X) is X or its transpose. beta == 0 overwrites C without reading it.
// `workspace` holds gemm_workspace_size<T>(M, N, K, threads) elements; callers allocate it outside
// their parallel regions (an allocation failing inside one could not be reported). `threads` > 1
// splits the work over that many OpenMP threads; call it with 1 inside a parallel region.
template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, T* workspace,
          int threads);
template <typename T>
int64_t gemm_workspace_size(int64_t M, int64_t N, int64_t K, int threads);
// gemm() on max_threads() threads with a workspace of its own (not inside a parallel region).
template <typename T>
void gemm_on_all_threads(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                         const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                         int64_t ldc);

// x: (N, C, H, W), w: (K, C/G, R, S), b: (K) or null, y: (N, K, P, Q)
template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
// The same for stride 1, computed directly (conv2d_direct.cpp); conv2d_forward picks it per shape.
template <typename T>
void conv2d_forward_direct(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
// The same with the filters in the vector lanes (conv2d_forward_nhwc.cpp), for outputs at least
// 5 columns wide; conv2d_forward picks it per shape.
bool conv2d_forward_nhwc_possible(const Conv2dParams& p);
template <typename T>
void conv2d_forward_nhwc(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
// The share of conv2d_forward_direct's arithmetic that lands in y (it also computes the padding
// columns and whole register tiles of filters and positions), for the choice of algorithm; and
// the same for conv2d_forward_nhwc (columns computed twice, filter lanes left idle).
template <typename T>
double conv2d_forward_direct_yield(const Conv2dParams& p);
template <typename T>
double conv2d_forward_nhwc_yield(const Conv2dParams& p);
// Forward for 3x3 and 5x5 filters, stride 1 and no dilation, by Winograd's F(4x4, 3x3) and
// F(2x2, 5x5) (conv2d_winograd.cpp); conv2d_forward picks it per shape. Rounding errors are
// larger than the direct sum's (the transforms scale values by up to 16 and 1/24).
inline bool conv2d_winograd_possible(const Conv2dParams& p) {
  return p.R == p.S && (p.R == 3 || p.R == 5) && p.stride.h == 1 && p.stride.w == 1 &&
         p.dilation.h == 1 && p.dilation.w == 1;
}
template <typename T>
void conv2d_forward_winograd(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
// Backward-weight by the same transforms (conv2d_winograd.cpp), for the same shapes.
template <typename T>
void conv2d_backward_weight_winograd(const Conv2dParams& p, const T* x, const T* dy, T* dw);
// dy: (N, K, P, Q), w: (K, C/G, R, S), dx: (N, C, H, W)
template <typename T>
void conv2d_backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx);
// x: (N, C, H, W), dy: (N, K, P, Q), dw: (K, C/G, R, S)
template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw);
// The same, computed directly (conv2d_direct.cpp); conv2d_backward_weight picks it per shape.
template <typename T>
void conv2d_backward_weight_direct(const Conv2dParams& p, const T* x, const T* dy, T* dw);
// The same with the filters in the vector lanes on a channels-last copy of dy
// (conv2d_backward_weight_nhwc.cpp), for filter widths 3, 5, 7 and 11 without dilation along w.
bool conv2d_backward_weight_nhwc_possible(const Conv2dParams& p);
template <typename T>
void conv2d_backward_weight_nhwc(const Conv2dParams& p, const T* x, const T* dy, T* dw);
// The three directions for depthwise layers, groups = C = K (conv2d_depthwise.cpp); the
// conv2d_* functions pick them for such shapes.
bool conv2d_depthwise_possible(const Conv2dParams& p);
template <typename T>
void conv2d_forward_depthwise(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
template <typename T>
void conv2d_backward_input_depthwise(const Conv2dParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dParams& p, const T* x, const T* dy, T* dw);
// dy: (N, K, P, Q), db: (K)
template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, const T* dy, T* db);

// x: (N, C, H, W), y and argmax: (N, C, P, Q); argmax holds h * W + w of the chosen input.
template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax);
// dy, argmax: (N, C, P, Q), dx: (N, C, H, W). argmax must hold indices in [0, H * W).
template <typename T>
void max_pool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* argmax, T* dx);
// The position of the first idx[i] outside [0, limit), or -1 (max_pool2d_backward's indices).
int64_t first_out_of_range(const int64_t* idx, int64_t count, int64_t limit);

// x: (N, C, H, W), y: (N, C, P, Q)
template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
// dy: (N, C, P, Q), dx: (N, C, H, W)
template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx);

// x, y: (count); y may alias x.
template <typename T>
void relu_forward(const ReluParams& p, const T* x, T* y);
// dy, x, dx: (count); dx may alias dy.
template <typename T>
void relu_backward(const ReluParams& p, const T* dy, const T* x, T* dx);

// x, y: (count); y may alias x.
template <typename T>
void tanh_forward(const TanhParams& p, const T* x, T* y);
// dy, y, dx: (count), y the forward's output; dx may alias dy.
template <typename T>
void tanh_backward(const TanhParams& p, const T* dy, const T* y, T* dx);

// x, y: (N, C, H, W)
template <typename T>
void lrn_forward(const LrnParams& p, const T* x, T* y);
// dy, x, dx: (N, C, H, W)
template <typename T>
void lrn_backward(const LrnParams& p, const T* dy, const T* x, T* dx);

// x, y: (N, C, H, W)
template <typename T>
void lcn_forward(const LcnParams& p, const T* x, T* y);
// dy, x, dx: (N, C, H, W)
template <typename T>
void lcn_backward(const LcnParams& p, const T* dy, const T* x, T* dx);

// The FP32 peak probe (fma_peak.cpp): `rounds` steps of independent FMA chains on every thread.
FmaRun fma_peak_run(int64_t rounds);

}  // namespace CK_ISA
}  // namespace ck
