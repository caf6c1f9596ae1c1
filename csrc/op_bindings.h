// The Python bindings of every op, shared by the host module convkernels._C (csrc/bindings.cpp)
// and the device module convkernels._cuda (cuda/bindings.cpp): one copy of the argument checks,
// the out= rules and the error messages for both.
//
// Every function here turns Python objects into (pointer, params), runs the op's check from
// params.cpp, allocates the output (or checks the caller's out= buffer), releases the GIL and
// calls the backend's kernel table. Inputs are never written: kernels take them as const, and host
// arrays that are not C-contiguous and aligned are copied first. Errors become TypeError (wrong
// kind of object or dtype) or ValueError (wrong shape or parameter), naming the argument.
//
// Device arrays reach this code as NumPy arrays that describe device memory without owning it
// (convkernels/_device.py builds them from __cuda_array_interface__); nothing here reads their
// data, only shapes, dtypes, flags and addresses.
//
// A backend B provides:
//   kCopiesInputs                  whether non-contiguous inputs may be copied here (host only)
//   allocate<T>(shape) -> py::array       a new output array
//   poison<T>(py::array&)                 fill it with NaN (-1 for indices), for the tests
//   kernels<T>() -> const KernelTable<T>& the kernels to call
//   Launch                                an RAII scope around each kernel call (GIL released)
//   find_out_of_range(idx, count, limit, &bad) -> bool   max_pool2d_backward's index check
// Include this header in exactly one translation unit per module, after defining the backend.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "params.h"

namespace py = pybind11;

