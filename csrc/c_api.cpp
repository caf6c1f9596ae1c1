// The C API (convkernels/include/convkernels.h): plain structs in, a status out.
//
// Every function converts its C struct into the params struct of params.h, runs the same check
// as the Python bindings (params.cpp), checks pointers and overlaps, and calls the active kernel
// table (dispatch.cpp). Errors travel inside this file as Error exceptions and leave it as a
// ck_status and a thread-local message: nothing is thrown across the C boundary.
#include "convkernels.h"

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <new>
#include <string>
#include <utility>

#include "dispatch.h"
#include "params.h"

namespace ck {
namespace {

thread_local std::string last_error;

struct Error {
  ck_status status;
  std::string message;
};

[[noreturn]] void invalid(const char* fn, const std::string& what) {
  throw Error{CK_ERROR_INVALID_ARGUMENT, std::string(fn) + ": " + what};
}

// A check's message (params.cpp) as an error; those messages already start with the op name.
void check(const std::string& message) {
  if (message.empty()) return;
  const std::string type_prefix = "TypeError: ";
  throw Error{CK_ERROR_INVALID_ARGUMENT,
              message.rfind(type_prefix, 0) == 0 ? message.substr(type_prefix.size()) : message};
}

// Runs `body`, turning every way it can fail into a status and the thread's message.
template <typename F>
ck_status guarded(const char* fn, F&& body) {
  try {
    body();
    last_error.clear();
    return CK_OK;
  } catch (Error& e) {
    last_error = std::move(e.message);
    return e.status;
  } catch (const std::bad_alloc&) {
    last_error = std::string(fn) + ": out of memory";
    return CK_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = std::string(fn) + ": internal error: " + e.what();
    return CK_ERROR_INTERNAL;
  } catch (...) {
    last_error = std::string(fn) + ": internal error";
    return CK_ERROR_INTERNAL;
  }
}

void not_null(const char* fn, std::initializer_list<std::pair<const void*, const char*>> ptrs) {
  for (const auto& [ptr, name] : ptrs) {
    if (ptr == nullptr)
      throw Error{CK_ERROR_NULL_POINTER, std::string(fn) + ": " + name + " is NULL"};
  }
}

// The kernels of the active level, for a call on this thread.
template <typename T>
const KernelTable<T>& kernels(const char* fn) {
  const std::string env_error = isa_env_error();
  if (!env_error.empty()) throw Error{CK_ERROR_ISA, std::string(fn) + ": " + env_error};
  return active_kernels().table<T>();
}

// An array argument: where it starts and how many elements it holds.
struct Span {
  const void* ptr;
  int64_t count;
  size_t elem;
  const char* name;
};

template <typename T>
Span span(const T* ptr, int64_t count, const char* name) {
  return {ptr, count, sizeof(T), name};
}

bool overlap(const Span& a, const Span& b) {
  if (a.ptr == nullptr || b.ptr == nullptr || a.count == 0 || b.count == 0) return false;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.ptr), b0 = reinterpret_cast<uintptr_t>(b.ptr);
  const uintptr_t a1 = a0 + static_cast<uintptr_t>(a.count) * a.elem;
  const uintptr_t b1 = b0 + static_cast<uintptr_t>(b.count) * b.elem;
  return a0 < b1 && b0 < a1;
}

// Outputs must not overlap inputs (nor each other); `in_place`, if given, is the one input the
// output may be exactly.
void no_overlap(const char* fn, const Span& out, std::initializer_list<Span> others,
                const char* in_place = nullptr) {
  for (const Span& other : others) {
    if (!overlap(out, other)) continue;
    if (in_place != nullptr && std::string(other.name) == in_place && out.ptr == other.ptr &&
        out.count == other.count) {
      continue;
    }
    invalid(fn, std::string(out.name) + " overlaps " + other.name +
                    (in_place != nullptr && std::string(other.name) == in_place
                         ? " (only " + std::string(out.name) + " == " + in_place +
                               ", in place, is allowed)"
                         : std::string(" (outputs must not share memory with inputs)")));
  }
}

// Fails if the struct holds a non-zero P, Q other than the computed output size.
void check_output_size(const char* fn, int64_t P, int64_t Q, int64_t want_P, int64_t want_Q,
                       const char* check_fn) {
  if ((P != 0 || Q != 0) && (P != want_P || Q != want_Q)) {
    invalid(fn, "params P, Q = (" + std::to_string(P) + ", " + std::to_string(Q) +
                    ") do not match the output size (" + std::to_string(want_P) + ", " +
                    std::to_string(want_Q) + ") (set them to 0, or call " + check_fn + ")");
  }
}

// ---------------------------------------------------------------------------------------------
// conv2d

Conv2dParams conv_params(const char* fn, const ck_conv2d_params* c) {
  not_null(fn, {{c, "p"}});
  Conv2dParams p;
  p.N = c->N, p.C = c->C, p.H = c->H, p.W = c->W;
  p.K = c->K, p.R = c->R, p.S = c->S;
  p.stride = {c->stride_h, c->stride_w};
  p.pad = {c->pad_h, c->pad_w};
  p.dilation = {c->dilation_h, c->dilation_w};
  p.groups = c->groups;
  // The weight's channel count is C / groups by construction here; conv2d_check rejects a groups
  // that does not divide C before it compares.
  const int64_t weight_channels = c->groups >= 1 ? c->C / c->groups : c->C;
  check(conv2d_check(p, weight_channels, ConvArgNames{fn, "x", "w"}));
  return p;
}

struct ConvSizes {
  int64_t x, w, y;
};

ConvSizes conv_sizes(const Conv2dParams& p) {
  return {p.N * p.C * p.H * p.W, p.K * (p.C / p.groups) * p.R * p.S, p.N * p.K * p.P * p.Q};
}

template <typename T>
ck_status conv2d_forward(const char* fn, const ck_conv2d_params* c, const T* x, const T* w,
                         const T* b, T* y, bool relu = false) {
  return guarded(fn, [&] {
    Conv2dParams p = conv_params(fn, c);
    p.relu = relu;
    check_output_size(fn, c->P, c->Q, p.P, p.Q, "ck_conv2d_check");
    not_null(fn, {{x, "x"}, {w, "w"}, {y, "y"}});
    const ConvSizes n = conv_sizes(p);
    no_overlap(fn, span(y, n.y, "y"), {span(x, n.x, "x"), span(w, n.w, "w"), span(b, p.K, "b")});
    kernels<T>(fn).conv2d_forward(p, x, w, b, y);
  });
}

template <typename T>
ck_status conv2d_backward_input(const char* fn, const ck_conv2d_params* c, const T* dy, const T* w,
                                T* dx) {
  return guarded(fn, [&] {
    const Conv2dParams p = conv_params(fn, c);
    check_output_size(fn, c->P, c->Q, p.P, p.Q, "ck_conv2d_check");
    not_null(fn, {{dy, "dy"}, {w, "w"}, {dx, "dx"}});
    const ConvSizes n = conv_sizes(p);
    no_overlap(fn, span(dx, n.x, "dx"), {span(dy, n.y, "dy"), span(w, n.w, "w")});
    kernels<T>(fn).conv2d_backward_input(p, dy, w, dx);
  });
}

template <typename T>
ck_status conv2d_backward_weight(const char* fn, const ck_conv2d_params* c, const T* x, const T* dy,
                                 T* dw) {
  return guarded(fn, [&] {
    const Conv2dParams p = conv_params(fn, c);
    check_output_size(fn, c->P, c->Q, p.P, p.Q, "ck_conv2d_check");
    not_null(fn, {{x, "x"}, {dy, "dy"}, {dw, "dw"}});
    const ConvSizes n = conv_sizes(p);
    no_overlap(fn, span(dw, n.w, "dw"), {span(x, n.x, "x"), span(dy, n.y, "dy")});
    kernels<T>(fn).conv2d_backward_weight(p, x, dy, dw);
  });
}

template <typename T>
ck_status conv2d_backward_bias(const char* fn, const ck_conv2d_params* c, const T* dy, T* db) {
  return guarded(fn, [&] {
    const Conv2dParams p = conv_params(fn, c);
    check_output_size(fn, c->P, c->Q, p.P, p.Q, "ck_conv2d_check");
    not_null(fn, {{dy, "dy"}, {db, "db"}});
    no_overlap(fn, span(db, p.K, "db"), {span(dy, conv_sizes(p).y, "dy")});
    kernels<T>(fn).conv2d_backward_bias(p, dy, db);
  });
}

// ---------------------------------------------------------------------------------------------
// pooling

Pool2dParams pool_params(const char* fn, const ck_pool2d_params* c) {
  not_null(fn, {{c, "p"}});
  Pool2dParams p;
  p.N = c->N, p.C = c->C, p.H = c->H, p.W = c->W;
  p.kernel = {c->kernel_h, c->kernel_w};
  p.stride = {c->stride_h, c->stride_w};
  p.pad = {c->pad_h, c->pad_w};
  if ((c->ceil_mode != 0 && c->ceil_mode != 1) ||
      (c->count_include_pad != 0 && c->count_include_pad != 1)) {
    invalid(fn, "ceil_mode and count_include_pad must be 0 or 1, got " +
                    std::to_string(c->ceil_mode) + " and " + std::to_string(c->count_include_pad));
  }
  p.ceil_mode = c->ceil_mode != 0;
  p.count_include_pad = c->count_include_pad != 0;
  check(pool2d_check(p, fn, "x"));
  check_output_size(fn, c->P, c->Q, p.P, p.Q, "ck_pool2d_check");
  return p;
}

template <typename T>
ck_status max_pool2d_forward(const char* fn, const ck_pool2d_params* c, const T* x, T* y,
                             int64_t* idx) {
  return guarded(fn, [&] {
    const Pool2dParams p = pool_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}, {idx, "idx"}});
    const int64_t nx = p.N * p.C * p.H * p.W, ny = p.N * p.C * p.P * p.Q;
    no_overlap(fn, span(y, ny, "y"), {span(x, nx, "x"), span(idx, ny, "idx")});
    no_overlap(fn, span(idx, ny, "idx"), {span(x, nx, "x")});
    kernels<T>(fn).max_pool2d_forward(p, x, y, idx);
  });
}

