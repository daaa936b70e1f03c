"""guard-spawn.mjs with the real Node Agent SDK (npm @anthropic-ai/claude-agent-sdk) and its CLI, offline
against tests/realclaude.FakeAnthropic: a turn completes through `claude-guard exec`, the cap waits or refuses
(the refusal is the SDK's error, carrying the guard's line), the `pathToClaudeCodeExecutable` recipe works,
and the module's own contract (options checked, abort -> SIGTERM) holds without the SDK."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs, sdk
from conftest import wait_for
from realclaude import REPO_ROOT, FakeAnthropic, find_real_claude, offline_env
from standin import records, write_standin

REPLY = "Hi from the fake API."
MODULE = sdk.node_module()
DRIVER = Path(__file__).parent / "node" / "sdk_driver.mjs"
NPM = Path(os.environ.get("CLAUDE_GUARD_TEST_CACHE") or REPO_ROOT / ".cache") / "npm" / "node_modules"
SDK_MJS = NPM / "@anthropic-ai" / "claude-agent-sdk" / "sdk.mjs"
# The native CLI the Node SDK runs by default (an optional dependency, per platform).
SDK_CLI = NPM / "@anthropic-ai" / "claude-agent-sdk-linux-x64" / "claude"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    return path


class NodeHost:
    """A Node host: private HOME, the fake API, claude-guard on PATH, and the real Node SDK."""

    def __init__(self, tmp: Path, api: FakeAnthropic) -> None:
        self.node = node()
        if not SDK_MJS.is_file():
            pytest.skip("@anthropic-ai/claude-agent-sdk not installed: run scripts/install-test-deps")
        # The SDK's own CLI when this platform's package is there; else the pinned Claude Code CLI, given to it.
        self.cli = str(SDK_CLI) if SDK_CLI.is_file() else find_real_claude()
        if self.cli is None:
            pytest.skip("no Claude Code CLI for the Node SDK: run scripts/install-test-deps")
        self.api = api
        self.home = tmp / "home"
        self.work = (tmp / "work").resolve()
        self.work.mkdir()
        self.env = offline_env(self.home, api.url, trust=[self.work])
        scripts = os.path.dirname(sdk.shim_entry())  # where claude-guard lives too
        self.env.update(CLAUDE_GUARD_COUNT_UNGUARDED="false", PATH=f"{scripts}{os.pathsep}{self.env['PATH']}")
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.procs: list[subprocess.Popen[bytes]] = []

    def query(self, prompts: list[str], guard: dict[str, Any] | None = None, *, mode: str = "spawn",
              env: dict[str, str] | None = None, stderr: bool = False, executable: str | None = None
              ) -> list[dict[str, Any]]:
        """Run one query() per prompt, all at once, in a node process; one result dict per prompt."""
        config = {"sdk": str(SDK_MJS), "module": MODULE, "mode": mode, "guard": guard, "prompts": prompts,
                  "cwd": str(self.work), "env": {**self.env, **(env or {})}, "stderr": stderr,
                  "executable": executable or (None if self.cli == str(SDK_CLI) else self.cli)}
        r = subprocess.run([self.node, str(DRIVER)], env={**self.env, "DRIVER_CONFIG": json.dumps(config)},
                           capture_output=True, text=True, timeout=300, cwd=self.work, start_new_session=True)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines()]

    def registry(self) -> dict[str, Any]:
        path = self.state / "registry.json"
        return json.loads(path.read_text()) if path.exists() else {"sessions": [], "waiters": []}

    def hold(self, tmp: Path) -> int:
        """A registered session that stays (a stand-in claude admitted through `claude-guard exec`); its PID."""
        standin = write_standin(tmp / "standin", sys.executable)
        record = tmp / "record"
        record.mkdir(exist_ok=True)
        p = subprocess.Popen([sys.executable, "-m", "claude_guard", "exec", "--", str(standin), "-p", "hold"],
                             env={**self.env, "STANDIN_SLEEP": "120", "STANDIN_RECORD": str(record)},
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        wait_for(lambda: bool(records(record)), timeout=60)
        return p.pid

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(REPLY) as fake:
        yield fake


@pytest.fixture
def host(tmp_path: Path, api: FakeAnthropic) -> Iterator[NodeHost]:
    h = NodeHost(tmp_path, api)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.mark.realclaude
def test_spawn_module_completes_a_turn_through_the_guard(host: NodeHost) -> None:
    [out] = host.query(["say hi from node"], guard=None)  # the ready-made export: defaults, claude-guard on PATH
    assert out["ok"] and out["result"] == REPLY, out
    assert host.api.turns_with("say hi from node")
    [entry] = host.registry()["sessions"]
    assert entry["kind"] == "sdk" and entry["program"] == host.cli
    assert "--input-format" in entry["argv"]
    wait_for(lambda: not procs.alive(entry["pid"], entry["start"]), timeout=60)
    assert "admitted pid=" in (host.state / "guard.log").read_text()


@pytest.mark.realclaude
def test_cap_waits_and_every_query_completes(host: NodeHost) -> None:
    results = host.query([f"queued {i}" for i in range(3)], guard={"maxSessions": 1})  # onCap defaults to wait
    assert [r["ok"] for r in results] == [True] * 3, results
    log = (host.state / "guard.log").read_text()
    assert log.count("admitted pid=") == 3 and "refused" not in log


@pytest.mark.realclaude
def test_refusal_is_an_sdk_error_with_the_guards_line(host: NodeHost, tmp_path: Path) -> None:
    holder = host.hold(tmp_path)
    [out] = host.query(["over the cap"], guard={"maxSessions": 1, "onCap": "refuse"}, stderr=True)
    line = f"claude-guard: refused: 1 of 1 Claude sessions already running (PIDs {holder}); see `claude-guard ps`"
    assert not out["ok"]
    assert out["error"].startswith("Claude Code returned an error result: " + line), out
    assert out["stderr"].startswith(line) and out["stderr"].count("\n") == 1  # the one line, through `stderr`
    assert not host.api.turns_with("over the cap")


@pytest.mark.realclaude
def test_path_to_executable_recipe(host: NodeHost, tmp_path: Path) -> None:
    recipe = {"CLAUDE_GUARD_REAL_CLAUDE": host.cli, "CLAUDE_GUARD_MAX_SESSIONS": "1"}
    [out] = host.query(["via the entry point"], mode="path", executable=sdk.shim_entry(), env=recipe)
    assert out["ok"] and out["result"] == REPLY, out
    [entry] = host.registry()["sessions"]
    assert entry["kind"] == "sdk" and entry["program"] == host.cli
    holder = host.hold(tmp_path)
    [out] = host.query(["refused via the entry point"], mode="path", executable=sdk.shim_entry(), env=recipe)
    assert not out["ok"]
    # The SDK's own spawn reads the CLI's stderr and quotes it; the guard wrote nothing on stdout.
    assert out["error"].startswith(f"Claude Code process exited with code 75. stderr: claude-guard: refused: 1 of 1 "
                                   f"Claude sessions already running (PIDs {holder})"), out


@pytest.mark.realclaude
def test_claude_guard_missing_is_a_clear_error(host: NodeHost) -> None:
    [out] = host.query(["no guard"], guard={}, env={"PATH": "/usr/bin:/bin"})
    assert not out["ok"]
    assert "claude-guard program was not found on PATH" in out["error"] and "CLAUDE_GUARD_BIN" in out["error"]
    # claude-guard is not on PyPI: the hint is how to install it from its repository.
    assert "pipx install /path/to/claude-guard" in out["error"] and "pipx install claude-guard" not in out["error"]


# -- the module without the SDK --------------------------------------------------------------------------------


def run_module(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = f"import * as guard from {json.dumps(Path(MODULE).as_uri())};\n{code}"
    return subprocess.run([node(), "--input-type=module", "-e", script], env=env, capture_output=True, text=True,
                          timeout=120)


def test_unknown_option_is_a_type_error_listing_the_valid_ones() -> None:
    r = run_module("try { guard.guardedSpawn({ maxSession: 2 }); } catch (e) { console.log(e.name, e.message); }",
                   dict(os.environ))
    assert r.stdout.startswith("TypeError claude-guard: unknown option(s) maxSession; valid: maxSessions, onCap"), r
    for option in ("waitTimeout", "onDuplicate", "realClaude", "claudeGuard", "stderr"):
        assert option in r.stdout


def test_settings_become_exec_options_and_variables(tmp_path: Path) -> None:
    fake = tmp_path / "claude-guard"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    code = ("const c = guard.guardedCommand('/x/claude', ['-p', 'hi'], { maxSessions: 2, waitTimeout: '30s', "
            "countUnguarded: false, stateDir: '/s' }, { PATH: process.env.P });\nconsole.log(JSON.stringify(c));")
    r = run_module(code, {"P": str(tmp_path), "PATH": os.environ["PATH"]})
    assert json.loads(r.stdout) == {
        "program": str(fake),
        "args": ["exec", "--max-sessions", "2", "--on-cap", "wait", "--wait-timeout", "30s", "--", "/x/claude", "-p",
                 "hi"],
        "env": {"CLAUDE_GUARD_COUNT_UNGUARDED": "false", "CLAUDE_GUARD_STATE_DIR": "/s"},
    }, r.stderr


def test_abort_signal_ends_the_process_with_sigterm(tmp_path: Path) -> None:
    # Through the real claude-guard exec, a stand-in claude that records the signal it gets.
    standin = write_standin(tmp_path / "real", sys.executable)
    record = tmp_path / "record"
    record.mkdir()
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
           "PATH": f"{os.path.dirname(sdk.shim_entry())}{os.pathsep}/usr/bin:/bin",
           "CLAUDE_GUARD_COUNT_UNGUARDED": "false", "LANG": "C.UTF-8"}
    child_env = {**env, "STANDIN_RECORD": str(record), "STANDIN_SLEEP": "60", "STANDIN_TRAP": "record"}
    code = f"""
const ac = new AbortController();
const child = guard.guardedSpawn({{}})({{ command: {json.dumps(str(standin))}, args: ['-p', 'hi'],
  cwd: process.cwd(), env: {json.dumps(child_env)}, signal: ac.signal }});
const fs = await import('node:fs');
const dir = {json.dumps(str(record))};
const timer = setInterval(() => {{
  if (fs.readdirSync(dir).some((n) => n.endsWith('.json'))) {{ clearInterval(timer); ac.abort(); }}
}}, 20);
child.on('exit', (code, sig) => console.log(JSON.stringify({{ pid: child.pid, code, sig }})));
"""
    r = run_module(code, env)
    result = json.loads(r.stdout)
    assert result["code"] == 128 + signal.SIGTERM, r.stderr
    [rec] = records(record)
    assert rec["pid"] == result["pid"] and rec["signal"] == signal.SIGTERM  # the CLI itself got it (exec)