namespace ck {
namespace {

using Pair = std::pair<int64_t, int64_t>;
using Shape4 = std::array<int64_t, 4>;

constexpr int kNumpyAligned = 0x0100;    // NPY_ARRAY_ALIGNED
constexpr int kNumpyWriteable = 0x0400;  // NPY_ARRAY_WRITEABLE

enum class Dtype { F32, F64 };

[[noreturn]] void fail(const std::string& msg) {
  if (msg.rfind("TypeError:", 0) == 0) throw py::type_error(msg.substr(11));
  throw py::value_error(msg);
}

void check(const std::string& msg) {
  if (!msg.empty()) fail(msg);
}

std::string dtype_name(const py::array& a) {
  return py::str(a.dtype()).cast<std::string>();
}

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += (i ? ", " : "") + std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// An input array: the object as a C-contiguous, aligned ndarray (copied only if it is not one,
// and only on the host: device arrays arrive contiguous from convkernels/_device.py).
template <class B>
py::array input(py::handle obj, const char* op, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(op) + ": " + name +
                         " must be an array (NumPy, or any object with the buffer protocol or "
                         "__dlpack__), got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  constexpr int kWanted = py::array::c_style | kNumpyAligned;
  if ((a.flags() & kWanted) == kWanted) return a;
  if constexpr (!B::kCopiesInputs) {
    fail(std::string(op) + ": " + name + " must be a C-contiguous device array");
  }
  // A C-contiguous aligned copy; numpy raises MemoryError itself if it cannot allocate one.
  return py::module_::import("numpy").attr("require")(a, py::none(), "CA");
}

Dtype float_dtype(const py::array& a, const char* op, const char* name) {
  if (a.dtype().equal(py::dtype::of<float>())) return Dtype::F32;
  if (a.dtype().equal(py::dtype::of<double>())) return Dtype::F64;
  throw py::type_error(std::string(op) + ": " + name +
                       " must have dtype float32 or float64 (native byte order), got " +
                       dtype_name(a));
}

// The dtype shared by all float inputs of an op; a TypeError names the first that differs.
Dtype same_dtype(const char* op,
                 std::initializer_list<std::pair<const py::array*, const char*>> arrays) {
  const auto& first = *arrays.begin();
  const Dtype dtype = float_dtype(*first.first, op, first.second);
  for (const auto& [array, name] : arrays) {
    if (float_dtype(*array, op, name) != dtype) {
      throw py::type_error(std::string(op) + ": " + name + " has dtype " + dtype_name(*array) +
                           " but " + first.second + " has dtype " + dtype_name(*first.first) +
                           "; all arrays must share one dtype");
    }
  }
  return dtype;
}

void require_ndim(const py::array& a, py::ssize_t ndim, const char* op, const char* name,
                  const char* layout) {
  if (a.ndim() != ndim) {
    fail(std::string(op) + ": " + name + " must be a " + std::to_string(ndim) + "-D array " +
         layout + ", got shape " + shape_str(a));
  }
}

Shape4 shape4(const py::array& a) {
  return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

std::string shape4_str(const Shape4& s) {
  return "(" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(s[2]) +
         ", " + std::to_string(s[3]) + ")";
}

void require_shape(const py::array& a, const Shape4& expected, const char* op, const char* name,
                   const char* why) {
  require_ndim(a, 4, op, name, "(N, C, H, W)");
  if (shape4(a) != expected) {
    fail(std::string(op) + ": " + name + " must have shape " + shape4_str(expected) + " " + why +
         ", got " + shape_str(a));
  }
}

// When set (by the tests), every output is filled with NaN (-1 for indices) before its kernel
// runs, so an element a kernel forgets to write shows up instead of passing as stale memory.
std::atomic<bool> poison_outputs{false};

template <class B, typename T>
py::array new_array(const std::vector<py::ssize_t>& shape) {
  py::array a = B::template allocate<T>(shape);
  if (poison_outputs.load()) B::template poison<T>(a);
  return a;
}

template <typename T>
const T* ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

template <typename T>
T* mut_ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// ---------------------------------------------------------------------------------------------
// out= buffers

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The bytes [first, last) that an array's elements span; empty for an empty array.
std::pair<intptr_t, intptr_t> byte_extent(const py::array& a) {
  if (a.size() == 0) return {0, 0};
  intptr_t lo = reinterpret_cast<intptr_t>(a.data()), hi = lo;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    const intptr_t step = a.strides(i) * (a.shape(i) - 1);
    (step < 0 ? lo : hi) += step;
  }
  return {lo, hi + a.itemsize()};
}

// Whether two arrays' spans of memory intersect (NumPy's may_share_memory).
bool may_share_memory(const py::array& a, const py::array& b) {
  const auto [a0, a1] = byte_extent(a);
  const auto [b0, b1] = byte_extent(b);
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

// An argument the output must not overlap: the object as the caller passed it (before any
// contiguous copy), or None.
struct Source {
  py::handle obj;
  const char* name;
};

// The array the kernel writes: a new one when `out` is None, else the caller's buffer `out`,
// checked to be exactly what the kernel writes into directly: of the result's dtype and shape,
// C-contiguous and aligned, writeable, and sharing no memory with an input (`sources`). The one
// exception is `in_place`: the input that out may be exactly (ReLU's x, or dy of its backward).
template <class B, typename T>
py::array output(py::handle out, const std::vector<py::ssize_t>& shape, const char* op,
                 const char* name, std::initializer_list<Source> sources,
                 const char* in_place = nullptr) {
  if (out.is_none()) return new_array<B, T>(shape);
  const std::string what = std::string(op) + ": " + name;
  if (!py::isinstance<py::array>(out)) {
    throw py::type_error(what + " must be an array (NumPy, or any writable object with the " +
                         "buffer protocol or __dlpack__), got " +
                         py::str(py::type::of(out).attr("__name__")).cast<std::string>());
  }
  auto a = py::reinterpret_borrow<py::array>(out);
  if (!a.dtype().equal(py::dtype::of<T>())) {
    throw py::type_error(what + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() +
                         " (the dtype of the result), got " + dtype_name(a));
  }
  if (std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()) != shape) {
    fail(what + " must have shape " + shape_str(shape) + " (the shape of the result), got " +
         shape_str(a));
  }
  constexpr int kDirect = py::array::c_style | kNumpyAligned;
  if ((a.flags() & kDirect) != kDirect) {
    fail(what + " must be C-contiguous and aligned: the kernel writes into it directly" +
         " (pass a contiguous buffer, or no out)");
  }
  if ((a.flags() & kNumpyWriteable) == 0) fail(what + " is read-only");
  for (const Source& source : sources) {
    if (source.obj.is_none() || !py::isinstance<py::array>(source.obj)) continue;
    const auto input = py::reinterpret_borrow<py::array>(source.obj);
    if (!may_share_memory(a, input)) continue;
    const bool allowed = in_place != nullptr && std::string(source.name) == in_place;
    if (allowed && input.data() == a.data() && byte_extent(input) == byte_extent(a)) continue;
    fail(what + " shares memory with " + source.name +
         (allowed
              ? std::string("; only ") + name + "=" + source.name + " exactly (in place) is allowed"
              : std::string("; the kernel would overwrite an input it still reads: pass a ") +
                    "separate buffer"));
  }
  return a;
}

// Runs f<float> or f<double> according to the dtype.
template <typename F>
auto by_dtype(Dtype dtype, F&& f) {
  return dtype == Dtype::F32 ? f(float{}) : f(double{});
}

// ---------------------------------------------------------------------------------------------
// conv2d

struct ConvArgs {
  Pair stride, padding, dilation;
  int64_t groups;
};

Conv2dParams conv_params(const Shape4& x, const Shape4& w, const ConvArgs& a,
                         const ConvArgNames& names) {
  Conv2dParams p;
  p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3];
  p.K = w[0], p.R = w[2], p.S = w[3];
  p.stride = {a.stride.first, a.stride.second};
  p.pad = {a.padding.first, a.padding.second};
  p.dilation = {a.dilation.first, a.dilation.second};
  p.groups = a.groups;
  check(conv2d_check(p, w[1], names));
  return p;
}

Shape4 shape_arg(const Shape4& s, const char* op, const char* name) {
  for (int64_t v : s) {
    if (v < 1)
      fail(std::string(op) + ": " + name + " must be 4 positive sizes, got " + shape4_str(s));
  }
  return s;
}

template <class B>
py::array conv2d(py::handle x_obj, py::handle w_obj, py::handle b_obj, ConvArgs args, bool relu,
                 py::handle out) {
  const char* op = "conv2d";
  const py::array x = input<B>(x_obj, op, "x"), w = input<B>(w_obj, op, "w");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  require_ndim(w, 4, op, "w", "(K, C / groups, R, S)");
  Dtype dtype = same_dtype(op, {{&x, "x"}, {&w, "w"}});
  const bool has_bias = !b_obj.is_none();
  py::array b;  // a default py::array is an empty array, not null: test has_bias instead
  if (has_bias) {
    b = input<B>(b_obj, op, "b");
    dtype = same_dtype(op, {{&x, "x"}, {&b, "b"}});
    if (b.ndim() != 1 || b.shape(0) != w.shape(0)) {
      fail(std::string(op) + ": b must have shape (" + std::to_string(w.shape(0)) +
           ",) (one bias per filter of w), got " + shape_str(b));
    }
  }
  Conv2dParams p = conv_params(shape4(x), shape4(w), args, ConvArgNames{});
  p.relu = relu;
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, {p.N, p.K, p.P, p.Q}, op, "out",
                               {{x_obj, "x"}, {w_obj, "w"}, {b_obj, "b"}});
    const T* b_ptr = has_bias ? ptr<T>(b) : nullptr;
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().conv2d_forward(p, ptr<T>(x), ptr<T>(w), b_ptr, y_ptr);
    return y;
  });
}

