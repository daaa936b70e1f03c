"""The sweep against the real Claude Code CLI (offline, against a loopback fake API; skipped without the CLI).

Two real interactive sessions, launched through the shim in pseudo-terminals: `ps` lists both with their
session ids and Claude's own status; then one is orphaned by killing its parent and `reap` ends it: its
process tree and its ~/.claude/sessions file are gone, the freed memory is reported, and the other session
is untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from realclaude import FakeAnthropic, InteractiveClaude, offline_env, require_real_claude, squash
from sweepkit import wait_for

pytestmark = pytest.mark.realclaude

# The parent of the session that gets orphaned, and a subreaper above it so the orphan is handed to a
# process that reaps it (PID 1 of a container may not): wrapper -> middle -> claude. The test kills the
# middle. On SIGTERM the wrapper ends whatever it still parents, reaps it, and exits.
WRAPPER = r"""
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
middle = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()",
                           *sys.argv[1:]])
middle.returncode = 0  # reaped below, not by Popen
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
def children():
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        return [int(p) for p in f.read().split()]
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    if stop:
        for pid in children():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while children() and time.monotonic() < deadline:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.05)
        sys.exit(0)
    time.sleep(0.05)
"""


def guard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "claude_guard", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def guarded_world(tmp_path: Path, api: FakeAnthropic) -> tuple[dict[str, str], Path, str]:
    """(environment, working folder, shim path): a throwaway home whose PATH starts with the installed shim in
    front of the real CLI, which talks to `api`."""
    real = require_real_claude()
    home, work, shim_dir = tmp_path / "home", tmp_path / "work", tmp_path / "shim"
    work.mkdir()
    env = offline_env(home, api.url, trust=[work])
    env.update(XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CONFIG_HOME=str(home / ".config"),
               CLAUDE_GUARD_REAL_CLAUDE=real, CLAUDE_GUARD_COUNT_UNGUARDED="false",
               PATH=os.pathsep.join([str(shim_dir), env["PATH"]]), NO_COLOR="1")
    r = guard(env, "install", "--dir", str(shim_dir))
    assert r.returncode == 0, r.stderr
    return env, work, str(shim_dir / "claude")


def test_real_sessions_are_listed_and_an_orphan_is_reaped(tmp_path: Path) -> None:
    require_real_claude()
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    with FakeAnthropic() as api:
        env, work, shim = guarded_world(tmp_path, api)
        with InteractiveClaude([shim], env=env, cwd=work) as kept, \
                InteractiveClaude([sys.executable, str(wrapper), shim], env=env, cwd=work) as doomed:
            kept.wait_ready(90)
            doomed.wait_ready(90)
            doomed.send("say hi")  # a transcript, so the report can say how to resume it
            r = guard(env, "ps", "--json", "--under", str(work))
            assert r.returncode == 0, r.stderr
            rows = {row["pid"]: row for row in json.loads(r.stdout)}
            assert set(rows) == {kept.claude_pid, doomed.claude_pid}
            for session in (kept, doomed):
                row = rows[session.claude_pid]
                assert row["session_id"] == session.session_id and row["status"] == "idle"
                assert row["state"] == "idle" and row["guarded"] is True and row["kind"] == "interactive"
                assert row["cwd"] == str(work) and row["rss_bytes"] > 50 * 1024 * 1024

            victims = tree(doomed.claude_pid)
            doomed_id = doomed.session_id
            sessions_file = doomed.sessions_file()
            middle = psutil.Process(doomed.claude_pid).parent()
            assert middle is not None and middle.ppid() == doomed.pid  # the wrapper's child: ours
            middle.send_signal(signal.SIGKILL)
            wait_for(lambda: psutil.Process(doomed.claude_pid).ppid() == doomed.pid, 30, "claude to be reparented")

            r = guard(env, "reap", "--json", "--min-age", "0", "--grace", "15", "--under", str(work))
            assert r.returncode == 0, r.stderr
            report: dict[str, Any] = json.loads(r.stdout)
            assert [(a["pid"], a["reason"], a["outcome"]) for a in report["actions"]] == \
                [(doomed.claude_pid, "orphan", "ended")]
            action = report["actions"][0]
            assert action["session_id"] == doomed_id
            assert action["rss_bytes"] > 50 * 1024 * 1024 and report["summary"]["freed_bytes"] == action["rss_bytes"]
            assert action["resume"] == f"cd {work} && claude --resume {doomed_id}"
            assert action["signals"] == ["TERM"]  # Claude exits gracefully on TERM
            assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in victims)
            assert not sessions_file.exists()
            assert kept.session_info().get("status") == "idle" and psutil.Process(kept.claude_pid).is_running()
            text = guard(env, "reap", "--dry-run", "--min-age", "0", "--under", str(work))
            assert "nothing to reap (1 session live)" in text.stdout


def test_kill_ends_a_real_session_by_its_id_and_tells_its_terminal(tmp_path: Path) -> None:
    """`claude-guard kill <session id>` on a real interactive session, in a terminal that is its controlling
    one (as in a terminal emulator or tmux): the line on the terminal before the signal names what ends it and
    how to resume, the whole tree goes, and the resume command in the report is the real one."""
    require_real_claude()
    with FakeAnthropic() as api:
        env, work, shim = guarded_world(tmp_path, api)
        with InteractiveClaude([shim], env=env, cwd=work, controlling_tty=True) as session:
            session.wait_ready(90)
            session.send("say hi")  # a transcript, so it can be resumed
            sid = session.session_id
            victims = tree(session.claude_pid)
            mark = session.mark()
            r = guard(env, "kill", sid[:8], "--grace", "15")
            assert r.returncode == 0, r.stderr
            assert f"ended PID {session.claude_pid} session {sid} [kill]" in r.stdout
            assert f"resume with: cd {work} && claude --resume {sid}" in r.stdout
            assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in victims)
            said = session.text(mark)
            assert squash("is ending this Claude session (kill: asked for by hand") in squash(said), said
            assert squash(f"Resume it with: cd {work} && claude --resume {sid}") in squash(said)
