// ReLU (leaky when negative_slope != 0) forward and backward, elementwise over any layout.
// The gradient at x == 0 is the negative side's, as in PyTorch. With slope 0 the negative side
// is exactly 0 (not 0 * x, which is NaN for x = -inf); NaN inputs stay NaN.
#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

template <typename T>
inline T negative_side(T v, T slope) {
  return slope == T(0) ? (v != v ? v : T(0)) : v * slope;
}

}  // namespace

template <typename T>
void relu_forward(const ReluParams& p, const T* x, T* y) {
  const T slope = static_cast<T>(p.negative_slope);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.count; ++i) y[i] = x[i] > T(0) ? x[i] : negative_side(x[i], slope);
}

template <typename T>
void relu_backward(const ReluParams& p, const T* dy, const T* x, T* dx) {
  const T slope = static_cast<T>(p.negative_slope);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.count; ++i) dx[i] = x[i] > T(0) ? dy[i] : negative_side(dy[i], slope);
}

template void relu_forward<float>(const ReluParams&, const float*, float*);
template void relu_forward<double>(const ReluParams&, const double*, double*);
template void relu_backward<float>(const ReluParams&, const float*, const float*, float*);
template void relu_backward<double>(const ReluParams&, const double*, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