template <class B>
py::array conv2d_backward_input(py::handle dy_obj, py::handle w_obj, Shape4 input_shape,
                                ConvArgs args, py::handle out) {
  const char* op = "conv2d_backward_input";
  const py::array dy = input<B>(dy_obj, op, "dy"), w = input<B>(w_obj, op, "w");
  require_ndim(w, 4, op, "w", "(K, C / groups, R, S)");
  const Dtype dtype = same_dtype(op, {{&dy, "dy"}, {&w, "w"}});
  shape_arg(input_shape, op, "input_shape");
  const Conv2dParams p =
      conv_params(input_shape, shape4(w), args, ConvArgNames{op, "input_shape", "w"});
  require_shape(dy, {p.N, p.K, p.P, p.Q}, op, "dy", "(the forward output for input_shape and w)");
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx =
        output<B, T>(out, {p.N, p.C, p.H, p.W}, op, "out", {{dy_obj, "dy"}, {w_obj, "w"}});
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().conv2d_backward_input(p, ptr<T>(dy), ptr<T>(w), dx_ptr);
    return dx;
  });
}

template <class B>
py::array conv2d_backward_weight(py::handle x_obj, py::handle dy_obj, Shape4 weight_shape,
                                 ConvArgs args, py::handle out) {
  const char* op = "conv2d_backward_weight";
  const py::array x = input<B>(x_obj, op, "x"), dy = input<B>(dy_obj, op, "dy");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = same_dtype(op, {{&x, "x"}, {&dy, "dy"}});
  shape_arg(weight_shape, op, "weight_shape");
  const Conv2dParams p =
      conv_params(shape4(x), weight_shape, args, ConvArgNames{op, "x", "weight_shape"});
  require_shape(dy, {p.N, p.K, p.P, p.Q}, op, "dy", "(the forward output for x and weight_shape)");
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dw =
        output<B, T>(out, {weight_shape[0], weight_shape[1], weight_shape[2], weight_shape[3]}, op,
                     "out", {{x_obj, "x"}, {dy_obj, "dy"}});
    T* dw_ptr = mut_ptr<T>(dw);
    typename B::Launch launch;
    B::template kernels<T>().conv2d_backward_weight(p, ptr<T>(x), ptr<T>(dy), dw_ptr);
    return dw;
  });
}