template <typename T>
ck_status max_pool2d_backward(const char* fn, const ck_pool2d_params* c, const T* dy,
                              const int64_t* idx, T* dx) {
  return guarded(fn, [&] {
    const Pool2dParams p = pool_params(fn, c);
    not_null(fn, {{dy, "dy"}, {idx, "idx"}, {dx, "dx"}});
    const int64_t nx = p.N * p.C * p.H * p.W, ny = p.N * p.C * p.P * p.Q;
    no_overlap(fn, span(dx, nx, "dx"), {span(dy, ny, "dy"), span(idx, ny, "idx")});
    const KernelTable<T>& table = kernels<T>(fn);  // also hands this thread the thread count
    const int64_t plane = p.H * p.W;
    const int64_t i = active_kernels().first_out_of_range(idx, ny, plane);
    if (i >= 0) {
      invalid(fn, "idx[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                      " lies outside the input plane (valid: 0 to " + std::to_string(plane - 1) +
                      ")");
    }
    table.max_pool2d_backward(p, dy, idx, dx);
  });
}

template <typename T>
ck_status avg_pool2d_forward(const char* fn, const ck_pool2d_params* c, const T* x, T* y) {
  return guarded(fn, [&] {
    const Pool2dParams p = pool_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}});
    no_overlap(fn, span(y, p.N * p.C * p.P * p.Q, "y"), {span(x, p.N * p.C * p.H * p.W, "x")});
    kernels<T>(fn).avg_pool2d_forward(p, x, y);
  });
}

