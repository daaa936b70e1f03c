"""Strays of real sessions: what the sweep ends and what it keeps (real Claude Code CLI, scripted tool calls).

The real CLI runs `claude -p` through the shim, offline, against the loopback fake API, which answers with
Bash tool calls; the CLI runs them with its real Bash tool. Every CLI and every job is a descendant of the
sandbox's nursery (a child subreaper), so whatever leaves a tree is handed to it, not to PID 1, and is reaped.
What the layout turned out to be (2.1.330) is in docs/sweep.md, "Strays: collateral or kept":

- each Bash tool call runs in a tool shell (`bash -c 'source <snapshot> ... && eval '<cmd>' < /dev/null &&
  pwd -P >| /tmp/claude-<hex>-cwd'`), a child of claude that leads its own session and process group;
  `run_in_background` calls run in the same kind of shell, held by claude;
- a job the command detaches (`setsid nohup CMD &`, or `CMD &` and the tool shell's exit) survives the end of
  the turn and a graceful end of claude; claude does not signal it;
- SIGTERM to claude ends its tool shells (foreground and background) and their process groups; SIGKILL leaves
  them running, each still leading its session, parent gone;
- MCP servers are children of claude in claude's process group, with CLAUDE_CODE_SESSION_ID but no CLAUDE_PID.

Skipped when the CLI is absent (CI has it).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs
from realclaude import (
    TOOL_ARGS,
    FakeAnthropic,
    bash,
    offline_env,
    pid_command,
    require_real_claude,
    wait_for_file,
    write_mcp_server,
)
from sweepkit import Sandbox, box, ppid, wait_for

__all__ = ["box"]

pytestmark = pytest.mark.realclaude

PY = shlex.quote(sys.executable)
LINGER = f"{PY} -c 'import time; time.sleep(3000)'"


class Real:
    """The sandbox with the real CLI behind the shim, and a fake API to script its tool calls."""

    def __init__(self, box: Sandbox, api: FakeAnthropic) -> None:
        self.box, self.api = box, api
        self.real = require_real_claude()
        self.work = box.tmp / "work"
        self.work.mkdir()
        env = offline_env(box.home, api.url, trust=[self.work])
        env.update(XDG_STATE_HOME=box.env["XDG_STATE_HOME"], XDG_CONFIG_HOME=box.env["XDG_CONFIG_HOME"],
                   CLAUDE_GUARD_REAL_CLAUDE=self.real, CLAUDE_GUARD_COUNT_UNGUARDED="false",
                   CLAUDE_GUARD_MAX_SESSIONS="1000",  # other tests' sessions on this machine must not refuse ours
                   PATH=os.pathsep.join([str(box.shim_dir), env["PATH"]]))
        self.env = env
        box.env["CLAUDE_GUARD_REAL_CLAUDE"] = self.real
        self.runs = 0

    def start(self, prompt: str, *args: str) -> tuple[int, str]:
        """`claude -p PROMPT TOOL_ARGS ARGS` through the shim, as a child of the nursery; (pid, start)
        of the claude process (the shim execs it: same PID)."""
        self.runs += 1
        logs = self.box.tmp / f"run{self.runs}"
        logs.mkdir()
        command = [str(self.box.shim_dir / "claude"), "-p", prompt, *TOOL_ARGS, *args]
        script = f"cd {shlex.quote(str(self.work))} && exec {shlex.join(command)} >{logs}/out 2>{logs}/err"
        pid = self.box.spawn(["env", "-i", *(f"{k}={v}" for k, v in self.env.items()), "sh", "-c", script])
        start = procs.start_token(pid)
        assert start
        return pid, start

    def finish(self, pid: int, start: str) -> int:
        """Wait for a `claude -p` to end by itself; its exit status."""
        wait_for(lambda: not procs.alive(pid, start), 180, f"claude -p (PID {pid}) to finish its turn")
        status = self.box.adopted_status(pid)
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)

    def job(self, pidfile: Path) -> tuple[int, str]:
        """A job a tool command started, by the PID it recorded; remembered for the sandbox's cleanup."""
        pid = int(wait_for_file(pidfile))
        self.box.remember(pid)
        start = procs.start_token(pid)
        assert start, f"PID {pid} is already gone"
        return pid, start

    def reap(self, *args: str) -> dict[str, Any]:
        return self.box.reap("--min-age", "0", "--grace", "5", *args)

    def ps(self) -> list[dict[str, Any]]:
        return self.box.ps()