template <class B>
py::array conv2d_backward_bias(py::handle dy_obj, py::handle out) {
  const char* op = "conv2d_backward_bias";
  const py::array dy = input<B>(dy_obj, op, "dy");
  require_ndim(dy, 4, op, "dy", "(N, K, P, Q)");
  const Dtype dtype = float_dtype(dy, op, "dy");
  Conv2dParams p;
  p.N = dy.shape(0), p.K = dy.shape(1), p.P = dy.shape(2), p.Q = dy.shape(3);
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array db = output<B, T>(out, {p.K}, op, "out", {{dy_obj, "dy"}});
    T* db_ptr = mut_ptr<T>(db);
    typename B::Launch launch;
    B::template kernels<T>().conv2d_backward_bias(p, ptr<T>(dy), db_ptr);
    return db;
  });
}

// ---------------------------------------------------------------------------------------------
// pooling

struct PoolArgs {
  Pair kernel, stride, padding;
  bool ceil_mode;
  bool count_include_pad;
};

Pool2dParams pool_params(const Shape4& x, const PoolArgs& a, const char* op,
                         const char* input_name) {
  Pool2dParams p;
  p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3];
  p.kernel = {a.kernel.first, a.kernel.second};
  p.stride = {a.stride.first, a.stride.second};
  p.pad = {a.padding.first, a.padding.second};
  p.ceil_mode = a.ceil_mode;
  p.count_include_pad = a.count_include_pad;
  check(pool2d_check(p, op, input_name));
  return p;
}

template <class B>
py::tuple max_pool2d(py::handle x_obj, PoolArgs args, py::handle out_y, py::handle out_idx) {
  const char* op = "max_pool2d";
  const py::array x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = float_dtype(x, op, "x");
  const Pool2dParams p = pool_params(shape4(x), args, op, "x");
  return by_dtype(dtype, [&](auto t) -> py::tuple {
    using T = decltype(t);
    py::array y = output<B, T>(out_y, {p.N, p.C, p.P, p.Q}, op, "out[0] (y)", {{x_obj, "x"}});
    py::array idx = output<B, int64_t>(out_idx, {p.N, p.C, p.P, p.Q}, op, "out[1] (idx)",
                                       {{x_obj, "x"}, {y, "out[0] (y)"}});
    T* y_ptr = mut_ptr<T>(y);
    int64_t* idx_ptr = mut_ptr<int64_t>(idx);
    {
      typename B::Launch launch;
      B::template kernels<T>().max_pool2d_forward(p, ptr<T>(x), y_ptr, idx_ptr);
    }
    return py::make_tuple(y, idx);
  });
}

