"""Smoke test of scripts/bench_watch: it runs, stops its watch cleanly and reports numbers.

It asserts no timing and no memory bound (the machine is shared and noisy; BENCHMARKS.md holds the figures):
only that the script works end to end, so that scripts/bench does not find it broken.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bench_watch reads /proc")
def test_bench_watch_reports_rss_and_exits_cleanly() -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts/bench_watch"), "--sweeps", "20", "--sessions", "2",
                        "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    growth = figures[0]
    assert growth["target"] == 1.1
    for key in ("a", "b", "ratio"):
        assert isinstance(growth[key], float) and math.isfinite(growth[key]) and growth[key] > 0
    (run,) = growth["runs"]
    assert run["sweeps"] == 20 and run["exit"] == 0  # every sweep printed one JSON line; SIGTERM ended it with 0
    assert figures[1]["unit"] == "MiB" and figures[1]["a"] > 0
