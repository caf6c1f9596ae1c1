// The kernel table of the ISA level this translation unit is compiled for (CK_ISA).
#include "dispatch.h"
#include "kernels.h"

#define CK_STRINGIFY_(x) #x
#define CK_STRINGIFY(x) CK_STRINGIFY_(x)

namespace ck {
namespace CK_ISA {
namespace {

template <typename T>
void gemm_entry(GemmTrans ta, GemmTrans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_on_all_threads<T>(ta == GemmTrans::Yes ? Trans::Yes : Trans::No,
                         tb == GemmTrans::Yes ? Trans::Yes : Trans::No, M, N, K, alpha, A, lda, B,
                         ldb, beta, C, ldc);
}

template <typename T>
KernelTable<T> make_table() {
  return {&conv2d_forward<T>,
          &conv2d_backward_input<T>,
          &conv2d_backward_weight<T>,
          &conv2d_backward_bias<T>,
          &max_pool2d_forward<T>,
          &max_pool2d_backward<T>,
          &avg_pool2d_forward<T>,
          &avg_pool2d_backward<T>,
          &relu_forward<T>,
          &relu_backward<T>,
          &tanh_forward<T>,
          &tanh_backward<T>,
          &lrn_forward<T>,
          &lrn_backward<T>,
          &lcn_forward<T>,
          &lcn_backward<T>,
          &gemm_entry<T>};
}

}  // namespace

const IsaKernels& isa_kernels() {
  static const IsaKernels kernels{CK_STRINGIFY(CK_ISA), make_table<float>(), make_table<double>(),
                                  &first_out_of_range, &fma_peak_run};
  return kernels;
}

}  // namespace CK_ISA
}  // namespace ck