template <typename T>
ck_status avg_pool2d_backward(const char* fn, const ck_pool2d_params* c, const T* dy, T* dx) {
  return guarded(fn, [&] {
    const Pool2dParams p = pool_params(fn, c);
    not_null(fn, {{dy, "dy"}, {dx, "dx"}});
    no_overlap(fn, span(dx, p.N * p.C * p.H * p.W, "dx"), {span(dy, p.N * p.C * p.P * p.Q, "dy")});
    kernels<T>(fn).avg_pool2d_backward(p, dy, dx);
  });
}

// ---------------------------------------------------------------------------------------------
// relu, lrn, lcn

ReluParams relu_params(const char* fn, const ck_relu_params* c) {
  not_null(fn, {{c, "p"}});
  if (c->count < 0 || checked_numel(c->count, 1, 1, 1) < 0) {
    invalid(fn, "count must be a non-negative number of elements, got " + std::to_string(c->count));
  }
  const ReluParams p{c->count, c->negative_slope};
  check(relu_check(p, fn));
  return p;
}

template <typename T>
ck_status relu_forward(const char* fn, const ck_relu_params* c, const T* x, T* y) {
  return guarded(fn, [&] {
    const ReluParams p = relu_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}});
    no_overlap(fn, span(y, p.count, "y"), {span(x, p.count, "x")}, "x");
    kernels<T>(fn).relu_forward(p, x, y);
  });
}

