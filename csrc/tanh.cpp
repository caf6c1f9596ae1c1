// Scaled hyperbolic tangent, LeNet-5's squashing function (A = 1.7159, S = 2/3 there), forward
// and backward, elementwise over any layout:
//   y = A tanh(S x),   dx = dy S / A (A - y) (A + y)   [= dy A S (1 - tanh(S x)^2)]
// Backward takes the forward's output y, as PyTorch's tanh_backward does, so it needs no tanh;
// (A - y)(A + y) keeps its relative accuracy where y nears +-A (A^2 - y^2 would cancel).
//
// tanh(z) = sign(z) e / (e + 2) with e = expm1(2 |z|): nothing cancels for small |z|, because
// expm1 keeps its relative accuracy there (e^r - 1 is a polynomial in r with no constant term).
// 2 |z| is clamped where tanh rounds to 1, so e stays finite; NaN stays NaN, tanh(+-inf) = +-1,
// tanh(-0) = -0. Every element, the tail of an array too, goes through the same vector code,
// so a value's result does not depend on where it sits. Within 3 ulp in float and double
// (2.5 the worst seen; tests/test_elementwise_and_norm.py checks the bound on every ISA level).
#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// Per type: exp's argument reduction and the Taylor coefficients 1/n! of e^r - 1 for
// |r| <= ln 2 / 2 (degree 7 for float, 14 for double: the next term is below half an ulp).
template <typename T>
struct Expm1Constants;

template <>
struct Expm1Constants<float> {
  using Bits = int32_t;
  static constexpr int kMantissaBits = 23, kExponentBias = 127;
  static constexpr float kMaxArgument = 20.0f;  // tanh(10) rounds to 1 in float
  // ln 2 = kLn2High + kLn2Low, kLn2High with 12 trailing zero bits: k kLn2High is exact.
  static constexpr float kLn2High = 0.693115234375f, kLn2Low = 3.194618329871446e-05f;
  static constexpr float kLog2e = 1.4426950408889634f;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr int kDegree = 7;
};

template <>
struct Expm1Constants<double> {
  using Bits = int64_t;
  static constexpr int kMantissaBits = 52, kExponentBias = 1023;
  static constexpr double kMaxArgument = 44.0;  // tanh(22) rounds to 1 in double
  // kLn2High with 32 trailing zero bits
  static constexpr double kLn2High = 0.6931467056274414, kLn2Low = 4.7493250390316726e-07;
  static constexpr double kLog2e = 1.4426950408889634;
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int kDegree = 14;
};

// 1/n! for n <= Degree, rounded once to T (n! is exact in double up to 18!).
template <typename T, int Degree>
struct InverseFactorials {
  T c[Degree + 1] = {};
  constexpr InverseFactorials() {
    double factorial = 1;
    for (int n = 0; n <= Degree; ++n) {
      factorial *= n > 0 ? n : 1;
      c[n] = static_cast<T>(1.0 / factorial);
    }
  }
};

template <typename To, typename From>
__attribute__((always_inline)) inline To bits_as(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &v, sizeof(To));
  return to;
}

// tanh(z) lane by lane, for a vector of T.
template <typename T, typename V>
__attribute__((always_inline)) inline V vector_tanh(V z) {
  using C = Expm1Constants<T>;
  using Int = typename C::Bits;
  typedef Int Bits __attribute__((vector_size(sizeof(V))));
  constexpr Int sign_bit = Int(1) << (8 * sizeof(T) - 1);
  constexpr InverseFactorials<T, C::kDegree> inverse_factorial;
  const Bits z_bits = bits_as<Bits>(z);
  const V a = bits_as<V>(z_bits & ~sign_bit);
  V v = a + a;
  v = v > C::kMaxArgument ? V{} + C::kMaxArgument : v;  // NaN is not greater: it stays
  // e = expm1(v) = 2^k (e^r - 1) + (2^k - 1), v = k ln 2 + r, |r| <= ln 2 / 2.
  const V shifted = v * C::kLog2e + C::kRound;  // kRound + k, k rounded to nearest
  const V k = shifted - C::kRound;
  const V r = (v - k * C::kLn2High) - k * C::kLn2Low;
  V poly = V{} + inverse_factorial.c[C::kDegree];
#pragma GCC unroll 16
  for (int n = C::kDegree - 1; n >= 2; --n) poly = poly * r + inverse_factorial.c[n];
  const V e_r_minus_1 = r + r * r * poly;
  // 2^k from k's bits: the low bits of kRound + k hold k.
  const Bits k_int = bits_as<Bits>(shifted) - bits_as<Int>(C::kRound);
  const V scale = bits_as<V>((k_int + C::kExponentBias) << C::kMantissaBits);
  const V e = scale * e_r_minus_1 + (scale - T(1));
  const V t = e / (e + T(2));
  return bits_as<V>(bits_as<Bits>(t) | (z_bits & sign_bit));
}

// Calls body(start, n) on blocks of at most 4096 elements of [0, count), in parallel once there are
// enough of them to share.
template <typename Body>
void for_each_chunk(int64_t count, Body body) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 4)
  for (int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(kChunk, count - c * kChunk));
}

// Calls op(vector...) -> vector on every full vector of [0, n) of the arrays, and on the tail
// copied into a padded vector (zeros beyond n), writing n results to out.
template <typename T, typename Op, typename... In>
__attribute__((always_inline)) inline void map_vectors(int64_t n, T* out, Op op, const In*... in) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V r = op([&](const T* a) {
      V v;
      std::memcpy(&v, a + i, sizeof(V));
      return v;
    }(in)...);
    std::memcpy(out + i, &r, sizeof(V));
  }
  if (i < n) {
    const auto tail = [&](const T* a) {
      V v{};
      std::memcpy(&v, a + i, (n - i) * sizeof(T));
      return v;
    };
    const V r = op(tail(in)...);
    std::memcpy(out + i, &r, (n - i) * sizeof(T));
  }
}

}  // namespace

template <typename T>
void tanh_forward(const TanhParams& p, const T* x, T* y) {
  using V = typename Simd<T>::Vec;
  const T amplitude = static_cast<T>(p.amplitude), slope = static_cast<T>(p.slope);
  for_each_chunk(p.count, [&](int64_t at, int64_t n) {
    map_vectors<T>(
        n, y + at, [&](V x_v) { return amplitude * vector_tanh<T>(slope * x_v); }, x + at);
  });
}

template <typename T>
void tanh_backward(const TanhParams& p, const T* dy, const T* y, T* dx) {
  using V = typename Simd<T>::Vec;
  const T amplitude = static_cast<T>(p.amplitude);
  const T scale = static_cast<T>(p.slope / p.amplitude);
  for_each_chunk(p.count, [&](int64_t at, int64_t n) {
    map_vectors<T>(
        n, dx + at,
        [&](V dy_v, V y_v) { return dy_v * scale * ((amplitude - y_v) * (amplitude + y_v)); },
        dy + at, y + at);
  });
}

template void tanh_forward<float>(const TanhParams&, const float*, float*);
template void tanh_forward<double>(const TanhParams&, const double*, double*);
template void tanh_backward<float>(const TanhParams&, const float*, const float*, float*);
template void tanh_backward<double>(const TanhParams&, const double*, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
