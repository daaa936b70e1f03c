"""The duplicate policy against the real Claude Code CLI (offline, a loopback fake API; skipped without the CLI).

The case of issue 16.2: a conversation is open in one real session that nobody is typing in (its terminal is not
its controlling terminal: nothing hangs it up, it is detached), and `claude --resume <id>` opens it again in a
terminal someone is using. Both real processes write Claude's own session file with that session id. The sweep
must end the detached copy, never the newer one in use, and must keep an attached copy without `reap_attached`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from realclaude import FakeAnthropic, InteractiveClaude, offline_env, require_real_claude

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