template <class B>
py::array max_pool2d_backward(py::handle dy_obj, py::handle idx_obj, Shape4 input_shape,
                              py::handle out) {
  const char* op = "max_pool2d_backward";
  const py::array dy = input<B>(dy_obj, op, "dy");
  const py::array idx = input<B>(idx_obj, op, "idx");
  require_ndim(dy, 4, op, "dy", "(N, C, P, Q)");
  const Dtype dtype = float_dtype(dy, op, "dy");
  if (!idx.dtype().equal(py::dtype::of<int64_t>())) {
    throw py::type_error(std::string(op) +
                         ": idx must have dtype int64 (as returned by "
                         "max_pool2d), got " +
                         dtype_name(idx));
  }
  require_shape(idx, shape4(dy), op, "idx", "(the shape of dy)");
  shape_arg(input_shape, op, "input_shape");
  Pool2dParams p;
  p.N = input_shape[0], p.C = input_shape[1], p.H = input_shape[2], p.W = input_shape[3];
  p.P = dy.shape(2), p.Q = dy.shape(3);
  if (checked_numel(p.N, p.C, p.H, p.W) < 0) {
    fail(std::string(op) + ": input_shape " + shape4_str(input_shape) + " overflows int64");
  }
  if (dy.shape(0) != p.N || dy.shape(1) != p.C) {
    fail(std::string(op) + ": dy has shape " + shape_str(dy) + " but input_shape " +
         shape4_str(input_shape) + " has a different batch or channel count");
  }
  const int64_t plane = p.H * p.W, count = static_cast<int64_t>(idx.size());
  const int64_t* idx_ptr = ptr<int64_t>(idx);
  int64_t bad = 0;
  bool out_of_range;
  {
    typename B::Launch launch;
    out_of_range = B::find_out_of_range(idx_ptr, count, plane, &bad);
  }
  if (out_of_range) {
    fail(std::string(op) + ": idx holds " + std::to_string(bad) +
         ", outside the input plane of input_shape " + shape4_str(input_shape) + " (valid: 0 to " +
         std::to_string(plane - 1) + ")");
  }
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx =
        output<B, T>(out, {p.N, p.C, p.H, p.W}, op, "out", {{dy_obj, "dy"}, {idx_obj, "idx"}});
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().max_pool2d_backward(p, ptr<T>(dy), idx_ptr, dx_ptr);
    return dx;
  });
}

template <class B>
py::array avg_pool2d(py::handle x_obj, PoolArgs args, py::handle out) {
  const char* op = "avg_pool2d";
  const py::array x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = float_dtype(x, op, "x");
  const Pool2dParams p = pool_params(shape4(x), args, op, "x");
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, {p.N, p.C, p.P, p.Q}, op, "out", {{x_obj, "x"}});
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().avg_pool2d_forward(p, ptr<T>(x), y_ptr);
    return y;
  });
}

template <class B>
py::array avg_pool2d_backward(py::handle dy_obj, Shape4 input_shape, PoolArgs args,
                              py::handle out) {
  const char* op = "avg_pool2d_backward";
  const py::array dy = input<B>(dy_obj, op, "dy");
  const Dtype dtype = float_dtype(dy, op, "dy");
  shape_arg(input_shape, op, "input_shape");
  const Pool2dParams p = pool_params(input_shape, args, op, "input_shape");
  require_shape(dy, {p.N, p.C, p.P, p.Q}, op, "dy", "(the forward output for input_shape)");
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx = output<B, T>(out, {p.N, p.C, p.H, p.W}, op, "out", {{dy_obj, "dy"}});
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().avg_pool2d_backward(p, ptr<T>(dy), dx_ptr);
    return dx;
  });
}

// ---------------------------------------------------------------------------------------------
// relu, lrn, lcn

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

void require_same_shape(const py::array& a, const py::array& ref, const char* op, const char* name,
                        const char* ref_name) {
  if (shape_of(a) != shape_of(ref)) {
    fail(std::string(op) + ": " + name + " must have the shape of " + ref_name + " " +
         shape_str(ref) + ", got " + shape_str(a));
  }
}

template <class B>
py::array relu(py::handle x_obj, double negative_slope, py::handle out) {
  const char* op = "relu";
  const py::array x = input<B>(x_obj, op, "x");
  const Dtype dtype = float_dtype(x, op, "x");
  const ReluParams p{static_cast<int64_t>(x.size()), negative_slope};
  check(relu_check(p, op));
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, shape_of(x), op, "out", {{x_obj, "x"}}, "x");
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().relu_forward(p, ptr<T>(x), y_ptr);
    return y;
  });
}

