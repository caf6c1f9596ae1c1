/* convkernels C API: the CPU kernels of convkernels for callers in C, C++ or any language with a
 * C foreign-function interface.
 *
 *   cc -I"$(python -c 'import convkernels; print(convkernels.get_include())')" prog.c \
 *      -L"$(python -c 'import convkernels; print(convkernels.get_library_dir())')" \
 *      -lconvkernels -Wl,-rpath,"<the same library dir>"
 *
 * Conventions
 *   - Arrays are dense, C-contiguous NCHW (weights (K, C / groups, R, S)), of float or double;
 *     max-pool indices are int64_t. The caller allocates every array, outputs included, and sizes
 *     outputs with the P and Q that ck_conv2d_check / ck_pool2d_check write into the params.
 *   - Every function validates its arguments with the same checks as the Python package (sizes,
 *     strides, paddings, NULL pointers, outputs overlapping inputs) before any kernel runs and
 *     returns a ck_status; nothing is thrown or printed, and invalid arguments never crash.
 *     On failure ck_last_error() returns a message naming the function and the argument.
 *   - Outputs are overwritten, never read, and must not overlap an input, except where a
 *     function says otherwise (ReLU may run in place). Inputs are never written.
 *   - Thread safety: every function may be called from several threads at once. Each call may
 *     itself run on several OpenMP threads (ck_set_num_threads).
 *   - ISA: the kernels are built for AVX-512, AVX2+FMA and portable x86-64 (portable only on other
 *     CPUs); the best level the CPU supports runs, unless the environment variable
 *     CONVKERNELS_ISA=avx512|avx2|portable, read at the first call, or ck_set_isa chooses another.
 *     If CONVKERNELS_ISA names a level this build or CPU cannot run, every kernel function returns
 *     CK_ERROR_ISA (with the reason in ck_last_error) until ck_set_isa succeeds.
 *   - The Python package convkernels runs on this same library: in a process that uses both,
 *     ck_set_isa / ck_set_num_threads and convkernels.set_isa / set_num_threads are one setting.
 */
#ifndef CONVKERNELS_H_
#define CONVKERNELS_H_

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define CK_API __attribute__((visibility("default")))
#else
#define CK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Incremented when a declaration in this header changes incompatibly. */
#define CK_API_VERSION 1

typedef enum ck_status {
  CK_OK = 0,
  CK_ERROR_INVALID_ARGUMENT = 1, /* a size or parameter is invalid (Python: ValueError) */
  CK_ERROR_NULL_POINTER = 2,     /* a required pointer is NULL */
  CK_ERROR_OUT_OF_MEMORY = 3,    /* a kernel's scratch memory could not be allocated */
  CK_ERROR_ISA = 4,              /* CONVKERNELS_ISA or ck_set_isa named an unusable level */
  CK_ERROR_INTERNAL = 5          /* anything else (a bug: please report it) */
} ck_status;

/* The message of this thread's last call that returned a ck_status: "" after CK_OK. The pointer
 * stays valid until the next such call on this thread. Never NULL. */
CK_API const char* ck_last_error(void);
/* A fixed name for a status, e.g. "CK_ERROR_INVALID_ARGUMENT". */
CK_API const char* ck_status_name(ck_status status);
/* CK_API_VERSION of the library (compare with the header's to detect a mismatched build). */
CK_API int ck_api_version(void);

/* ---- parameters (plain structs; the *_INIT macros give PyTorch's defaults) ------------------
 * Output sizes: conv P = (H + 2 pad_h - dilation_h (R - 1) - 1) / stride_h + 1 (and Q alike);
 * pooling P = (H + 2 pad_h - kernel_h) / stride_h + 1, rounded up with ceil_mode (PyTorch's rule).
 * P and Q are written by ck_conv2d_check / ck_pool2d_check; the kernel functions compute them
 * again and fail if the struct holds other non-zero values (so a stale size cannot overflow an
 * output buffer). */

typedef struct ck_conv2d_params {
  int64_t N, C, H, W; /* input x: (N, C, H, W) */
  int64_t K, R, S;    /* weight w: (K, C / groups, R, S); bias b: (K) */
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dilation_h, dilation_w;
  int64_t groups;
  int64_t P, Q; /* output y: (N, K, P, Q) */
} ck_conv2d_params;
#define CK_CONV2D_PARAMS_INIT {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0}

typedef struct ck_pool2d_params {
  int64_t N, C, H, W; /* input x: (N, C, H, W) */
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w; /* PyTorch's stride=None is stride = kernel */
  int64_t pad_h, pad_w;       /* at most half the kernel */
  int32_t ceil_mode;          /* 0 or 1 */
  int32_t count_include_pad;  /* avg pool only: 1 divides by the window clipped to the padded
                                 input, 0 by the taps inside the input */
  int64_t P, Q;               /* output y: (N, C, P, Q) */
} ck_pool2d_params;
#define CK_POOL2D_PARAMS_INIT {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0}