template <typename T>
ck_status relu_backward(const char* fn, const ck_relu_params* c, const T* dy, const T* x, T* dx) {
  return guarded(fn, [&] {
    const ReluParams p = relu_params(fn, c);
    not_null(fn, {{dy, "dy"}, {x, "x"}, {dx, "dx"}});
    no_overlap(fn, span(dx, p.count, "dx"), {span(dy, p.count, "dy"), span(x, p.count, "x")}, "dy");
    kernels<T>(fn).relu_backward(p, dy, x, dx);
  });
}

TanhParams tanh_params(const char* fn, const ck_tanh_params* c) {
  not_null(fn, {{c, "p"}});
  if (c->count < 0 || checked_numel(c->count, 1, 1, 1) < 0) {
    invalid(fn, "count must be a non-negative number of elements, got " + std::to_string(c->count));
  }
  const TanhParams p{c->count, c->amplitude, c->slope};
  check(tanh_check(p, fn));
  return p;
}

template <typename T>
ck_status tanh_forward(const char* fn, const ck_tanh_params* c, const T* x, T* y) {
  return guarded(fn, [&] {
    const TanhParams p = tanh_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}});
    no_overlap(fn, span(y, p.count, "y"), {span(x, p.count, "x")}, "x");
    kernels<T>(fn).tanh_forward(p, x, y);
  });
}

template <typename T>
ck_status tanh_backward(const char* fn, const ck_tanh_params* c, const T* dy, const T* y, T* dx) {
  return guarded(fn, [&] {
    const TanhParams p = tanh_params(fn, c);
    not_null(fn, {{dy, "dy"}, {y, "y"}, {dx, "dx"}});
    no_overlap(fn, span(dx, p.count, "dx"), {span(dy, p.count, "dy"), span(y, p.count, "y")}, "dy");
    kernels<T>(fn).tanh_backward(p, dy, y, dx);
  });
}

LrnParams lrn_params(const char* fn, const ck_lrn_params* c) {
  not_null(fn, {{c, "p"}});
  LrnParams p;
  p.N = c->N, p.C = c->C, p.H = c->H, p.W = c->W;
  p.size = c->size, p.alpha = c->alpha, p.beta = c->beta, p.k = c->k;
  check(lrn_check(p, fn));
  return p;
}

LcnParams lcn_params(const char* fn, const ck_lcn_params* c) {
  not_null(fn, {{c, "p"}});
  LcnParams p;
  p.N = c->N, p.C = c->C, p.H = c->H, p.W = c->W;
  p.size = c->size, p.sigma = c->sigma, p.eps = c->eps;
  check(lcn_check(p, fn));
  return p;
}

template <typename T>
ck_status lrn_forward(const char* fn, const ck_lrn_params* c, const T* x, T* y) {
  return guarded(fn, [&] {
    const LrnParams p = lrn_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}});
    const int64_t n = p.N * p.C * p.H * p.W;
    no_overlap(fn, span(y, n, "y"), {span(x, n, "x")});
    kernels<T>(fn).lrn_forward(p, x, y);
  });
}

template <typename T>
ck_status lrn_backward(const char* fn, const ck_lrn_params* c, const T* dy, const T* x, T* dx) {
  return guarded(fn, [&] {
    const LrnParams p = lrn_params(fn, c);
    not_null(fn, {{dy, "dy"}, {x, "x"}, {dx, "dx"}});
    const int64_t n = p.N * p.C * p.H * p.W;
    no_overlap(fn, span(dx, n, "dx"), {span(dy, n, "dy"), span(x, n, "x")});
    kernels<T>(fn).lrn_backward(p, dy, x, dx);
  });
}

template <typename T>
ck_status lcn_forward(const char* fn, const ck_lcn_params* c, const T* x, T* y) {
  return guarded(fn, [&] {
    const LcnParams p = lcn_params(fn, c);
    not_null(fn, {{x, "x"}, {y, "y"}});
    const int64_t n = p.N * p.C * p.H * p.W;
    no_overlap(fn, span(y, n, "y"), {span(x, n, "x")});
    kernels<T>(fn).lcn_forward(p, x, y);
  });
}

