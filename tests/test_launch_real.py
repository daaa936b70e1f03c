"""The launch side against the real Claude Code CLI, offline (tests/realclaude.py): argument repair that the
real CLI accepts, and a real idle interactive session that blocks a duplicate resume."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from realclaude import FakeAnthropic, InteractiveClaude, offline_env, require_real_claude, run_print

pytestmark = pytest.mark.realclaude


class RealGuard:
    def __init__(self, tmp: Path, api: FakeAnthropic) -> None:
        self.real = require_real_claude()
        self.home = tmp / "home"
        self.home.mkdir()
        self.work = tmp / "work"
        self.work.mkdir()
        self.shim_dir = tmp / "shim"
        self.env = offline_env(self.home, api.url, trust=[self.work])
        self.env.update(CLAUDE_GUARD_REAL_CLAUDE=self.real, CLAUDE_GUARD_COUNT_UNGUARDED="false",
                        PATH=f"{self.shim_dir}{os.pathsep}{self.env['PATH']}")
        subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(self.shim_dir)], env=self.env,
                       check=True, capture_output=True)
        self.shim = str(self.shim_dir / "claude")

    def registry(self) -> dict[str, object]:
        import json

        path = self.home / ".local" / "state" / "claude-guard" / "registry.json"
        return json.loads(path.read_text()) if path.exists() else {"sessions": []}


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic("Hi from the fake API.") as server:
        yield server


@pytest.fixture
def rg(tmp_path: Path, api: FakeAnthropic) -> RealGuard:
    return RealGuard(tmp_path, api)


def test_orphan_setting_sources_is_repaired_and_the_turn_completes(rg: RealGuard) -> None:
    args = ["--setting-sources", "--permission-mode", "plan", "-p", "hi"]
    direct = run_print(args, rg.env, rg.work, command=[rg.real])
    assert direct.returncode != 0 and "Invalid setting source" in direct.stdout + direct.stderr
    through = run_print(args, rg.env, rg.work, command=[rg.shim])
    assert through.returncode == 0, through.stderr
    assert "Hi from the fake API." in through.stdout
    assert "Invalid setting source" not in through.stderr


def test_stdout_is_only_claudes_json_stream(rg: RealGuard) -> None:
    r = run_print(["-p", "hi", "--output-format", "json", "--model", ""], rg.env, rg.work, command=[rg.shim])
    assert r.returncode == 0, r.stderr
    import json

    assert json.loads(r.stdout)["result"] == "Hi from the fake API."


def test_real_interactive_session_is_registered_and_blocks_a_duplicate_resume(rg: RealGuard) -> None:
    with InteractiveClaude([rg.shim], env=rg.env, cwd=rg.work) as session:
        session.wait_ready(timeout=90)
        # exec: the registered pid is the claude process itself, with its start time
        [entry] = rg.registry()["sessions"]  # type: ignore[misc]
        assert entry["pid"] == session.claude_pid
        assert entry["start"] == session.session_info()["procStart"]
        assert entry["kind"] == "interactive" and entry["tty"]
        sid = session.session_id  # known only from Claude's own sessions file: not on the command line
        refused = run_print(["--resume", sid, "-p", "again"], rg.env, rg.work, command=[rg.shim])
        assert refused.returncode == 75
        assert f"already open in PID {session.claude_pid}" in refused.stderr
        assert refused.stdout == ""
        forked = run_print(["--resume", sid, "--fork-session", "-p", "hi"], rg.env, rg.work, command=[rg.shim])
        assert forked.returncode != 75, forked.stderr


def test_session_id_named_on_the_command_line_blocks_a_second_one(rg: RealGuard) -> None:
    sid = str(uuid.uuid4())
    with InteractiveClaude([rg.shim, "--session-id", sid], env=rg.env, cwd=rg.work) as session:
        session.wait_ready(timeout=90)
        assert session.session_id == sid
        for args in (["--resume", sid, "-p", "x"], ["--session-id", sid, "-p", "x"]):
            r = run_print(args, rg.env, rg.work, command=[rg.shim])
            assert r.returncode == 75 and str(session.claude_pid) in r.stderr


def _holding(home: Path, text: str) -> list[str]:
    """Session ids of the transcripts that contain `text`."""
    return sorted(p.stem for p in (home / ".claude" / "projects").glob("*/*.jsonl") if text in p.read_text())


def test_continue_into_an_open_session_is_refused_and_fork_stays_allowed(rg: RealGuard) -> None:
    # Issue 15.1: `claude -c` names no session, and the real CLI reopens the folder's newest session even while
    # another process holds it (checked here first, unguarded, so the test fails if Claude's rule changes).
    with InteractiveClaude([rg.real], env=rg.env, cwd=rg.work) as session:
        session.wait_ready(timeout=90)
        session.send("first-turn")
        sid = session.session_id
        direct = run_print(["-c", "-p", "unguarded-continue"], rg.env, rg.work, command=[rg.real])
        assert direct.returncode == 0, direct.stderr
        assert _holding(rg.home, "unguarded-continue") == [sid]  # the interleaving the guard exists to stop
        refused = run_print(["-c", "-p", "shim-continue"], rg.env, rg.work, command=[rg.shim])
        assert refused.returncode == 75, refused.stderr
        assert f"session {sid} is already open in PID {session.claude_pid}" in refused.stderr
        assert "--continue" in refused.stderr and refused.stdout == ""
        assert _holding(rg.home, "shim-continue") == []
        forked = run_print(["--continue", "--fork-session", "-p", "forked-turn"], rg.env, rg.work, command=[rg.shim])
        assert forked.returncode == 0, forked.stderr
        [fork_id] = _holding(rg.home, "forked-turn")
        assert fork_id != sid
    # Closed: the guard lets it through and Claude continues that very session, as predicted.
    after = run_print(["-c", "-p", "after-close"], rg.env, rg.work, command=[rg.shim])
    assert after.returncode == 0, after.stderr
    assert _holding(rg.home, "after-close") == [sid]


def test_interactive_continue_skips_print_sessions_as_claude_does(rg: RealGuard) -> None:
    # The real CLI's interactive `-c` passes over sessions recorded by `-p`/SDK runs; `-c -p` does not.
    with InteractiveClaude([rg.real], env=rg.env, cwd=rg.work) as session:
        session.wait_ready(timeout=90)
        session.send("interactive-turn")
        sid = session.session_id
        newer = run_print(["--fork-session", "-c", "-p", "newer-print-session"], rg.env, rg.work, command=[rg.real])
        assert newer.returncode == 0, newer.stderr
        [print_id] = _holding(rg.home, "newer-print-session")
        assert print_id != sid
        # `-c -p` picks the newer print session (not open): allowed, and Claude continues exactly that one.
        ok = run_print(["-c", "-p", "print-continue"], rg.env, rg.work, command=[rg.shim])
        assert ok.returncode == 0, ok.stderr
        assert _holding(rg.home, "print-continue") == [print_id]
        # An interactive `-c` would pick the open interactive session: refused before Claude starts.
        with InteractiveClaude([rg.shim, "-c"], env=rg.env, cwd=rg.work) as second:
            assert second.proc is not None
            assert second.proc.wait(timeout=60) == 75
            assert f"session {sid} is already open" in second.text()
