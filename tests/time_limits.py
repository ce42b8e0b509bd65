"""Wall-clock limits for the tests that drive real processes, stretched on slow machines.

A limit only guards against a hang; it says nothing about speed (speed belongs in benchmarks/). Under
qemu a CLI call runs one to two orders of magnitude slower than natively, so `benchmarks/arm64/run.sh`
sets DERMEDGE_TEST_TIME_SCALE and every limit here grows by that factor.
"""

import os

import pytest

_raw = os.environ.get("DERMEDGE_TEST_TIME_SCALE", "1")
try:
    SCALE = float(_raw)
except ValueError:
    SCALE = 0.0
if not SCALE > 0:
    pytest.exit(f"DERMEDGE_TEST_TIME_SCALE must be a positive number, not {_raw!r}", returncode=4)


def seconds(limit: float) -> float:
    """`limit` seconds on a normal machine, scaled for this one."""
    return limit * SCALE
