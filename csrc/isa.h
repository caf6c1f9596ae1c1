// What every kernel translation unit includes first.
//
// Kernel sources are compiled once per ISA level (see setup.py), each time with CK_ISA set to the
// level's name: avx512, avx2 or portable. Everything a kernel file defines must live in the
// namespace ck::CK_ISA, including helpers: two inline functions with the same name built for
// different ISAs would be merged by the linker, and a CPU without AVX-512 could end up running
// the AVX-512 copy. setup.py checks the object files for such shared symbols.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef CK_ISA
#error "CK_ISA must name the ISA level this file is compiled for (avx512, avx2 or portable)"
#endif

namespace ck {
namespace CK_ISA {

// The vector width of this ISA level, for kernels written with GCC vector extensions: the -m
// flags the file is compiled with turn them into AVX-512, AVX2 or SSE2 instructions.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <typename T>
struct Simd {
  typedef T Vec __attribute__((vector_size(kVectorBytes), may_alias));
  typedef T UnalignedVec __attribute__((vector_size(kVectorBytes), aligned(sizeof(T)), may_alias));
  static constexpr int kLanes = kVectorBytes / sizeof(T);
};

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
// a rounded up to a multiple of b.
inline int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Threads in the current parallel region: at most the num_threads asked for (fewer when the
// caller is itself inside a parallel region, or under OMP_DYNAMIC / OMP_THREAD_LIMIT).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// ReLU as relu.cpp computes it (slope 0), where `relu` says: v > 0 stays, NaN stays NaN,
// anything else (-0 included) is 0. For the ReLU fused into convolution forward. In this form
// GCC vectorises the loops that call it (with `v < 0 ? 0 : v` it kept them scalar, branching).
template <typename T>
inline T relu_if(bool relu, T v) {
  return relu && !(v > T(0)) && v == v ? T(0) : v;
}

// The same ReLU on a GCC vector of lanes, branch-free.
template <typename V>
inline V relu_lanes(V v) {
  return (v > V{}) | (v != v) ? v : V{};
}

// A scratch array of `count` elements aligned to 64 bytes, owned for one kernel call.
template <typename T>
class Scratch {
 public:
  explicit Scratch(int64_t count) {
    const size_t bytes = (static_cast<size_t>(count > 0 ? count : 1) * sizeof(T) + 63) / 64 * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~Scratch() { std::free(data_); }
  Scratch(Scratch&& other) noexcept : data_(other.data_) { other.data_ = nullptr; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
};

// out = the sum of `count` arrays of `size` elements stored one after another, added in order
// (per-thread partial results, reduced deterministically).
template <typename T>
void sum_slices(const T* slices, int count, int64_t size, T* out) {
  for (int64_t i = 0; i < size; ++i) out[i] = slices[i];
  for (int t = 1; t < count; ++t) {
    const T* slice = slices + t * size;
    for (int64_t i = 0; i < size; ++i) out[i] += slice[i];
  }
}

}  // namespace CK_ISA
}  // namespace ck