@pytest.fixture
def real(box: Sandbox) -> Iterator[Real]:
    require_real_claude()
    with FakeAnthropic() as api:
        yield Real(box, api)


def alive(job: tuple[int, str]) -> bool:
    return procs.alive(*job)


def stray_rows(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["pid"]: r for r in rows if r.get("type") == "stray"}


def kept(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {k["pid"]: k for k in report["kept_strays"]}


def test_detached_jobs_are_kept_listed_and_ended_only_with_strays_all(real: Real, tmp_path: Path) -> None:
    server_pid, sleeper_pid = tmp_path / "server.pid", tmp_path / "sleeper.pid"
    server = pid_command(server_pid, f"{PY} -m http.server 0 --bind 127.0.0.1")
    sleeper = pid_command(sleeper_pid, LINGER)
    real.api.script("start the jobs",
                    bash(f"setsid nohup {server} >/dev/null 2>&1 &"),  # a dev server, detached on purpose
                    bash(f"{sleeper} >/dev/null 2>&1 &"),  # plain `&`; the tool shell then exits
                    "Both jobs are running.")
    claude = real.start("start the jobs")
    assert real.finish(*claude) == 0  # the turn ended and claude -p exited normally
    server_job, sleeper_job = real.job(server_pid), real.job(sleeper_pid)
    wait_for(lambda: ppid(server_job[0]) == real.box.nursery.pid and ppid(sleeper_job[0]) == real.box.nursery.pid,
             30, "the jobs to be handed to the nursery")
    assert os.getsid(server_job[0]) == server_job[0]  # setsid: its own session
    assert os.getsid(sleeper_job[0]) != sleeper_job[0]  # `&`: still in the session of its (gone) tool shell

    report = real.reap()
    assert report["actions"] == [] and report["rc"] == 0
    found = kept(report)
    assert {server_job[0], sleeper_job[0]} <= set(found)
    assert found[server_job[0]]["how"] == "kept" and "detached" in found[server_job[0]]["why"]
    assert alive(server_job) and alive(sleeper_job)

    # reap --watch keeps them too, sweep after sweep.
    watch = subprocess.Popen([sys.executable, "-m", "claude_guard", "reap", "--watch", "--json", "--interval", "0.2",
                              "--min-age", "0", "--under", str(real.box.tmp)], env=real.box.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    real.box.popens.append(watch)
    assert watch.stdout is not None
    sweeps = [json.loads(watch.stdout.readline()) for _ in range(3)]
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(30) == 0
    assert all(s["actions"] == [] for s in sweeps)
    assert alive(server_job) and alive(sleeper_job)

    # ps lists them: what they run, since when, their memory, the server's port, where they came from.
    rows = stray_rows(real.ps())
    row = rows[server_job[0]]
    assert row["state"] == "kept" and row["session_id"] and row["owner_pid"] is None
    assert "http.server" in " ".join(row["argv"]) and row["rss_bytes"] > 0 and row["age_s"] is not None
    assert row["ports"] and all(isinstance(p, int) and p > 0 for p in row["ports"])
    assert row["resume"] == f"cd {real.work} && claude --resume {row['session_id']}"
    assert row["end"] == f"kill {server_job[0]}"
    assert rows[sleeper_job[0]]["state"] == "kept"
    text = real.box.cli("ps", "--under", str(real.box.tmp))
    assert text.returncode == 0 and f"end it: kill {server_job[0]}" in text.stdout
    assert f"claude --resume {row['session_id']}" in text.stdout and str(row["ports"][0]) in text.stdout

    # With the all-strays setting they are ended.
    report = real.reap("--strays", "all")
    ended = {a["pid"]: a for a in report["actions"]}
    assert {server_job[0], sleeper_job[0]} <= set(ended)
    assert all(ended[p]["reason"] == "stray" and ended[p]["outcome"] == "ended"
               for p in (server_job[0], sleeper_job[0]))
    assert not alive(server_job) and not alive(sleeper_job)


def test_tool_commands_of_a_sigkilled_session_are_ended_trees_and_all(real: Real, tmp_path: Path) -> None:
    background_pid, foreground_pid = tmp_path / "background.pid", tmp_path / "foreground.pid"
    real.api.script("run the tests",
                    bash(pid_command(background_pid, LINGER), background=True),  # a run_in_background shell
                    bash(pid_command(foreground_pid, LINGER)),  # a long test run in the foreground
                    "done")
    claude = real.start("run the tests")
    background, foreground = real.job(background_pid), real.job(foreground_pid)
    shells = []
    for job in (background, foreground):
        shell = ppid(job[0])
        assert shell and ppid(shell) == claude[0] and os.getsid(shell) == shell  # the tool shell: its own session
        start = procs.start_token(shell)
        assert start
        shells.append((real.box.remember(shell), start))
    os.kill(claude[0], signal.SIGKILL)  # a crash, an OOM kill: no cleanup
    assert real.finish(*claude) == -signal.SIGKILL
    wait_for(lambda: all(ppid(s[0]) == real.box.nursery.pid for s in shells), 30, "the tool shells to lose claude")
    assert all(alive(j) for j in (background, foreground, *shells))

    report = real.reap()
    ended = {a["pid"]: a for a in report["actions"]}
    for shell, job in zip(shells, (background, foreground), strict=True):
        a = ended[shell[0]]
        assert a["reason"] == "stray" and a["outcome"] == "ended" and job[0] in a["pids"]
        assert "collateral" in a["detail"]
    assert not any(alive(j) for j in (background, foreground, *shells))


def test_wrapper_launched_mcp_server_of_a_sigkilled_session_is_ended(real: Real, tmp_path: Path) -> None:
    server = write_mcp_server(tmp_path / "mcp")
    pidfile = tmp_path / "mcp.pid"
    # The shape of `npm exec` / `uvx` launchers: a shell that stays as the server's parent.
    command = f"{shlex.join([sys.executable, str(server), str(pidfile), '--linger'])}; exit $?"
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"kit": {"type": "stdio", "command": "sh", "args": ["-c", command]}}}))
    tool_pid = tmp_path / "tool.pid"
    real.api.script("use the server", bash(pid_command(tool_pid, LINGER)), "done")
    claude = real.start("use the server", "--mcp-config", str(config))
    real.job(tool_pid)  # mid-turn: the MCP server is up
    server_pid = int(wait_for_file(pidfile).split()[0])
    wrapper = ppid(server_pid)
    assert wrapper and ppid(wrapper) == claude[0]
    server_job = (real.box.remember(server_pid), procs.start_token(server_pid) or "")
    wrapper_job = (real.box.remember(wrapper), procs.start_token(wrapper) or "")
    assert os.getpgid(wrapper) == os.getpgid(claude[0])  # claude's own process group
    os.kill(claude[0], signal.SIGKILL)
    assert real.finish(*claude) == -signal.SIGKILL
    wait_for(lambda: ppid(wrapper) == real.box.nursery.pid, 30, "the wrapper to lose claude")
    assert alive(server_job) and alive(wrapper_job)

    report = real.reap()
    ended = {a["pid"]: a for a in report["actions"]}
    assert wrapper in ended and server_pid in ended[wrapper]["pids"]
    assert ended[wrapper]["outcome"] == "ended" and "collateral" in ended[wrapper]["detail"]
    assert not alive(server_job) and not alive(wrapper_job)