template <class B>
py::array relu_backward(py::handle dy_obj, py::handle x_obj, double negative_slope,
                        py::handle out) {
  const char* op = "relu_backward";
  const py::array dy = input<B>(dy_obj, op, "dy"), x = input<B>(x_obj, op, "x");
  const Dtype dtype = same_dtype(op, {{&dy, "dy"}, {&x, "x"}});
  require_same_shape(dy, x, op, "dy", "x");
  const ReluParams p{static_cast<int64_t>(x.size()), negative_slope};
  check(relu_check(p, op));
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx = output<B, T>(out, shape_of(x), op, "out", {{dy_obj, "dy"}, {x_obj, "x"}}, "dy");
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().relu_backward(p, ptr<T>(dy), ptr<T>(x), dx_ptr);
    return dx;
  });
}

template <class B>
py::array tanh_forward(py::handle x_obj, double amplitude, double slope, py::handle out) {
  const char* op = "tanh";
  const py::array x = input<B>(x_obj, op, "x");
  const Dtype dtype = float_dtype(x, op, "x");
  const TanhParams p{static_cast<int64_t>(x.size()), amplitude, slope};
  check(tanh_check(p, op));
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, shape_of(x), op, "out", {{x_obj, "x"}}, "x");
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().tanh_forward(p, ptr<T>(x), y_ptr);
    return y;
  });
}

template <class B>
py::array tanh_backward(py::handle dy_obj, py::handle y_obj, double amplitude, double slope,
                        py::handle out) {
  const char* op = "tanh_backward";
  const py::array dy = input<B>(dy_obj, op, "dy"), y = input<B>(y_obj, op, "y");
  const Dtype dtype = same_dtype(op, {{&dy, "dy"}, {&y, "y"}});
  require_same_shape(dy, y, op, "dy", "y");
  const TanhParams p{static_cast<int64_t>(y.size()), amplitude, slope};
  check(tanh_check(p, op));
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx = output<B, T>(out, shape_of(y), op, "out", {{dy_obj, "dy"}, {y_obj, "y"}}, "dy");
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().tanh_backward(p, ptr<T>(dy), ptr<T>(y), dx_ptr);
    return dx;
  });
}

LrnParams lrn_params(const py::array& x, int64_t size, double alpha, double beta, double k,
                     const char* op) {
  LrnParams p;
  p.N = x.shape(0), p.C = x.shape(1), p.H = x.shape(2), p.W = x.shape(3);
  p.size = size, p.alpha = alpha, p.beta = beta, p.k = k;
  check(lrn_check(p, op));
  return p;
}

template <class B>
py::array lrn(py::handle x_obj, int64_t size, double alpha, double beta, double k, py::handle out) {
  const char* op = "lrn";
  const py::array x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = float_dtype(x, op, "x");
  const LrnParams p = lrn_params(x, size, alpha, beta, k, op);
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, shape_of(x), op, "out", {{x_obj, "x"}});
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().lrn_forward(p, ptr<T>(x), y_ptr);
    return y;
  });
}

template <class B>
py::array lrn_backward(py::handle dy_obj, py::handle x_obj, int64_t size, double alpha, double beta,
                       double k, py::handle out) {
  const char* op = "lrn_backward";
  const py::array dy = input<B>(dy_obj, op, "dy"), x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = same_dtype(op, {{&dy, "dy"}, {&x, "x"}});
  require_same_shape(dy, x, op, "dy", "x");
  const LrnParams p = lrn_params(x, size, alpha, beta, k, op);
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx = output<B, T>(out, shape_of(x), op, "out", {{dy_obj, "dy"}, {x_obj, "x"}});
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().lrn_backward(p, ptr<T>(dy), ptr<T>(x), dx_ptr);
    return dx;
  });
}

LcnParams lcn_params(const py::array& x, int64_t size, double sigma, double eps, const char* op) {
  LcnParams p;
  p.N = x.shape(0), p.C = x.shape(1), p.H = x.shape(2), p.W = x.shape(3);
  p.size = size, p.sigma = sigma, p.eps = eps;
  check(lcn_check(p, op));
  return p;
}