template <typename T>
ck_status lcn_backward(const char* fn, const ck_lcn_params* c, const T* dy, const T* x, T* dx) {
  return guarded(fn, [&] {
    const LcnParams p = lcn_params(fn, c);
    not_null(fn, {{dy, "dy"}, {x, "x"}, {dx, "dx"}});
    const int64_t n = p.N * p.C * p.H * p.W;
    no_overlap(fn, span(dx, n, "dx"), {span(dy, n, "dy"), span(x, n, "x")});
    kernels<T>(fn).lcn_backward(p, dy, x, dx);
  });
}

// ---------------------------------------------------------------------------------------------
// gemm

// Elements a rows x cols row-major matrix with leading dimension ld spans; fails on bad sizes.
int64_t matrix_extent(const char* fn, const char* name, int64_t rows, int64_t cols, int64_t ld) {
  if (ld < cols) {
    invalid(fn, std::string("leading dimension of ") + name + " must be at least " +
                    std::to_string(cols) + ", got " + std::to_string(ld));
  }
  int64_t last_row, extent;
  if (__builtin_mul_overflow(rows - 1, ld, &last_row) ||
      __builtin_add_overflow(last_row, cols, &extent) || checked_numel(extent, 1, 1, 1) < 0) {
    invalid(fn, std::string(name) + " is too large (size overflows int64)");
  }
  return extent;
}

template <typename T>
ck_status gemm(const char* fn, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, T alpha,
               const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  return guarded(fn, [&] {
    if (M < 1 || N < 1 || K < 1) {
      invalid(fn, "M, N and K must be positive, got (" + std::to_string(M) + ", " +
                      std::to_string(N) + ", " + std::to_string(K) + ")");
    }
    if (checked_numel(M, N, 1, 1) < 0 || checked_numel(M, K, 1, 1) < 0 ||
        checked_numel(K, N, 1, 1) < 0) {
      invalid(fn, "M, N, K too large (sizes overflow int64)");
    }
    not_null(fn, {{A, "A"}, {B, "B"}, {C, "C"}});
    const int64_t na =
        trans_a ? matrix_extent(fn, "A", K, M, lda) : matrix_extent(fn, "A", M, K, lda);
    const int64_t nb =
        trans_b ? matrix_extent(fn, "B", N, K, ldb) : matrix_extent(fn, "B", K, N, ldb);
    const int64_t nc = matrix_extent(fn, "C", M, N, ldc);
    no_overlap(fn, span(C, nc, "C"), {span(A, na, "A"), span(B, nb, "B")});
    kernels<T>(fn).gemm(trans_a ? GemmTrans::Yes : GemmTrans::No,
                        trans_b ? GemmTrans::Yes : GemmTrans::No, M, N, K, alpha, A, lda, B, ldb,
                        beta, C, ldc);
  });
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ",") + n;
  return s;
}

}  // namespace
}  // namespace ck

using namespace ck;

