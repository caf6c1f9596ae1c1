"""What this machine can do: a short probe (about 1-2 s) behind `convkernels info` and the bench.

Three numbers, named for what they are:

* **measured GEMM GFLOP/s** -- convkernels' own SGEMM (``convkernels.gemm``) on a cache-resident
  square size, best of several calls. This is what the library reaches, not the machine's peak.
* **peak GFLOP/s** -- measured: independent chains of vector FMAs on every thread, in C++ at the
  active ISA level (``csrc/fma_peak.cpp``), best of several runs. That is the most any FP32 kernel
  of that level can reach on this machine with these threads, whatever the VM reports about its
  clock. ``$CONVKERNELS_PEAK_GFLOPS`` overrides it (a datasheet figure, say). The source is
  always reported next to the value.
* **copy GB/s** -- ``np.copyto`` of a 256 MiB float32 array, best of several, counting the bytes
  read plus the bytes written (2 x 256 MiB per copy); once on one thread and once split over
  the threads; the better of the two is reported. glibc's memcpy may switch to non-temporal
  stores for copies this large, so this is the streaming DRAM bandwidth. (The bench judges each
  memory-bound row against a same-size copy timed alongside it instead, as BASELINE.md advises.)
"""

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = [
    "PEAK_ENV",
    "copy_bandwidth",
    "cpu_model",
    "describe",
    "fma_peak",
    "gemm_gflops",
    "peak_gflops",
    "probe",
]

PEAK_ENV = "CONVKERNELS_PEAK_GFLOPS"
MiB = 1 << 20


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux), or what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def peak_gflops(threads):
    """{'gflops', 'source'}: the FP32 peak used for '% of peak' (see the module docstring)."""
    value = os.environ.get(PEAK_ENV)
    if value:
        try:
            gflops = float(value)
        except ValueError:
            raise ValueError(f"{PEAK_ENV} must be a number of GFLOP/s, got {value!r}") from None
        if not gflops > 0:
            raise ValueError(f"{PEAK_ENV} must be positive, got {value!r}")
        return {"gflops": gflops, "source": f"${PEAK_ENV}"}
    peak = fma_peak(threads)
    source = (
        f"measured: FMA chains at ISA level {peak['isa']} on {peak['threads']} threads, "
        f"best of {peak['calls']}; set {PEAK_ENV} to override"
    )
    return {"gflops": peak["gflops"], "source": source}


def fma_peak(threads=None, budget_s=0.25, repeats=5, min_run_s=0.02):
    """The FP32 peak measured on `threads` threads (default: convkernels' setting).

    Every thread runs chains of vector FMAs at the active ISA level; the number of steps grows
    until one run takes min_run_s, then the best of at least `repeats` runs (more within
    budget_s) counts. Returns {'gflops', 'threads', 'isa', 'calls'}.
    """
    import convkernels as ck
    from convkernels import _C

    before = ck.get_num_threads()
    if threads is not None:
        ck.set_num_threads(threads)
    try:
        rounds = 1 << 12
        run = _C.fma_peak_run(rounds)
        while run["seconds"] < min_run_s and rounds < 1 << 40:
            rounds *= 2 if run["seconds"] > min_run_s / 4 else 8
            run = _C.fma_peak_run(rounds)
        best, calls = run["flops"] / run["seconds"], 1
        start = time.perf_counter()
        while calls < repeats or time.perf_counter() - start < budget_s:
            run = _C.fma_peak_run(rounds)
            best = max(best, run["flops"] / run["seconds"])
            calls += 1
            if calls >= 100:
                break
    finally:
        ck.set_num_threads(before)
    return {"gflops": best / 1e9, "threads": run["threads"], "isa": ck.get_isa(), "calls": calls}


def _best_time(fn, repeats, budget_s):
    """The shortest of at least `repeats` calls (more while within budget_s)."""
    best = float("inf")
    calls = 0
    start = time.perf_counter()
    while calls < repeats or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
        if calls >= 1000:
            break
    return best, calls


