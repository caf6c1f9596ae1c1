// Parameter structs shared by the CPU and CUDA kernels, and the one validation routine per op.
//
// Legend (used in every kernel file):
//   N batch, C input channels, H W input height/width, K output channels (filters),
//   R S filter or window height/width, P Q output height/width, G groups.
//
// This header holds plain structs and declarations only. It is included by translation units
// compiled for different ISA levels, so any inline function defined here could be merged by the
// linker with a copy built for a wider ISA than the CPU has; the definitions live in params.cpp,
// which is compiled once, for the baseline ISA.
#pragma once

#include <cstdint>
#include <string>

namespace ck {

struct Hw {
  int64_t h = 0;
  int64_t w = 0;
};

struct Conv2dParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input x: (N, C, H, W)
  int64_t K = 0, R = 0, S = 0;         // weight w: (K, C / groups, R, S)
  Hw stride{1, 1}, pad{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  int64_t P = 0, Q = 0;  // output y: (N, K, P, Q), filled in by conv2d_check
  bool relu = false;     // forward only: y = relu(conv + bias), applied as y is written
};

struct Pool2dParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input x: (N, C, H, W)
  Hw kernel{1, 1}, stride{1, 1}, pad{0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only
  int64_t P = 0, Q = 0;           // output y: (N, C, P, Q), filled in by pool2d_check
};

struct ReluParams {
  int64_t count = 0;  // number of elements; the layout does not matter
  double negative_slope = 0.0;
};

// y = amplitude tanh(slope x), elementwise (LeNet-5's squashing: amplitude 1.7159, slope 2/3).
struct TanhParams {
  int64_t count = 0;  // number of elements; the layout does not matter
  double amplitude = 1.0, slope = 1.0;
};

// Cross-channel LRN, PyTorch's convention: y_c = x_c / (k + alpha/size * sum_{j in W(c)}
// x_j^2)^beta, W(c) = [c - size/2, c + (size-1)/2] clipped to [0, C).
struct LrnParams {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t size = 5;
  double alpha = 1e-4, beta = 0.75, k = 1.0;
};

// Local contrast normalization (Jarrett et al. 2009); see DESIGN.md for the formula.
struct LcnParams {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t size = 9;  // odd window side
  double sigma = 2.0, eps = 1e-4;
};

// How convolutions are computed. kAuto picks per shape; the others force one algorithm, which
// is how the tests reach every path on every shape.
enum class ConvAlgorithm { kAuto, kGemm, kDirect, kWinograd };
ConvAlgorithm conv_algorithm();
void set_conv_algorithm(ConvAlgorithm algorithm);

// The function and argument names an error message should mention.
struct ConvArgNames {
  const char* op = "conv2d";
  const char* input = "x";   // "input_shape" for backward-input
  const char* weight = "w";  // "weight_shape" for backward-weight
};

// Each check validates the parameters, fills in the output size, and returns an error message
// that names the offending argument, or an empty string when everything is valid. Messages
// starting with "TypeError:" are type errors; all others are value errors.
// `weight_channels` is dimension 1 of the weight, which must equal C / groups.
std::string conv2d_check(Conv2dParams& p, int64_t weight_channels, const ConvArgNames& names);
std::string pool2d_check(Pool2dParams& p, const char* op, const char* input_name);
// `op` is the name of the function called (forward or backward), for the messages.
std::string relu_check(const ReluParams& p, const char* op);
std::string tanh_check(const TanhParams& p, const char* op);
std::string lrn_check(const LrnParams& p, const char* op);
std::string lcn_check(const LcnParams& p, const char* op);

// Output size along one dimension; the single definition of this arithmetic in C++.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode);

// Product of the four dims, or -1 if it (or its size in bytes) would overflow int64.
int64_t checked_numel(int64_t a, int64_t b, int64_t c, int64_t d);

}  // namespace ck