extern "C" {

const char* ck_last_error(void) {
  return last_error.c_str();
}

const char* ck_status_name(ck_status status) {
  switch (status) {
    case CK_OK:
      return "CK_OK";
    case CK_ERROR_INVALID_ARGUMENT:
      return "CK_ERROR_INVALID_ARGUMENT";
    case CK_ERROR_NULL_POINTER:
      return "CK_ERROR_NULL_POINTER";
    case CK_ERROR_OUT_OF_MEMORY:
      return "CK_ERROR_OUT_OF_MEMORY";
    case CK_ERROR_ISA:
      return "CK_ERROR_ISA";
    case CK_ERROR_INTERNAL:
      return "CK_ERROR_INTERNAL";
  }
  return "CK_UNKNOWN_STATUS";
}

int ck_api_version(void) {
  return CK_API_VERSION;
}

ck_status ck_conv2d_check(ck_conv2d_params* p) {
  const char* fn = "ck_conv2d_check";
  return guarded(fn, [&] {
    const Conv2dParams checked = conv_params(fn, p);
    p->P = checked.P, p->Q = checked.Q;
  });
}

ck_status ck_pool2d_check(ck_pool2d_params* p) {
  const char* fn = "ck_pool2d_check";
  return guarded(fn, [&] {
    not_null(fn, {{p, "p"}});
    ck_pool2d_params unsized = *p;
    unsized.P = unsized.Q = 0;
    const Pool2dParams checked = pool_params(fn, &unsized);
    p->P = checked.P, p->Q = checked.Q;
  });
}

ck_status ck_conv2d_forward_f32(const ck_conv2d_params* p, const float* x, const float* w,
                                const float* b, float* y) {
  return conv2d_forward("ck_conv2d_forward_f32", p, x, w, b, y);
}
ck_status ck_conv2d_forward_f64(const ck_conv2d_params* p, const double* x, const double* w,
                                const double* b, double* y) {
  return conv2d_forward("ck_conv2d_forward_f64", p, x, w, b, y);
}
ck_status ck_conv2d_forward_relu_f32(const ck_conv2d_params* p, const float* x, const float* w,
                                     const float* b, float* y) {
  return conv2d_forward("ck_conv2d_forward_relu_f32", p, x, w, b, y, true);
}
ck_status ck_conv2d_forward_relu_f64(const ck_conv2d_params* p, const double* x, const double* w,
                                     const double* b, double* y) {
  return conv2d_forward("ck_conv2d_forward_relu_f64", p, x, w, b, y, true);
}
ck_status ck_conv2d_backward_input_f32(const ck_conv2d_params* p, const float* dy, const float* w,
                                       float* dx) {
  return conv2d_backward_input("ck_conv2d_backward_input_f32", p, dy, w, dx);
}
ck_status ck_conv2d_backward_input_f64(const ck_conv2d_params* p, const double* dy, const double* w,
                                       double* dx) {
  return conv2d_backward_input("ck_conv2d_backward_input_f64", p, dy, w, dx);
}
ck_status ck_conv2d_backward_weight_f32(const ck_conv2d_params* p, const float* x, const float* dy,
                                        float* dw) {
  return conv2d_backward_weight("ck_conv2d_backward_weight_f32", p, x, dy, dw);
}
ck_status ck_conv2d_backward_weight_f64(const ck_conv2d_params* p, const double* x,
                                        const double* dy, double* dw) {
  return conv2d_backward_weight("ck_conv2d_backward_weight_f64", p, x, dy, dw);
}
ck_status ck_conv2d_backward_bias_f32(const ck_conv2d_params* p, const float* dy, float* db) {
  return conv2d_backward_bias("ck_conv2d_backward_bias_f32", p, dy, db);
}
ck_status ck_conv2d_backward_bias_f64(const ck_conv2d_params* p, const double* dy, double* db) {
  return conv2d_backward_bias("ck_conv2d_backward_bias_f64", p, dy, db);
}

ck_status ck_max_pool2d_forward_f32(const ck_pool2d_params* p, const float* x, float* y,
                                    int64_t* idx) {
  return max_pool2d_forward("ck_max_pool2d_forward_f32", p, x, y, idx);
}
ck_status ck_max_pool2d_forward_f64(const ck_pool2d_params* p, const double* x, double* y,
                                    int64_t* idx) {
  return max_pool2d_forward("ck_max_pool2d_forward_f64", p, x, y, idx);
}
ck_status ck_max_pool2d_backward_f32(const ck_pool2d_params* p, const float* dy, const int64_t* idx,
                                     float* dx) {
  return max_pool2d_backward("ck_max_pool2d_backward_f32", p, dy, idx, dx);
}
ck_status ck_max_pool2d_backward_f64(const ck_pool2d_params* p, const double* dy,
                                     const int64_t* idx, double* dx) {
  return max_pool2d_backward("ck_max_pool2d_backward_f64", p, dy, idx, dx);
}
ck_status ck_avg_pool2d_forward_f32(const ck_pool2d_params* p, const float* x, float* y) {
  return avg_pool2d_forward("ck_avg_pool2d_forward_f32", p, x, y);
}
ck_status ck_avg_pool2d_forward_f64(const ck_pool2d_params* p, const double* x, double* y) {
  return avg_pool2d_forward("ck_avg_pool2d_forward_f64", p, x, y);
}
ck_status ck_avg_pool2d_backward_f32(const ck_pool2d_params* p, const float* dy, float* dx) {
  return avg_pool2d_backward("ck_avg_pool2d_backward_f32", p, dy, dx);
}
ck_status ck_avg_pool2d_backward_f64(const ck_pool2d_params* p, const double* dy, double* dx) {
  return avg_pool2d_backward("ck_avg_pool2d_backward_f64", p, dy, dx);
}

ck_status ck_relu_forward_f32(const ck_relu_params* p, const float* x, float* y) {
  return relu_forward("ck_relu_forward_f32", p, x, y);
}
ck_status ck_relu_forward_f64(const ck_relu_params* p, const double* x, double* y) {
  return relu_forward("ck_relu_forward_f64", p, x, y);
}
ck_status ck_relu_backward_f32(const ck_relu_params* p, const float* dy, const float* x,
                               float* dx) {
  return relu_backward("ck_relu_backward_f32", p, dy, x, dx);
}
ck_status ck_relu_backward_f64(const ck_relu_params* p, const double* dy, const double* x,
                               double* dx) {
  return relu_backward("ck_relu_backward_f64", p, dy, x, dx);
}

ck_status ck_tanh_forward_f32(const ck_tanh_params* p, const float* x, float* y) {
  return tanh_forward("ck_tanh_forward_f32", p, x, y);
}
ck_status ck_tanh_forward_f64(const ck_tanh_params* p, const double* x, double* y) {
  return tanh_forward("ck_tanh_forward_f64", p, x, y);
}
ck_status ck_tanh_backward_f32(const ck_tanh_params* p, const float* dy, const float* y,
                               float* dx) {
  return tanh_backward("ck_tanh_backward_f32", p, dy, y, dx);
}
ck_status ck_tanh_backward_f64(const ck_tanh_params* p, const double* dy, const double* y,
                               double* dx) {
  return tanh_backward("ck_tanh_backward_f64", p, dy, y, dx);
}

ck_status ck_lrn_forward_f32(const ck_lrn_params* p, const float* x, float* y) {
  return lrn_forward("ck_lrn_forward_f32", p, x, y);
}
ck_status ck_lrn_forward_f64(const ck_lrn_params* p, const double* x, double* y) {
  return lrn_forward("ck_lrn_forward_f64", p, x, y);
}
ck_status ck_lrn_backward_f32(const ck_lrn_params* p, const float* dy, const float* x, float* dx) {
  return lrn_backward("ck_lrn_backward_f32", p, dy, x, dx);
}
ck_status ck_lrn_backward_f64(const ck_lrn_params* p, const double* dy, const double* x,
                              double* dx) {
  return lrn_backward("ck_lrn_backward_f64", p, dy, x, dx);
}
ck_status ck_lcn_forward_f32(const ck_lcn_params* p, const float* x, float* y) {
  return lcn_forward("ck_lcn_forward_f32", p, x, y);
}
ck_status ck_lcn_forward_f64(const ck_lcn_params* p, const double* x, double* y) {
  return lcn_forward("ck_lcn_forward_f64", p, x, y);
}
ck_status ck_lcn_backward_f32(const ck_lcn_params* p, const float* dy, const float* x, float* dx) {
  return lcn_backward("ck_lcn_backward_f32", p, dy, x, dx);
}
ck_status ck_lcn_backward_f64(const ck_lcn_params* p, const double* dy, const double* x,
                              double* dx) {
  return lcn_backward("ck_lcn_backward_f64", p, dy, x, dx);
}

ck_status ck_gemm_f32(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                      float* C, int64_t ldc) {
  return gemm("ck_gemm_f32", trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
ck_status ck_gemm_f64(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                      const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                      double* C, int64_t ldc) {
  return gemm("ck_gemm_f64", trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* ck_isa(void) {
  return active_kernels().name;
}

const char* ck_supported_isas(void) {
  static const std::string names = joined(supported_isas());
  return names.c_str();
}

const char* ck_compiled_isas(void) {
  static const std::string names = joined(compiled_isas());
  return names.c_str();
}

ck_status ck_set_isa(const char* name) {
  const char* fn = "ck_set_isa";
  return guarded(fn, [&] {
    not_null(fn, {{name, "name"}});
    const std::string error = set_isa(name);
    if (!error.empty()) throw Error{CK_ERROR_ISA, std::string(fn) + ": " + error};
  });
}

int ck_get_num_threads(void) {
  return get_num_threads();
}

ck_status ck_set_num_threads(int n) {
  const char* fn = "ck_set_num_threads";
  return guarded(fn, [&] {
    const std::string error = set_num_threads(n);
    if (!error.empty()) throw Error{CK_ERROR_INVALID_ARGUMENT, "ck_" + error};
  });
}

int ck_has_openmp(void) {
  return openmp_enabled() ? 1 : 0;
}

}  // extern "C"
