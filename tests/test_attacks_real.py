"""Rules of the sweep-safety issue that depend on what the real Claude Code CLI does (offline, a loopback fake API;
skipped without the CLI).

- Duplicates (issue 16.2): a conversation is open in one real session that nobody is typing in (its terminal is
  not its controlling terminal: nothing hangs it up, it is detached), and `claude --resume <id>` opens it again in
  a terminal someone is using. Both real processes write Claude's own session file with that session id. The sweep
  must end the detached copy, never the newer one in use.
- Orphans by evidence (issue 10.6): the real CLI does not make a session of its own (no setsid), so a real `claude
  -p` whose host led a session and died carries that dead session; the sweep sees the adoption on its first look,
  with no registry entry and no ledger, and without looking at its new parent's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from realclaude import FakeAnthropic, InteractiveClaude, offline_env, require_real_claude
from sweepkit import wait_for
from test_reap_real import WRAPPER

pytestmark = pytest.mark.realclaude


def guard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "claude_guard", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_real_resumed_copy_in_use_is_kept_and_the_detached_one_is_the_duplicate(tmp_path: Path) -> None:
    real = require_real_claude()
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    with FakeAnthropic() as api:
        env = offline_env(home, api.url, trust=[work])
        env.update(XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CONFIG_HOME=str(home / ".config"),
                   NO_COLOR="1")
        with InteractiveClaude([real], env=env, cwd=work) as first:  # pty stdio, no controlling terminal
            first.wait_ready(90)
            first.send("say hi")  # a transcript, so the conversation can be resumed
            sid = first.session_id
            with InteractiveClaude([real, "--resume", sid], env=env, cwd=work, controlling_tty=True) as again:
                again.wait_ready(90)
                assert again.session_id == sid  # the real CLI keeps the id it resumed: two live copies
                r = guard(env, "ps", "--json", "--under", str(work))
                assert r.returncode == 0, r.stderr
                rows = {row["pid"]: row for row in json.loads(r.stdout)}
                assert rows[first.claude_pid]["attached"] is False and rows[again.claude_pid]["attached"] is True
                assert rows[first.claude_pid]["duplicate_of"] == again.claude_pid
                assert rows[again.claude_pid]["duplicate_of"] is None

                r = guard(env, "reap", "--json", "--dry-run", "--min-age", "0", "--only", "duplicate",
                          "--under", str(work))
                assert r.returncode == 0, r.stderr
                report: dict[str, Any] = json.loads(r.stdout)
                assert [(a["pid"], a["reason"]) for a in report["actions"]] == [(first.claude_pid, "duplicate")]
                assert str(again.claude_pid) in report["actions"][0]["detail"]
                assert os.path.exists(f"/proc/{first.claude_pid}") and os.path.exists(f"/proc/{again.claude_pid}")


# The SDK host of the orphan test: leads a session of its own (as a service or a login shell does), starts claude
# with a stdin that never reaches end-of-file (a FIFO it opens read-write itself), prints its pid and waits.
LEADER = r"""
import os, subprocess, sys, tempfile
os.setsid()
fifo = os.path.join(tempfile.mkdtemp(), "stdin")
os.mkfifo(fifo)
p = subprocess.Popen(["/bin/sh", "-c", 'exec "$@" <>"$0"', fifo, *sys.argv[1:]], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
print(p.pid, flush=True)
p.wait()
"""


def test_real_print_session_whose_session_leader_died_is_an_orphan_on_first_sight(tmp_path: Path) -> None:
    real = require_real_claude()
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    wrapper, leader = tmp_path / "wrapper.py", tmp_path / "leader.py"
    wrapper.write_text(WRAPPER)
    leader.write_text(LEADER)
    with FakeAnthropic() as api:
        env = offline_env(home, api.url, trust=[work])
        env.update(XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CONFIG_HOME=str(home / ".config"),
                   NO_COLOR="1")
        # wrapper (a subreaper, so the orphan is reaped) -> middle -> leader (setsid) -> claude -p
        top = subprocess.Popen([sys.executable, str(wrapper), sys.executable, str(leader), real, "-p",
                                "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"],
                               env=env, cwd=work, stdin=subprocess.DEVNULL)
        try:
            found: list[psutil.Process] = []

            def claude_started() -> bool:
                found[:] = [p for p in psutil.Process(top.pid).children(recursive=True) if p.exe() == real]
                return bool(found)

            wait_for(claude_started, 60, "the real claude to start")
            claude = found[0]
            host = claude.parent()
            assert host is not None and os.getsid(claude.pid) == host.pid != claude.pid  # no setsid of its own
            r = guard(env, "ps", "--json", "--under", str(work))
            assert r.returncode == 0, r.stderr
            row = {x["pid"]: x for x in json.loads(r.stdout)}[claude.pid]
            assert row["orphan"] is False and row["guarded"] is False
            host.kill()
            wait_for(lambda: claude.ppid() == top.pid, 30, "claude to be adopted by the subreaper")
            r = guard(env, "ps", "--json", "--under", str(work))
            row = {x["pid"]: x for x in json.loads(r.stdout)}[claude.pid]
            assert row["orphan"] is True and row["state"] == "orphan", row
            r = guard(env, "reap", "--json", "--min-age", "0", "--grace", "15", "--under", str(work))
            assert r.returncode == 0, r.stderr
            report: dict[str, Any] = json.loads(r.stdout)
            assert [(a["pid"], a["reason"], a["outcome"]) for a in report["actions"]] == \
                [(claude.pid, "orphan", "ended")]
            assert "lost its leader" in report["actions"][0]["detail"]
        finally:
            top.terminate()
            top.wait(timeout=60)
