// Picks the kernel table for this CPU (or CONVKERNELS_ISA) and keeps the thread count. setup.py
// defines CK_BUILD_AVX512 / CK_BUILD_AVX2 when it compiled those levels (x86-64 only); the
// portable level is always built.
#include "dispatch.h"

#include <atomic>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ck {

#ifdef CK_BUILD_AVX512
namespace avx512 {
const IsaKernels& isa_kernels();
}
#endif
#ifdef CK_BUILD_AVX2
namespace avx2 {
const IsaKernels& isa_kernels();
}
#endif
namespace portable {
const IsaKernels& isa_kernels();
}

namespace {

struct Level {
  const char* name;
  const IsaKernels& (*kernels)();
  bool (*cpu_has)();
};

const std::vector<Level>& levels() {
  static const std::vector<Level> all = {
#ifdef CK_BUILD_AVX512
      {"avx512", &avx512::isa_kernels,
       [] {
#ifdef CK_EMULATE_AVX512  // a test build: that level is AVX2 code (tests/emulation)
         return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
         return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("fma");
#endif
       }},
#endif
#ifdef CK_BUILD_AVX2
      {"avx2", &avx2::isa_kernels,
       [] { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }},
#endif
      {"portable", &portable::isa_kernels, [] { return true; }},
  };
  return all;
}

const IsaKernels* best_supported() {
#if defined(CK_BUILD_AVX512) || defined(CK_BUILD_AVX2)
  __builtin_cpu_init();
#endif
  for (const Level& level : levels()) {
    if (level.cpu_has()) return &level.kernels();
  }
  return &portable::isa_kernels();
}

// The level `name` if this build has it and this CPU can run it; else null and a message.
const Level* find_level(const std::string& name, std::string* error) {
  for (const Level& level : levels()) {
    if (name != level.name) continue;
    if (level.cpu_has()) return &level;
    *error = "this CPU does not support the ISA level '" + name + "'";
    return nullptr;
  }
  std::string known;
  for (const std::string& n : compiled_isas()) known += (known.empty() ? "" : ", ") + n;
  *error = "unknown ISA level '" + name + "' (this build has: " + known + ")";
  return nullptr;
}

// The table chosen when the library is first used, from CONVKERNELS_ISA or the CPU.
struct Initial {
  const IsaKernels* table;
  std::string env_error;  // why CONVKERNELS_ISA could not be used, or empty
};

const Initial& initial() {
  static const Initial init = [] {
    Initial result{best_supported(), {}};
    const char* env = std::getenv("CONVKERNELS_ISA");
    if (env != nullptr && *env != '\0') {
      std::string error;
      if (const Level* level = find_level(env, &error)) {
        result.table = &level->kernels();
      } else {
        result.env_error = std::string("CONVKERNELS_ISA=") + env + ": " + error;
      }
    }
    return result;
  }();
  return init;
}

std::atomic<const IsaKernels*>& active() {
  static std::atomic<const IsaKernels*> table{initial().table};
  return table;
}

// Whether the CONVKERNELS_ISA error still stands (set_isa clears it).
std::atomic<bool>& env_error_pending() {
  static std::atomic<bool> pending{!initial().env_error.empty()};
  return pending;
}

std::atomic<int> num_threads{0};  // 0: never set, each thread keeps OpenMP's default

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Level& level : levels()) {
    if (level.cpu_has()) names.emplace_back(level.name);
  }
  return names;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const Level& level : levels()) names.emplace_back(level.name);
  return names;
}

const IsaKernels& active_kernels() {
#ifdef _OPENMP
  const int n = num_threads.load(std::memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
#endif
  return *active().load();
}

std::string set_isa(const std::string& name) {
  std::string error;
  const Level* level = find_level(name, &error);
  if (level == nullptr) return error;
  active().store(&level->kernels());
  env_error_pending().store(false);
  return {};
}

std::string isa_env_error() {
  return env_error_pending().load() ? initial().env_error : std::string();
}

int get_num_threads() {
  const int n = num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::string set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) {
    return "set_num_threads: n must be between 1 and " + std::to_string(kMaxThreads) + ", got " +
           std::to_string(n);
  }
  num_threads.store(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  return {};
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace ck