typedef struct ck_relu_params {
  int64_t count;         /* number of elements (any layout) */
  double negative_slope; /* 0: ReLU; otherwise leaky ReLU */
} ck_relu_params;
#define CK_RELU_PARAMS_INIT {0, 0.0}

typedef struct ck_tanh_params {
  int64_t count;    /* number of elements (any layout) */
  double amplitude; /* y = amplitude tanh(slope x); finite, nonzero (LeNet-5: 1.7159) */
  double slope;     /* finite (LeNet-5: 2/3) */
} ck_tanh_params;
#define CK_TANH_PARAMS_INIT {0, 1.0, 1.0}

/* Cross-channel LRN as torch.nn.functional.local_response_norm:
 *   y_c = x_c / (k + alpha / size * S_c)^beta,
 *   S_c = the sum of x_j^2 over the channels j in [c - size/2, c + (size-1)/2] that exist.
 * (The AlexNet paper's alpha = 1e-4 with size 5 is alpha = 5e-4 here.) */
typedef struct ck_lrn_params {
  int64_t N, C, H, W;
  int64_t size;
  double alpha, beta, k;
} ck_lrn_params;
#define CK_LRN_PARAMS_INIT {0, 0, 0, 0, 5, 1e-4, 0.75, 1.0}

/* Local contrast normalization (Jarrett et al. 2009) with an odd size x size Gaussian window of
 * standard deviation sigma; see the README's "Conventions". */
typedef struct ck_lcn_params {
  int64_t N, C, H, W;
  int64_t size;
  double sigma, eps;
} ck_lcn_params;
#define CK_LCN_PARAMS_INIT {0, 0, 0, 0, 9, 2.0, 1e-4}

/* ---- checks: validate the params and write the output size P, Q ---------------------------- */
CK_API ck_status ck_conv2d_check(ck_conv2d_params* p);
CK_API ck_status ck_pool2d_check(ck_pool2d_params* p);

/* ---- conv2d (cross-correlation, as PyTorch) -------------------------------------------------
 * forward:         x (N, C, H, W), w (K, C/groups, R, S), b (K) or NULL -> y (N, K, P, Q)
 * forward_relu:    the same, y = relu(conv + b) with the ReLU applied as y is written (the
 *                  values of ck_relu_forward, slope 0, on forward's y: NaN stays, -0 becomes 0)
 * backward_input:  dy (N, K, P, Q), w                                  -> dx (N, C, H, W)
 * backward_weight: x, dy                                               -> dw (K, C/groups, R, S)
 * backward_bias:   dy                                                  -> db (K)
 */
CK_API ck_status ck_conv2d_forward_f32(const ck_conv2d_params* p, const float* x, const float* w,
                                       const float* b, float* y);
CK_API ck_status ck_conv2d_forward_f64(const ck_conv2d_params* p, const double* x, const double* w,
                                       const double* b, double* y);
CK_API ck_status ck_conv2d_forward_relu_f32(const ck_conv2d_params* p, const float* x,
                                            const float* w, const float* b, float* y);
CK_API ck_status ck_conv2d_forward_relu_f64(const ck_conv2d_params* p, const double* x,
                                            const double* w, const double* b, double* y);
CK_API ck_status ck_conv2d_backward_input_f32(const ck_conv2d_params* p, const float* dy,
                                              const float* w, float* dx);
CK_API ck_status ck_conv2d_backward_input_f64(const ck_conv2d_params* p, const double* dy,
                                              const double* w, double* dx);
CK_API ck_status ck_conv2d_backward_weight_f32(const ck_conv2d_params* p, const float* x,
                                               const float* dy, float* dw);
CK_API ck_status ck_conv2d_backward_weight_f64(const ck_conv2d_params* p, const double* x,
                                               const double* dy, double* dw);
CK_API ck_status ck_conv2d_backward_bias_f32(const ck_conv2d_params* p, const float* dy, float* db);
CK_API ck_status ck_conv2d_backward_bias_f64(const ck_conv2d_params* p, const double* dy,
                                             double* db);

/* ---- pooling --------------------------------------------------------------------------------
 * max forward:  x (N, C, H, W) -> y, idx (N, C, P, Q); idx holds h * W + w of each maximum
 *               within its (n, c) plane (ties: the first in row-major order; a NaN wins)
 * max backward: dy, idx (N, C, P, Q) -> dx (N, C, H, W); every idx must lie in [0, H * W)
 * avg forward:  x -> y;  avg backward: dy -> dx                                               */
CK_API ck_status ck_max_pool2d_forward_f32(const ck_pool2d_params* p, const float* x, float* y,
                                           int64_t* idx);
CK_API ck_status ck_max_pool2d_forward_f64(const ck_pool2d_params* p, const double* x, double* y,
                                           int64_t* idx);
