// pybind11 module convkernels._C: the host backend of the op bindings in op_bindings.h, the GEMM
// and the run-time settings (ISA level, threads, convolution algorithm).
//
// This module holds no kernels: it links against the shared library convkernels/lib/
// libconvkernels.so (found through an $ORIGIN rpath), which holds the kernels, params.cpp,
// dispatch.cpp and the C API, so Python and C callers in one process share one ISA choice and
// one thread setting.
#include <utility>

#include "op_bindings.h"

namespace ck {
namespace {

// Host arrays: NumPy allocates, the active ISA level's kernels run.
struct HostBackend {
  static constexpr bool kCopiesInputs = true;

  template <typename T>
  static py::array allocate(const std::vector<py::ssize_t>& shape) {
    return py::array_t<T>(shape);
  }

  template <typename T>
  static void poison(py::array& a) {
    const T value =
        std::numeric_limits<T>::has_quiet_NaN ? std::numeric_limits<T>::quiet_NaN() : T(-1);
    T* data = static_cast<T*>(a.mutable_data());
    std::fill(data, data + a.size(), value);
  }

  template <typename T>
  static const KernelTable<T>& kernels() {
    return active_kernels().table<T>();
  }

  using Launch = py::gil_scoped_release;

  static bool find_out_of_range(const int64_t* idx, int64_t count, int64_t limit, int64_t* bad) {
    const int64_t i = active_kernels().first_out_of_range(idx, count, limit);
    if (i >= 0) *bad = idx[i];
    return i >= 0;
  }
};

// ---------------------------------------------------------------------------------------------
// gemm (for tests and benchmarks of the GEMM at the heart of conv)

py::array gemm(py::handle a_obj, py::handle b_obj, py::handle c_obj, bool trans_a, bool trans_b,
               double alpha, double beta, py::handle out_obj) {
  const char* op = "gemm";
  const py::array a = input<HostBackend>(a_obj, op, "a"), b = input<HostBackend>(b_obj, op, "b");
  require_ndim(a, 2, op, "a", "(rows, cols)");
  require_ndim(b, 2, op, "b", "(rows, cols)");
  const Dtype dtype = same_dtype(op, {{&a, "a"}, {&b, "b"}});
  const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t N = trans_b ? b.shape(0) : b.shape(1), Kb = trans_b ? b.shape(1) : b.shape(0);
  if (K != Kb) {
    fail(std::string(op) + ": inner dimensions differ: op(a) is " + std::to_string(M) + "x" +
         std::to_string(K) + ", op(b) is " + std::to_string(Kb) + "x" + std::to_string(N));
  }
  const bool has_c = !c_obj.is_none();
  py::array c;
  if (has_c) {
    c = input<HostBackend>(c_obj, op, "c");
    same_dtype(op, {{&a, "a"}, {&c, "c"}});
    if (c.ndim() != 2 || c.shape(0) != M || c.shape(1) != N) {
      fail(std::string(op) + ": c must have shape (" + std::to_string(M) + ", " +
           std::to_string(N) + "), got " + shape_str(c));
    }
  }
  return by_dtype(dtype, [&](auto t) -> py::array {
    using T = decltype(t);
    // out may be c itself (BLAS's C := alpha op(A) op(B) + beta C), but must not overlap a or b.
    py::array out = output<HostBackend, T>(out_obj, {M, N}, op, "out",
                                           {{a_obj, "a"}, {b_obj, "b"}, {c_obj, "c"}}, "c");
    T* out_ptr = mut_ptr<T>(out);
    if (has_c && ptr<T>(c) != out_ptr) std::copy(ptr<T>(c), ptr<T>(c) + M * N, out_ptr);
    const T beta_t = has_c ? static_cast<T>(beta) : T(0);
    py::gil_scoped_release release;
    active_kernels().table<T>().gemm(
        trans_a ? GemmTrans::Yes : GemmTrans::No, trans_b ? GemmTrans::Yes : GemmTrans::No, M, N, K,
        static_cast<T>(alpha), ptr<T>(a), a.shape(1), ptr<T>(b), b.shape(1), beta_t, out_ptr, N);
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// run-time settings

void set_isa_or_raise(const std::string& name) {
  check(set_isa(name));
}

void set_num_threads_or_raise(int n) {
  check(set_num_threads(n));
}

constexpr std::pair<const char*, ConvAlgorithm> kConvAlgorithms[] = {
    {"auto", ConvAlgorithm::kAuto},
    {"gemm", ConvAlgorithm::kGemm},
    {"direct", ConvAlgorithm::kDirect},
    {"winograd", ConvAlgorithm::kWinograd},
};

}  // namespace
}  // namespace ck

PYBIND11_MODULE(_C, m) {
  using namespace ck;
  using namespace pybind11::literals;
  m.doc() = "convkernels compiled kernels; use the functions in convkernels, not these.";
  def_ops<HostBackend>(m);
  m.def("gemm", &gemm, "a"_a, "b"_a, "c"_a, "trans_a"_a, "trans_b"_a, "alpha"_a, "beta"_a,
        "out"_a = py::none());

  m.def("isa", [] { return std::string(active_kernels().name); });
  m.def("set_isa", &set_isa_or_raise);
  // Which convolution algorithm runs (convkernels.set_conv_algorithm documents the names).
  m.def("set_conv_algorithm", [](const std::string& name) {
    for (const auto& [known, algorithm] : kConvAlgorithms) {
      if (name == known) return set_conv_algorithm(algorithm);
    }
    fail("set_conv_algorithm: name must be 'auto', 'gemm', 'direct' or 'winograd', got '" + name +
         "'");
  });
  m.def("get_conv_algorithm", [] {
    for (const auto& [name, algorithm] : kConvAlgorithms) {
      if (algorithm == conv_algorithm()) return std::string(name);
    }
    return std::string("auto");
  });
  // One run of the FP32 peak probe on the active ISA level and thread count (convkernels.probe).
  m.def(
      "fma_peak_run",
      [](int64_t rounds) {
        if (rounds < 1) fail("fma_peak_run: rounds must be >= 1, got " + std::to_string(rounds));
        const IsaKernels& kernels = active_kernels();
        FmaRun run;
        {
          py::gil_scoped_release release;
          run = kernels.fma_peak_run(rounds);
        }
        return py::dict("flops"_a = run.flops, "seconds"_a = run.seconds, "threads"_a = run.threads,
                        "checksum"_a = run.checksum);
      },
      "rounds"_a);
  m.def("supported_isas", &supported_isas);
  m.def("compiled_isas", &compiled_isas);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads_or_raise);
  m.attr("openmp") = openmp_enabled();
}
