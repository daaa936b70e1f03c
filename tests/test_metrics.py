"""`claude-guard metrics`: Prometheus text format, to stdout or atomically into a textfile-collector folder."""

from __future__ import annotations

import re
from pathlib import Path

from claude_guard.sessions import STATES
from sweepkit import Sandbox, box, new_id

__all__ = ["box"]

LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
SAMPLE = re.compile(rf"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{{{LABEL}(,{LABEL})*\}})? -?[0-9.e+]+$")


def parse(text: str) -> dict[str, float]:
    """Check the exposition format line by line; returns {name{labels}: value}."""
    out: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter") and name not in typed
            typed.add(name)
            continue
        assert SAMPLE.match(line), line
        key, value = line.rsplit(" ", 1)
        assert key.split("{")[0] in typed, f"{key}: sample before its TYPE line"
        out[key] = float(value)
    return out


def test_metrics_by_state_and_ended_by_reason(box: Sandbox) -> None:
    idle = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id()})
    orphan = box.session()
    box.orphan(orphan)
    r = box.cli("metrics")
    assert r.returncode == 0, r.stderr
    values = parse(r.stdout)
    for state in STATES:
        assert f'claude_guard_sessions{{state="{state}"}}' in values
    assert values['claude_guard_sessions{state="idle"}'] >= 1
    assert values['claude_guard_sessions{state="orphan"}'] >= 1
    assert values['claude_guard_session_memory_bytes{state="idle"}'] > 0
    assert values["claude_guard_reap_sweeps_total"] == 0
    box.reap("--min-age", "0", "--grace", "5")
    values = parse(box.cli("metrics").stdout)
    assert values['claude_guard_sessions_ended_total{reason="orphan"}'] == 1
    assert values['claude_guard_memory_freed_bytes_total{reason="orphan"}'] > 0
    assert values["claude_guard_reap_sweeps_total"] == 1 and values["claude_guard_last_reap_timestamp_seconds"] > 0
    assert idle.alive


def test_textfile_is_written_atomically(box: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    r = box.cli("metrics", "--textfile-dir", str(folder))
    assert r.returncode == 0 and r.stdout == ""
    assert [p.name for p in folder.iterdir()] == ["claude_guard.prom"]  # no temp file left behind
    parse((folder / "claude_guard.prom").read_text())
    r = box.cli("metrics", "--textfile-dir", str(tmp_path / "missing"))
    assert r.returncode == 1 and "cannot write" in r.stderr
