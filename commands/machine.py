"""The machine a benchmark ran on, and what its CPU could do at best, recorded with every result.

A latency is meaningless without its CPU, instruction set, thread count and library versions, and a
MAC/s figure only says something next to the CPU's peak. Two peaks are given, and how they were
derived travels with them:
- theoretical: clock x SIMD lanes x FMA units per core, from /proc/cpuinfo (x86) or the ARM
  feature flags; int8 with a dot-product instruction (AVX-512 VNNI, AVX-VNNI, ARM dotprod) does
  4 MACs per 32-bit lane, without it 2. FMA units per core are assumed to be 2 (true of recent
  x86 server and desktop cores; 1 on many ARM cores): treat the figure as an upper bound.
- measured: single-thread fp32 matrix multiply with numpy's BLAS, an achievable reference.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "neon", "asimd", "asimddp", "asimdhp", "sve", "i8mm")
PACKAGES = ("dermedge", "numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime", "tensorflow",
            "tf-keras", "tensorflow-model-optimization", "coremltools")
FMA_UNITS_ASSUMED = 2

_SGEMM_PROBE = """
import time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
a @ a
best = min((lambda t: (a @ a, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))
print(1024 ** 3 / best)
"""


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip().lower(), value.strip())  # first CPU's values
    return info


def _clock_ghz(info: dict[str, str]) -> float | None:
    """Nominal clock: the '@ 2.20GHz' in the model name, else the current 'cpu MHz', else cpufreq."""
    match = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    if match:
        return float(match.group(1))
    if info.get("cpu mhz"):
        return float(info["cpu mhz"]) / 1000
    maximum = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return int(maximum.read_text()) / 1e6 if maximum.exists() else None


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def theoretical_peak(flags: set[str], clock_ghz: float | None) -> dict | None:
    """Per-core GMAC/s for fp32 and int8, with the formula that produced them."""
    if not clock_ghz:
        return None
    lanes = 16 if "avx512f" in flags else 8 if ("avx2" in flags or "avx" in flags) else 4
    int8_per_lane = 4 if flags & {"avx512_vnni", "avx_vnni", "asimddp"} else 2
    fp32 = clock_ghz * lanes * FMA_UNITS_ASSUMED
    return {
        "fp32_gmacs_per_core": round(fp32, 1),
        "int8_gmacs_per_core": round(fp32 * int8_per_lane, 1),
        "derivation": f"{clock_ghz:.2f} GHz x {lanes} fp32 lanes x {FMA_UNITS_ASSUMED} FMA units (assumed); "
                      f"int8 x{int8_per_lane} MACs per lane "
                      f"({'dot-product instruction' if int8_per_lane == 4 else 'no dot-product instruction'})",
    }


def measured_sgemm_gmacs() -> float | None:
    """Single-thread fp32 matmul GMAC/s in a child process (BLAS thread count fixed before import)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", _SGEMM_PROBE], env=env, capture_output=True, text=True,
                             timeout=120, check=True).stdout
        return round(float(out.strip().splitlines()[-1]) / 1e9, 1)
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def machine_info(measure_peak: bool = True) -> dict:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    clock = _clock_ghz(info)
    return {
        "cpu": info.get("model name") or info.get("hardware") or platform.processor() or platform.machine(),
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "clock_ghz": round(clock, 3) if clock else None,
        "isa_flags": sorted(flags & set(ISA_FLAGS)),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": _versions(),
        "peak": {"theoretical": theoretical_peak(flags, clock),
                 "measured_sgemm_gmacs_1_thread": measured_sgemm_gmacs() if measure_peak else None},
    }