template <class B>
py::array lcn(py::handle x_obj, int64_t size, double sigma, double eps, py::handle out) {
  const char* op = "lcn";
  const py::array x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = float_dtype(x, op, "x");
  const LcnParams p = lcn_params(x, size, sigma, eps, op);
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array y = output<B, T>(out, shape_of(x), op, "out", {{x_obj, "x"}});
    T* y_ptr = mut_ptr<T>(y);
    typename B::Launch launch;
    B::template kernels<T>().lcn_forward(p, ptr<T>(x), y_ptr);
    return y;
  });
}

template <class B>
py::array lcn_backward(py::handle dy_obj, py::handle x_obj, int64_t size, double sigma, double eps,
                       py::handle out) {
  const char* op = "lcn_backward";
  const py::array dy = input<B>(dy_obj, op, "dy"), x = input<B>(x_obj, op, "x");
  require_ndim(x, 4, op, "x", "(N, C, H, W)");
  const Dtype dtype = same_dtype(op, {{&dy, "dy"}, {&x, "x"}});
  require_same_shape(dy, x, op, "dy", "x");
  const LcnParams p = lcn_params(x, size, sigma, eps, op);
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    py::array dx = output<B, T>(out, shape_of(x), op, "out", {{dy_obj, "dy"}, {x_obj, "x"}});
    T* dx_ptr = mut_ptr<T>(dx);
    typename B::Launch launch;
    B::template kernels<T>().lcn_backward(p, ptr<T>(dy), ptr<T>(x), dx_ptr);
    return dx;
  });
}

// ---------------------------------------------------------------------------------------------
// registration

// Defines the argument structs and every op on module m, for backend B.
template <class B>
void def_ops(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<ConvArgs>(m, "ConvArgs")
      .def(py::init<Pair, Pair, Pair, int64_t>(), py::arg("stride"), py::arg("padding"),
           py::arg("dilation"), py::arg("groups"));
  py::class_<PoolArgs>(m, "PoolArgs")
      .def(py::init<Pair, Pair, Pair, bool, bool>(), py::arg("kernel"), py::arg("stride"),
           py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"));

  // out: None, or the caller's buffer for the result (see output()); max_pool2d takes two.
  const auto out = py::arg("out") = py::none();
  m.def("conv2d", &conv2d<B>, "x"_a, "w"_a, "b"_a, "args"_a, "relu"_a, out);
  m.def("conv2d_backward_input", &conv2d_backward_input<B>, "dy"_a, "w"_a, "input_shape"_a,
        "args"_a, out);
  m.def("conv2d_backward_weight", &conv2d_backward_weight<B>, "x"_a, "dy"_a, "weight_shape"_a,
        "args"_a, out);
  m.def("conv2d_backward_bias", &conv2d_backward_bias<B>, "dy"_a, out);
  m.def("max_pool2d", &max_pool2d<B>, "x"_a, "args"_a, "out_y"_a = py::none(),
        "out_idx"_a = py::none());
  m.def("max_pool2d_backward", &max_pool2d_backward<B>, "dy"_a, "idx"_a, "input_shape"_a, out);
  m.def("avg_pool2d", &avg_pool2d<B>, "x"_a, "args"_a, out);
  m.def("avg_pool2d_backward", &avg_pool2d_backward<B>, "dy"_a, "input_shape"_a, "args"_a, out);
  m.def("relu", &relu<B>, "x"_a, "negative_slope"_a, out);
  m.def("relu_backward", &relu_backward<B>, "dy"_a, "x"_a, "negative_slope"_a, out);
  m.def("tanh", &tanh_forward<B>, "x"_a, "amplitude"_a, "slope"_a, out);
  m.def("tanh_backward", &tanh_backward<B>, "dy"_a, "y"_a, "amplitude"_a, "slope"_a, out);
  m.def("lrn", &lrn<B>, "x"_a, "size"_a, "alpha"_a, "beta"_a, "k"_a, out);
  m.def("lrn_backward", &lrn_backward<B>, "dy"_a, "x"_a, "size"_a, "alpha"_a, "beta"_a, "k"_a, out);
  m.def("lcn", &lcn<B>, "x"_a, "size"_a, "sigma"_a, "eps"_a, out);
  m.def("lcn_backward", &lcn_backward<B>, "dy"_a, "x"_a, "size"_a, "sigma"_a, "eps"_a, out);
  m.def("_set_poison_outputs", [](bool on) { poison_outputs.store(on); });
}

}  // namespace
}  // namespace ck
