"""Smoke tests of scripts/bench*: they build (or take) a normal install, run end to end and report figures.

They assert no timing and no memory bound (the machine is shared and noisy; BENCHMARKS.md holds the figures):
only that each script works, measures what it says (a non-editable venv, the config file present, the cap
still exact under contention), so that scripts/bench does not find it broken.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import benchkit  # noqa: E402

from realclaude import find_real_claude  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmarks read /proc")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One fresh non-editable venv built from the checkout, as the benchmarks build it, shared by this module."""
    folder = tmp_path_factory.mktemp("bench") / "venv"
    benchkit.build_venv(folder, log=lambda _text: None)
    yield folder


def run(script: str, *args: str) -> list[dict[str, Any]]:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args, "--json"], capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    figures: list[dict[str, Any]] = json.loads(r.stdout)
    return figures


def assert_measured(fig: dict[str, Any]) -> None:
    for key in ("a_s", "b_s", "ratio"):
        assert isinstance(fig[key], float) and math.isfinite(fig[key]) and fig[key] > 0, fig
    assert " -> " in fig["load"]


def test_built_venv_is_a_normal_install(venv: Path) -> None:
    package = benchkit.check_venv(venv / "bin" / "python")
    assert package.startswith(str(venv)) and "site-packages" in package
    assert (venv / "bin" / "claude-guard").exists()  # the console script users run
    # The dev venv's editable install is what the benchmarks must not measure: refused, not silently used.
    with pytest.raises(SystemExit, match="editable"):
        benchkit.check_venv(Path(sys.executable))


def test_bench_launch_reports_every_figure(venv: Path) -> None:
    figures = run("bench_launch", "--venv", str(venv), "--runs", "2", "--live", "3", "--turns", "1",
                  "--launches", "6", "--cap", "2")
    by_name = {f["name"].split(" vs ")[0].split(":")[0]: f for f in figures}
    launch = by_name["session launch through the shim"]
    assert_measured(launch)
    assert launch["target"] == 1.5 and launch["detail"].startswith("3 live registered sessions")
    contention = by_name["6 concurrent launches against a cap of 2"]
    assert_measured(contention)
    assert contention["admitted"] == 2 and contention["refused"] == 4 and contention["target"] == 5.0
    floor = by_name["6 concurrent bare `python -c pass`"]
    assert_measured(floor)
    assert floor["target"] is None
    version = by_name["`claude --version` through the shim"]
    turn = by_name["a whole real `claude -p` turn against a loopback API, through the shim"]
    if find_real_claude() is None:
        assert "skipped" in version and "skipped" in turn
    else:
        assert_measured(version)
        assert_measured(turn)
        assert turn["target"] == 1.03 and "requests answered" in turn["detail"]


def test_bench_launch_refuses_an_editable_install() -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts/bench_launch"), "--venv", str(REPO / ".venv"),
                        "--runs", "1", "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0 and "editable" in r.stderr and r.stdout == ""


def test_bench_sweep_reports_ps_and_reap(venv: Path) -> None:
    figures = run("bench_sweep", "--venv", str(venv), "--sessions", "4", "--rounds", "1")
    assert [f["name"].split(" with ")[0] for f in figures[:2]] == ["`ps --json`", "`reap --dry-run`"]
    for fig in figures:
        assert_measured(fig)
        assert "(4 of them listed by ps --json)" in fig["detail"]
    assert [f["target"] for f in figures] == [2.0, 2.0, None]
    assert figures[2]["name"].startswith("that venv's bare `python` importing argparse")


def test_bench_watch_reports_rss_and_exits_cleanly(venv: Path) -> None:
    figures = run("bench_watch", "--venv", str(venv), "--sweeps", "20", "--sessions", "2")
    growth = figures[0]
    assert growth["target"] == 1.1
    for key in ("a", "b", "ratio"):
        assert isinstance(growth[key], float) and math.isfinite(growth[key]) and growth[key] > 0
    (one,) = growth["runs"]
    assert one["sweeps"] == 20 and one["exit"] == 0  # every sweep printed one JSON line; SIGTERM ended it with 0
    assert figures[1]["unit"] == "MiB" and figures[1]["a"] > 0


def test_bench_writes_the_report(venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    r = subprocess.run([sys.executable, str(REPO / "scripts/bench"), "--venv", str(venv), "--out", str(out),
                        "--launch-runs", "2", "--turns", "1", "--sessions", "3", "--rounds", "1", "--sweeps", "4",
                        "--watch-runs", "1", "--before", "4e06b71"], capture_output=True, text=True, timeout=900,
                       check=False)
    assert r.returncode == 0, r.stderr
    report = out.read_text(encoding="utf-8")
    assert "| figure | ours | reference | ratio | target | verdict | load |" in report
    for name in ("session launch through the shim", "concurrent launches against a cap of 8",
                 "64 concurrent bare `python -c pass` vs one alone",
                 "`claude --version` through the shim", "a whole real `claude -p` turn", "`ps --json` with 3",
                 "`reap --dry-run` with 3", "importing argparse and parsing no argument",
                 "`reap --watch` resident memory"):
        assert name in report, name
    assert benchkit.CONFIG.format(max_sessions=8) in report + "\n"  # the config file each figure ran with
    assert f"given venv {venv}" in report
    # The before column: ratios from the BENCHMARKS.md of issue 13's "before" commit, matched by figure name.
    launch_row = next(line for line in report.splitlines() if line.startswith("| session launch through the shim"))
    assert launch_row.rstrip().endswith("| 3.749 |") and "at commit 4e06b71" in report
