// Validation and output-size arithmetic for every op: the one place where parameters are checked,
// shared by the CPU and CUDA bindings. Compiled once, for the baseline ISA (see params.h).
#include "params.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>

namespace ck {
namespace {

// Hyper-parameters (strides, paddings, window sizes) above this are surely a mistake, and keeping
// them small lets the size arithmetic below stay in int64 without overflow.
constexpr int64_t kMaxParam = (int64_t{1} << 31) - 1;

std::string hw_str(Hw v) {
  std::ostringstream s;
  s << "(" << v.h << ", " << v.w << ")";
  return s.str();
}

std::string shape_str(int64_t n, int64_t c, int64_t h, int64_t w) {
  std::ostringstream s;
  s << "(" << n << ", " << c << ", " << h << ", " << w << ")";
  return s.str();
}

// Empty when every component of `v` lies in [lo, kMaxParam].
std::string check_range(const char* op, const char* name, Hw v, int64_t lo, const char* what) {
  if (v.h < lo || v.w < lo || v.h > kMaxParam || v.w > kMaxParam) {
    std::ostringstream s;
    s << op << ": " << name << " must be " << what << " (at most " << kMaxParam << "), got "
      << hw_str(v);
    return s.str();
  }
  return {};
}

std::string check_dims(const char* op, const char* name, int64_t n, int64_t c, int64_t h,
                       int64_t w) {
  if (n < 1 || c < 1 || h < 1 || w < 1) {
    return std::string(op) + ": " + name + " must have every dimension >= 1, got shape " +
           shape_str(n, c, h, w);
  }
  if (checked_numel(n, c, h, w) < 0) {
    return std::string(op) + ": " + name + " shape " + shape_str(n, c, h, w) +
           " has more elements than fit in memory addresses (size overflows int64)";
  }
  return {};
}

std::atomic<ConvAlgorithm>& algorithm_setting() {
  static std::atomic<ConvAlgorithm> setting{ConvAlgorithm::kAuto};
  return setting;
}

}  // namespace

ConvAlgorithm conv_algorithm() {
  return algorithm_setting().load(std::memory_order_relaxed);
}

void set_conv_algorithm(ConvAlgorithm algorithm) {
  algorithm_setting().store(algorithm);
}

int64_t checked_numel(int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t ab, abc, abcd, bytes;
  if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc) ||
      __builtin_mul_overflow(abc, d, &abcd) || __builtin_mul_overflow(abcd, int64_t{8}, &bytes)) {
    return -1;
  }
  return abcd;
}

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;  // extent of the dilated kernel
  const int64_t padded = in + 2 * pad;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  const int64_t padded = in + 2 * pad;
  if (padded < kernel) return 0;
  int64_t out = (padded - kernel + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // PyTorch's rule: the last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

std::string conv2d_check(Conv2dParams& p, int64_t weight_channels, const ConvArgNames& names) {
  const char* op = names.op;
  std::string err;
  if (!(err = check_dims(op, names.input, p.N, p.C, p.H, p.W)).empty()) return err;
  if (!(err = check_dims(op, names.weight, p.K, weight_channels, p.R, p.S)).empty()) return err;
  if (!(err = check_range(op, "stride", p.stride, 1, "positive")).empty()) return err;
  if (!(err = check_range(op, "padding", p.pad, 0, "non-negative")).empty()) return err;
  if (!(err = check_range(op, "dilation", p.dilation, 1, "positive")).empty()) return err;
  if (p.groups < 1 || p.groups > kMaxParam) {
    return std::string(op) + ": groups must be positive, got " + std::to_string(p.groups);
  }
  std::ostringstream s;
  if (p.C % p.groups != 0) {
    s << op << ": input channels C=" << p.C << " of " << names.input
      << " are not divisible by groups=" << p.groups;
    return s.str();
  }
  if (p.K % p.groups != 0) {
    s << op << ": output channels K=" << p.K << " of " << names.weight
      << " are not divisible by groups=" << p.groups;
    return s.str();
  }
  if (weight_channels != p.C / p.groups) {
    s << op << ": " << names.weight << " has " << weight_channels
      << " input channels per filter but " << names.input << " has C=" << p.C
      << " channels in groups=" << p.groups << " (expected " << p.C / p.groups << ")";
    return s.str();
  }
  if (p.R > kMaxParam || p.S > kMaxParam) {
    s << op << ": " << names.weight << " kernel " << p.R << "x" << p.S << " is too large";
    return s.str();
  }
  p.P = conv_output_size(p.H, p.R, p.stride.h, p.pad.h, p.dilation.h);
  p.Q = conv_output_size(p.W, p.S, p.stride.w, p.pad.w, p.dilation.w);
  if (p.P < 1 || p.Q < 1) {
    s << op << ": output would be empty: " << names.input << " spatial size (" << p.H << ", " << p.W
      << ") with padding " << hw_str(p.pad) << " is smaller than the kernel " << p.R << "x" << p.S
      << " dilated by " << hw_str(p.dilation);
    return s.str();
  }
  // The im2col panel of one sample, (C/groups * R * S) x (P * Q), must be addressable too.
  if (checked_numel(p.C / p.groups, p.R * p.S, p.P, p.Q) < 0 ||
      checked_numel(p.N, p.K, p.P, p.Q) < 0) {
    s << op << ": sizes overflow int64 (input " << shape_str(p.N, p.C, p.H, p.W) << ", kernel "
      << p.R << "x" << p.S << ")";
    return s.str();
  }
  return {};
}

std::string pool2d_check(Pool2dParams& p, const char* op, const char* input_name) {
  std::string err;
  if (!(err = check_dims(op, input_name, p.N, p.C, p.H, p.W)).empty()) return err;
  if (!(err = check_range(op, "kernel_size", p.kernel, 1, "positive")).empty()) return err;
  if (!(err = check_range(op, "stride", p.stride, 1, "positive")).empty()) return err;
  if (!(err = check_range(op, "padding", p.pad, 0, "non-negative")).empty()) return err;
  std::ostringstream s;
  if (2 * p.pad.h > p.kernel.h || 2 * p.pad.w > p.kernel.w) {
    s << op << ": padding " << hw_str(p.pad) << " must be at most half of kernel_size "
      << hw_str(p.kernel);
    return s.str();
  }
  p.P = pool_output_size(p.H, p.kernel.h, p.stride.h, p.pad.h, p.ceil_mode);
  p.Q = pool_output_size(p.W, p.kernel.w, p.stride.w, p.pad.w, p.ceil_mode);
  if (p.P < 1 || p.Q < 1) {
    s << op << ": output would be empty: " << input_name << " spatial size (" << p.H << ", " << p.W
      << ") with padding " << hw_str(p.pad) << " is smaller than kernel_size " << hw_str(p.kernel);
    return s.str();
  }
  return {};
}

std::string relu_check(const ReluParams& p, const char* op) {
  if (!std::isfinite(p.negative_slope)) {
    return std::string(op) + ": negative_slope must be finite, got " +
           std::to_string(p.negative_slope);
  }
  return {};
}

std::string tanh_check(const TanhParams& p, const char* op) {
  if (!std::isfinite(p.amplitude) || p.amplitude == 0.0) {
    return std::string(op) + ": amplitude must be finite and nonzero, got " +
           std::to_string(p.amplitude);
  }
  if (!std::isfinite(p.slope)) {
    return std::string(op) + ": slope must be finite, got " + std::to_string(p.slope);
  }
  return {};
}

std::string lrn_check(const LrnParams& p, const char* op) {
  std::string err = check_dims(op, "x", p.N, p.C, p.H, p.W);
  if (!err.empty()) return err;
  if (p.size < 1 || p.size > kMaxParam) {
    return std::string(op) + ": size must be a positive number of channels, got " +
           std::to_string(p.size);
  }
  const double values[] = {p.alpha, p.beta, p.k};
  const char* names[] = {"alpha", "beta", "k"};
  for (int i = 0; i < 3; ++i) {
    if (!std::isfinite(values[i])) {
      return std::string(op) + ": " + names[i] + " must be finite, got " +
             std::to_string(values[i]);
    }
  }
  return {};
}

std::string lcn_check(const LcnParams& p, const char* op) {
  std::string err = check_dims(op, "x", p.N, p.C, p.H, p.W);
  if (!err.empty()) return err;
  const std::string prefix = std::string(op) + ": ";
  if (p.size < 1 || p.size % 2 == 0 || p.size > 4095) {
    return prefix + "size must be an odd window side between 1 and 4095, got " +
           std::to_string(p.size);
  }
  if (!(p.sigma > 0) || !std::isfinite(p.sigma)) {
    return prefix + "sigma must be positive and finite, got " + std::to_string(p.sigma);
  }
  if (!(p.eps > 0) || !std::isfinite(p.eps)) {
    return prefix + "eps must be positive and finite, got " + std::to_string(p.eps);
  }
  return {};
}

}  // namespace ck