def gemm_gflops(n=512, threads=None, budget_s=0.6, repeats=5):
    """convkernels.gemm on n x n x n float32 (3 MiB at n=512: cache-resident), best call.

    The result is checked against NumPy's matmul first. Returns {'gflops', 'n', 'threads',
    'calls'}.
    """
    import convkernels as ck

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    before = ck.get_num_threads()
    if threads is not None:
        ck.set_num_threads(threads)
    try:
        c = ck.gemm(a, b)
        expected = a.astype(np.float64) @ b.astype(np.float64)
        err = float(np.max(np.abs(c - expected)) / max(1.0, float(np.max(np.abs(expected)))))
        if not err <= 1e-4:
            raise RuntimeError(f"convkernels.gemm is wrong on {n}^3: relative error {err:.3g}")
        best, calls = _best_time(lambda: ck.gemm(a, b), repeats, budget_s)
        used = ck.get_num_threads()
    finally:
        ck.set_num_threads(before)
    return {"gflops": 2.0 * n**3 / best / 1e9, "n": n, "threads": used, "calls": calls}


def copy_bandwidth(nbytes=256 * MiB, threads=1, repeats=5):
    """Best np.copyto bandwidth in GB/s (read + write bytes), on one thread and on `threads`.

    With threads > 1 the array is split into that many contiguous chunks copied by Python
    threads (np.copyto releases the GIL). Returns {'gbs', 'gbs_1thread', 'gbs_threads',
    'threads', 'bytes', 'repeats'}; 'gbs' is the better of the two.
    """
    n = max(1, int(nbytes) // 4)
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)  # touched, so page faults are not timed
    moved = 2.0 * src.nbytes
    one, _ = _best_time(lambda: np.copyto(dst, src), repeats, 0.0)
    result = {
        "gbs_1thread": moved / one / 1e9,
        "gbs_threads": None,
        "threads": int(threads),
        "bytes": int(src.nbytes),
        "repeats": int(repeats),
    }
    if threads > 1:
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        chunks = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        with ThreadPoolExecutor(threads) as pool:

            def parallel():
                for f in [pool.submit(np.copyto, d, s) for d, s in chunks]:
                    f.result()

            many, _ = _best_time(parallel, repeats, 0.0)
        result["gbs_threads"] = moved / many / 1e9
    result["gbs"] = max(v for v in (result["gbs_1thread"], result["gbs_threads"]) if v)
    return result


def probe(threads=None, gemm_n=512, copy_bytes=256 * MiB):
    """All three numbers plus the CPU: {'cpu', 'threads', 'gemm', 'peak', 'copy', 'seconds'}."""
    import convkernels as ck

    start = time.perf_counter()
    threads = ck.get_num_threads() if threads is None else int(threads)
    result = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "gemm": gemm_gflops(gemm_n, threads),
        "peak": peak_gflops(threads),
        "copy": copy_bandwidth(copy_bytes, threads),
    }
    result["warning"] = None
    if result["gemm"]["gflops"] > result["peak"]["gflops"]:
        result["warning"] = (
            f"the measured GEMM ({result['gemm']['gflops']:.0f} GFLOP/s) beats the peak in use "
            f"({result['peak']['gflops']:.0f}): the peak is too low (set by {PEAK_ENV}, or the "
            "probe ran while other work had the cores)"
        )
    result["seconds"] = time.perf_counter() - start
    return result


def describe(result):
    """Lines 'key  value (how)' for `convkernels info` and the bench header."""
    gemm, peak, copy = result["gemm"], result["peak"], result["copy"]
    n = gemm["n"]
    each = f"1 thread {copy['gbs_1thread']:.1f}"
    if copy["gbs_threads"] is not None:
        each += f", {copy['threads']} threads {copy['gbs_threads']:.1f}"
    return [
        ("cpu", f"{result['cpu']} ({result['logical_cpus']} logical CPUs)"),
        (
            "measured GEMM GFLOP/s",
            f"{gemm['gflops']:.1f} (convkernels.gemm {n}x{n}x{n} float32, "
            f"{gemm['threads']} threads, best of {gemm['calls']})",
        ),
        ("peak GFLOP/s", f"{peak['gflops']:.1f} ({peak['source']})"),
        (
            "copy GB/s",
            f"{copy['gbs']:.1f} (np.copyto {copy['bytes'] // MiB} MiB, read + write bytes, "
            f"best of {copy['repeats']}; {each})",
        ),
        ("probe seconds", f"{result['seconds']:.2f}"),
    ] + ([("warning", result["warning"])] if result["warning"] else [])
