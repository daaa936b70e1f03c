"""`claude-guard exec` and the Python helpers built on it (claude_guard.sdk.popen / guarded_command), with stand-in
claudes: every packaging of Claude Code is recognised and exec'd (the registered PID is the CLI itself), a
refusal is one stderr line and exit 75 (never anything on stdout, even for a stream-json caller), and a
command that is not Claude Code is a usage error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from claude_guard import sdk
from conftest import Guard
from standin import records, write_standin

EXEC = [sys.executable, "-m", "claude_guard", "exec"]

# A stand-in for npm's `node .../@anthropic-ai/claude-code/cli.js`: records itself like tests/standin.py does.
NODE_CLI = r"""
const fs = require('fs'); const path = require('path');
const rec = process.env.STANDIN_RECORD;
if (rec) {
  const data = { pid: process.pid, argv: process.argv.slice(2), env: process.env };
  fs.writeFileSync(path.join(rec, `.${process.pid}.tmp`), JSON.stringify(data));
  fs.renameSync(path.join(rec, `.${process.pid}.tmp`), path.join(rec, `${process.pid}.json`));
}
setTimeout(() => process.exit(Number(process.env.STANDIN_EXIT || 0)), 1000 * Number(process.env.STANDIN_SLEEP || 0));
"""


def run_exec(guard: Guard, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*EXEC, *args], env={**guard.env, **(env or {})}, capture_output=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def _bundled(tmp: Path) -> Path:
    # The layout of the Python Agent SDK's wheel: claude_agent_sdk/_bundled/claude
    return write_standin(tmp / "site-packages" / "claude_agent_sdk" / "_bundled", sys.executable)


@pytest.mark.parametrize("form", ["native", "npm-link", "bundled", "bare-name"])
def test_every_packaging_is_recognised_and_execd(guard: Guard, tmp_path: Path, form: str) -> None:
    if form == "native":
        program = str(guard.real)
    elif form == "npm-link":
        program = str(write_standin(tmp_path / "npm" / "bin", sys.executable, name="claude.exe"))
    elif form == "bundled":
        program = str(_bundled(tmp_path))
    else:
        program = "claude"  # looked up on PATH, skipping the shim in front of the real one
    r = run_exec(guard, "--", program, "-p", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    [rec] = records(guard.record)
    assert rec["argv"] == ["-p", "hi"]
    [entry] = guard.registry()["sessions"]  # type: ignore[misc]
    assert entry["pid"] == rec["pid"]  # exec: the registered process is the CLI itself, not a guard in front
    assert entry["kind"] == "print"
    if form == "bare-name":
        assert entry["program"] == str(guard.real)


def test_node_cli_js_is_recognised(guard: Guard, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    cli = tmp_path / "lib" / "node_modules" / "@anthropic-ai" / "claude-code" / "cli.js"
    cli.parent.mkdir(parents=True)
    cli.write_text(NODE_CLI)
    r = run_exec(guard, "--", "node", str(cli), "--resume", "abc", "-p", "hi")
    assert r.returncode == 0, r.stderr
    [rec] = records(guard.record)
    assert rec["argv"] == ["--resume", "abc", "-p", "hi"]
    [entry] = guard.registry()["sessions"]  # type: ignore[misc]
    assert entry["pid"] == rec["pid"] and entry["session_id"] == "abc"
    assert entry["program"] == node and entry["argv"] == ["--resume", "abc", "-p", "hi"]


@pytest.mark.parametrize("command", [["/bin/echo", "hi"], ["sh", "-c", "claude -p hi"], ["python3", "-V"]])
def test_not_claude_is_a_usage_error(guard: Guard, command: list[str]) -> None:
    r = run_exec(guard, "--", *command)
    assert r.returncode == 2
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("claude-guard: exec:") and "is not Claude Code" in line
    assert records(guard.record) == []


def test_no_command_is_a_usage_error(guard: Guard) -> None:
    r = run_exec(guard, "--")
    assert r.returncode == 2 and b"no command given" in r.stderr


def test_refusal_is_one_line_and_75(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    r = run_exec(guard, "--max-sessions", "1", "--", str(guard.real), "-p", "hi")
    assert r.returncode == 75
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("claude-guard: refused: 1 of 1 Claude sessions already running") and str(holder.pid) in line
    assert r.stdout == b""  # a text-mode caller gets nothing on stdout, as from claude
    assert len(records(guard.record)) == 1  # only the holder ever ran


# What both Agent SDKs run: stream-json both ways, and no --print.
SDK_ARGS = ["--output-format", "stream-json", "--verbose", "--input-format", "stream-json"]


def test_refusal_of_a_stream_json_caller_writes_nothing_on_stdout(guard: Guard) -> None:
    # SDK hosts read stdout as claude's JSON stream: the guard never writes there, not even to explain a refusal
    # (the Node adapter turns the stderr line into the SDK's error inside the host).
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    initialize = json.dumps({"type": "control_request", "request_id": "r1", "request": {"subtype": "initialize"}})
    r = run_exec(guard, "--max-sessions", "1", "--", str(guard.real), *SDK_ARGS, input=initialize.encode() + b"\n")
    assert r.returncode == 75
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("claude-guard: refused: 1 of 1")
    assert r.stdout == b""


def test_refusal_of_a_duplicate_resume(guard: Guard) -> None:
    sid = str(uuid.uuid4())
    holder = guard.start("--session-id", sid, env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    r = run_exec(guard, "--", str(guard.real), "--resume", sid, *SDK_ARGS)
    assert r.returncode == 75
    assert f"refused: session {sid} is already open in PID {holder.pid}" in r.stderr.decode()
    assert r.stdout == b""


def test_wait_option_queues_for_a_slot(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "2"})
    guard.wait_recorded(holder.pid)
    r = run_exec(guard, "--max-sessions", "1", "--on-cap", "wait", "--wait-timeout", "60", "--", str(guard.real),
                 "-p", "x")
    assert r.returncode == 0, r.stderr
    assert holder.wait(timeout=30) == 0
    assert "waited=" in (guard.state / "guard.log").read_text()


def test_exit_status_is_claudes(guard: Guard) -> None:
    r = run_exec(guard, "--", str(guard.real), "-p", "x", env={"STANDIN_EXIT": "3"})
    assert r.returncode == 3


def test_bun_style_dropped_empty_argument_is_repaired(guard: Guard) -> None:
    r = run_exec(guard, "--", str(guard.real), "--setting-sources", "--permission-mode", "plan", "-p", "hi")
    assert r.returncode == 0, r.stderr
    assert records(guard.record)[0]["argv"] == ["--setting-sources", "", "--permission-mode", "plan", "-p", "hi"]


# -- claude_guard.sdk.popen / guarded_command -----------------------------------------------------------------


def test_guarded_command_shape() -> None:
    cmd = sdk.guarded_command(["claude", "-p", "hi"], max_sessions=2, wait_timeout="30s", strict=True,
                              count_unguarded=False)
    exec_at = cmd.index("exec")
    assert cmd[exec_at:] == ["exec", "--max-sessions", "2", "--on-cap", "wait", "--wait-timeout", "30s", "--strict",
                             "--", "claude", "-p", "hi"]
    assert os.path.basename(cmd[0]).startswith("claude-guard") or cmd[1:3] == ["-m", "claude_guard"]
    env = sdk.guarded_env({"PATH": "/bin"}, max_sessions=2, strict=True, count_unguarded=False, real_claude="/x")
    # exec options stay on its command line; the rest become variables
    assert env == {"PATH": "/bin", "CLAUDE_GUARD_COUNT_UNGUARDED": "false", "CLAUDE_GUARD_REAL_CLAUDE": "/x"}


@pytest.mark.parametrize("bad", [{"max_session": 2}, {"cap": 1}])
def test_unknown_setting_is_a_type_error_listing_the_valid_ones(bad: dict[str, object]) -> None:
    with pytest.raises(TypeError) as info:
        sdk.guarded_command(["claude"], **bad)
    message = str(info.value)
    assert next(iter(bad)) in message
    assert all(key in message for key in sdk.SETTINGS)


@pytest.mark.parametrize(("key", "value"), [("on_cap", "later"), ("max_sessions", 0), ("wait_timeout", "soon")])
def test_bad_value_is_a_value_error(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        sdk.guarded_command(["claude"], **{key: value})


def test_popen_runs_claude_under_the_guard(guard: Guard) -> None:
    p = sdk.popen([str(guard.real), "--setting-sources", "--model", "m", "-p", "hi"], max_sessions=3,
                  env=guard.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    [rec] = records(guard.record)
    assert rec["pid"] == p.pid  # exec: the Popen's process is the CLI itself once admitted
    assert rec["argv"] == ["--setting-sources", "", "--model", "m", "-p", "hi"]
    assert guard.registry()["sessions"][0]["pid"] == p.pid  # type: ignore[index]


def test_popen_refusal(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    p = sdk.popen([str(guard.real), "-p", "hi"], max_sessions=1, on_cap="refuse", env=guard.env,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 75
    assert out == "" and err.startswith("claude-guard: refused: 1 of 1") and err.count("\n") == 1


def test_bad_setting_of_a_stream_json_caller_is_one_line_and_starts_unguarded(guard: Guard) -> None:
    r = run_exec(guard, "--", str(guard.real), *SDK_ARGS, env={"CLAUDE_GUARD_MAX_SESSIONS": "lots"})
    assert r.returncode == 0
    [line] = r.stderr.decode().splitlines()
    assert "CLAUDE_GUARD_MAX_SESSIONS" in line and "starting claude unguarded" in line and r.stdout == b""
    strict = run_exec(guard, "--", str(guard.real), *SDK_ARGS,
                      env={"CLAUDE_GUARD_MAX_SESSIONS": "lots", "CLAUDE_GUARD_STRICT": "1"})
    assert strict.returncode == 78 and strict.stdout == b""
