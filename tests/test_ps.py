"""`claude-guard ps`: the JSON schema, and a table that fits the terminal and colours only a terminal."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from claude_guard.sessions import STATES
from sweepkit import Sandbox, box, new_id, wait_for

__all__ = ["box"]

# The documented schema of one `ps --json` object (docs/sweep.md): key -> allowed types.
SCHEMA: dict[str, tuple[type, ...]] = {
    "pid": (int,), "start": (str,), "session_id": (str, type(None)), "name": (str, type(None)),
    "state": (str,), "guarded": (bool,), "kind": (str,), "status": (str, type(None)),
    "age_s": (float, int, type(None)), "idle_s": (float, int, type(None)), "idle_source": (str, type(None)),
    "cpu_percent": (float, int, type(None)), "rss_bytes": (int,), "processes": (int,), "cwd": (str, type(None)),
    "terminal": (str, type(None)), "attached": (bool,), "no_client": (str, type(None)), "parent_pid": (int,),
    "parent": (str, type(None)),
    "orphan": (bool,), "duplicate_of": (int, type(None)), "uid": (int,), "argv": (list,),
}


def check_schema(row: dict[str, Any]) -> None:
    missing = set(SCHEMA) - set(row)
    assert not missing, f"missing keys {missing}"
    for key, types in SCHEMA.items():
        assert isinstance(row[key], types) and not (isinstance(row[key], bool) and bool not in types), (key, row[key])
    assert row["state"] in STATES
    assert row["kind"] in ("interactive", "print", "sdk", "background")
    assert row["idle_source"] in (None, "status", "cpu")
    assert all(isinstance(a, str) for a in row["argv"])


def test_json_matches_its_schema(box: Sandbox) -> None:
    sid = new_id()
    idle = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid, "SWEEP_STATUS_AGE": "120",
                            "SWEEP_GRANDCHILD": "1"})
    sdk = box.session("-p", "--output-format", "stream-json", pipes=True, guarded=False)
    orphan = box.session()
    box.orphan(orphan)
    rows = {r["pid"]: r for r in box.ps()}
    assert set(rows) == {idle.pid, sdk.pid, orphan.pid}
    for row in rows.values():
        check_schema(row)
    first = rows[idle.pid]
    assert first["session_id"] == sid and first["state"] == "idle" and first["status"] == "idle"
    assert first["guarded"] is True and first["processes"] == 3 and first["rss_bytes"] > 0  # claude, shell, command
    assert first["cwd"] == str(box.tmp) and first["idle_s"] >= 120 and first["age_s"] >= 0
    assert rows[sdk.pid]["kind"] == "sdk" and rows[sdk.pid]["state"] == "unguarded"
    assert rows[sdk.pid]["guarded"] is False
    assert rows[orphan.pid]["state"] == "orphan" and rows[orphan.pid]["orphan"] is True


def test_table_fits_the_terminal_and_is_plain_off_a_terminal(box: Sandbox) -> None:
    deep = box.tmp / ("deep/" * 30).strip("/")
    deep.mkdir(parents=True)
    box.session(env={"SWEEP_STATUS": "busy", "SWEEP_SESSION": new_id()}, cwd=deep)
    for columns in (60, 100, 200):
        r = box.cli("ps", "--under", str(box.tmp), env={"COLUMNS": str(columns)})
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("PID") and "CWD" in lines[0]
        table = lines[:2]  # the header and the one session (the footer below is prose, and wraps)
        assert all(len(line) <= columns for line in table), (columns, table)
        assert "\x1b[" not in r.stdout
        assert lines[1].rstrip().endswith("deep/deep") and str(box.tmp) not in lines[1]  # cut from the left
    assert "1 session (1 active)" in r.stdout


def test_colour_on_a_terminal_unless_no_color(box: Sandbox) -> None:
    box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id()})

    def run_in_pty(env: dict[str, str]) -> str:
        master, slave = os.openpty()
        p = subprocess.Popen([sys.executable, "-m", "claude_guard", "ps", "--under", str(box.tmp)],
                             env={k: v for k, v in {**box.env, **env}.items() if v is not None},
                             stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        p.wait(timeout=30)
        os.close(master)
        return out.decode()

    env = {k: v for k, v in box.env.items() if k != "NO_COLOR"}
    coloured = run_in_pty({**env, "NO_COLOR": ""})
    assert re.search(r"\x1b\[\d+m", coloured), coloured
    plain = run_in_pty({"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "idle" in plain


def test_footer_counts_strays_and_dead_entries(box: Sandbox) -> None:
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_STATUS": "busy"})  # a session file, left by SIGKILL
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    r = box.cli("ps", "--under", str(box.tmp))
    assert "0 sessions" in r.stdout
    assert "1 stray process group leaked by ended sessions" in r.stdout
    assert "1 registry entries and 1 Claude session files" in r.stdout


def test_table_shows_the_name_and_the_whole_parent(box: Sandbox, tmp_path: Path) -> None:
    """The NAME column (Claude's session name, `claude -n`; a long one cut with …), and PARENT never cut short:
    a host whose process name takes the full 15 characters, with its PID, is more than 16."""
    host = tmp_path / "a-long-host-name-here"
    host.symlink_to(sys.executable)  # the host's process name: the link's name, cut to 15 by the kernel
    named = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(), "SWEEP_NAME": "release-notes"},
                        interpreter=str(host))
    long_name = "x" * 23 + "-the-rest-is-cut"
    box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(), "SWEEP_NAME": long_name})
    r = box.cli("ps", "--under", str(box.tmp), env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:5] == ["PID", "STATE", "SESSION", "NAME", "AGE"]
    row = next(line for line in rows if line.startswith(f"{named.pid} "))
    parent = f"{named.host}:a-long-host-nam"
    assert len(parent) > 16 and f" {parent} " in row and " release-notes " in row
    assert "x" * 23 + "…" in r.stdout and long_name not in r.stdout
    assert {r["name"] for r in box.ps()} == {"release-notes", long_name}  # whole in --json