CK_API ck_status ck_max_pool2d_backward_f32(const ck_pool2d_params* p, const float* dy,
                                            const int64_t* idx, float* dx);
CK_API ck_status ck_max_pool2d_backward_f64(const ck_pool2d_params* p, const double* dy,
                                            const int64_t* idx, double* dx);
CK_API ck_status ck_avg_pool2d_forward_f32(const ck_pool2d_params* p, const float* x, float* y);
CK_API ck_status ck_avg_pool2d_forward_f64(const ck_pool2d_params* p, const double* x, double* y);
CK_API ck_status ck_avg_pool2d_backward_f32(const ck_pool2d_params* p, const float* dy, float* dx);
CK_API ck_status ck_avg_pool2d_backward_f64(const ck_pool2d_params* p, const double* dy,
                                            double* dx);

/* ---- ReLU: y = x if x > 0 else negative_slope * x; dx = dy where x > 0, slope * dy elsewhere.
 * In place is allowed: y may be x, and dx may be dy (the same pointer; no partial overlap).   */
CK_API ck_status ck_relu_forward_f32(const ck_relu_params* p, const float* x, float* y);
CK_API ck_status ck_relu_forward_f64(const ck_relu_params* p, const double* x, double* y);
CK_API ck_status ck_relu_backward_f32(const ck_relu_params* p, const float* dy, const float* x,
                                      float* dx);
CK_API ck_status ck_relu_backward_f64(const ck_relu_params* p, const double* dy, const double* x,
                                      double* dx);

/* ---- Scaled tanh: y = amplitude tanh(slope x); backward from the output y:
 * dx = dy slope / amplitude (amplitude - y)(amplitude + y). In place is allowed: y may be x, and
 * dx may be dy (the same pointer; no partial overlap).                                        */
CK_API ck_status ck_tanh_forward_f32(const ck_tanh_params* p, const float* x, float* y);
CK_API ck_status ck_tanh_forward_f64(const ck_tanh_params* p, const double* x, double* y);
CK_API ck_status ck_tanh_backward_f32(const ck_tanh_params* p, const float* dy, const float* y,
                                      float* dx);
CK_API ck_status ck_tanh_backward_f64(const ck_tanh_params* p, const double* dy, const double* y,
                                      double* dx);

/* ---- LRN and LCN: x, y, dy, dx all (N, C, H, W) -------------------------------------------- */
CK_API ck_status ck_lrn_forward_f32(const ck_lrn_params* p, const float* x, float* y);
CK_API ck_status ck_lrn_forward_f64(const ck_lrn_params* p, const double* x, double* y);
CK_API ck_status ck_lrn_backward_f32(const ck_lrn_params* p, const float* dy, const float* x,
                                     float* dx);
CK_API ck_status ck_lrn_backward_f64(const ck_lrn_params* p, const double* dy, const double* x,
                                     double* dx);
CK_API ck_status ck_lcn_forward_f32(const ck_lcn_params* p, const float* x, float* y);
CK_API ck_status ck_lcn_forward_f64(const ck_lcn_params* p, const double* x, double* y);
CK_API ck_status ck_lcn_backward_f32(const ck_lcn_params* p, const float* dy, const float* x,
                                     float* dx);
CK_API ck_status ck_lcn_backward_f64(const ck_lcn_params* p, const double* dy, const double* x,
                                     double* dx);

/* ---- GEMM: C (M, N) = alpha op(A) op(B) + beta C, row-major with leading dimensions lda, ldb,
 * ldc; op(A) is A (M, K), or A^T when trans_a != 0 (A is then (K, M)); likewise B (K, N).
 * beta == 0 overwrites C without reading it. C must not overlap A or B.                      */
CK_API ck_status ck_gemm_f32(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                             const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                             float* C, int64_t ldc);
CK_API ck_status ck_gemm_f64(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                             double alpha, const double* A, int64_t lda, const double* B,
                             int64_t ldb, double beta, double* C, int64_t ldc);

/* ---- ISA level and threads (process-wide settings, shared with the Python package) -------- */
/* The level whose kernels run now: "avx512", "avx2" or "portable". */
CK_API const char* ck_isa(void);
/* Comma-separated, best first: the levels this CPU can run / every level built in. */
CK_API const char* ck_supported_isas(void);
CK_API const char* ck_compiled_isas(void);
/* Run the kernels built for `name` from now on (CK_ERROR_ISA if unknown or unsupported). */
CK_API ck_status ck_set_isa(const char* name);
/* Threads each kernel call uses (OpenMP). Before any ck_set_num_threads: OpenMP's default
 * (OMP_NUM_THREADS, or the core count). Applies to calls from every thread. */
CK_API int ck_get_num_threads(void);
CK_API ck_status ck_set_num_threads(int n); /* 1 <= n <= 65536 */
/* 1 if the library was built with OpenMP (else every call runs on the calling thread). */
CK_API int ck_has_openmp(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CONVKERNELS_H_ */
