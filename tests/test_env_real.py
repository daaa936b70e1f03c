"""What a real session puts in its children's environment, and that the guard's strip list follows it.

The real CLI (offline, tests/realclaude.py) runs a scripted Bash tool call (and an MCP server) that dumps its
environment. Every variable Claude added there must be either stripped by the guard's default `strip_env` or
named below as a known non-marker; configuration given to claude must pass through and never match the strip list.
A new release that adds a marker fails here, naming it. Then a `claude` started from a real session's Bash tool
through the shim gets none of the parent's markers and all of its configuration.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from claude_guard import config, environ
from realclaude import (
    TOOL_ARGS,
    FakeAnthropic,
    InteractiveClaude,
    Leftovers,
    PrintRun,
    bash,
    mcp_server_entry,
    offline_env,
    require_real_claude,
    run_print,
    wait_for_file,
    write_mcp_config,
    write_mcp_server,
)

pytestmark = pytest.mark.realclaude

# Set by Claude for every tool command, but settings rather than markers: they name no session, a nested claude
# sets them again for its own tools, and a user may have set them on purpose (so the guard keeps them).
TOOL_SETTINGS = {"GIT_EDITOR", "COREPACK_ENABLE_AUTO_PIN", "NoDefaultCurrentDirectoryInExePath", "SHELL"}
# Set by the shell that runs a tool command, not by Claude.
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}
# Configuration a user gives claude: it must reach tools and nested sessions unchanged. (Values chosen so that the
# offline session still works: Bedrock off, proxies bypassed for the loopback API.)
CONFIGURATION = {
    "CLAUDE_CODE_USE_BEDROCK": "0",
    "CLAUDE_CODE_USE_VERTEX": "0",
    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat-fake",
    "ANTHROPIC_CUSTOM_HEADERS": "x-guard-test: 1",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4096",
}
CONFIG_NAMES = [*CONFIGURATION, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DISABLE_AUTOUPDATER",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "CLAUDE_CODE_SESSION_ACCESS_TOKEN", "CLAUDE_CONFIG_DIR"]
# Credentials Claude itself leaves out of its Bash tool's environment (2.1.330).
CLAUDE_KEEPS_FROM_TOOLS = {"CLAUDE_CODE_OAUTH_TOKEN"}
DUMP = f"{shlex.quote(sys.executable)} -c 'import json, os; print(json.dumps(dict(os.environ)))'"


def default_strip() -> list[str]:
    return list(config.KEYS["strip_env"].default())


def added_by_claude(given: dict[str, str], seen: dict[str, str]) -> set[str]:
    return {name for name, value in seen.items() if given.get(name) != value}


def unaccounted(added: set[str]) -> list[str]:
    strip = default_strip()
    return sorted(n for n in added - TOOL_SETTINGS - SHELL_OWN if not environ.matches(n, strip))


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic("ok") as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = (tmp_path / "project").resolve()
    folder.mkdir()
    return folder


def _env(tmp_path: Path, api: FakeAnthropic, project: Path) -> dict[str, str]:
    env = offline_env(tmp_path / "home", api.url, trust=[project])
    env.update(CONFIGURATION)
    return env


def test_configuration_is_never_on_the_strip_list() -> None:
    strip = default_strip()
    assert [n for n in CONFIG_NAMES if environ.matches(n, strip)] == []
    assert "ANTHROPIC_*" not in strip and "CLAUDE_CODE_*" not in strip and "CLAUDE_*" not in strip


@pytest.mark.parametrize("mode", ["print", "interactive"])
def test_every_variable_a_bash_tool_gets_from_claude_is_stripped_or_known(
    api: FakeAnthropic, tmp_path: Path, project: Path, mode: str
) -> None:
    claude = require_real_claude()
    env = _env(tmp_path, api, project)
    dump = tmp_path / "env.json"
    api.script("dump the environment", bash(f"{DUMP} > {dump}"), "dumped")
    if mode == "print":
        result = run_print(["-p", "dump the environment", *TOOL_ARGS], env, project)
        assert result.returncode == 0, result.stderr
    else:
        with InteractiveClaude([claude, *TOOL_ARGS], env=env, cwd=project) as session:
            session.wait_ready(timeout=60)
            session.send("dump the environment", timeout=120)
    seen = json.loads(dump.read_text())
    added = added_by_claude(env, seen)
    removed = sorted(set(env) - set(seen))
    print(f"{mode}: Claude added to its Bash tool's environment:", ", ".join(sorted(added)))
    print(f"{mode}: Claude removed from its Bash tool's environment:", ", ".join(removed))
    assert {"CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID"} <= added  # the dump is of a real tool command
    assert unaccounted(added) == [], "markers the default strip_env misses (add them to environ.MARKERS)"
    for name, value in CONFIGURATION.items():
        if name not in CLAUDE_KEEPS_FROM_TOOLS:
            assert seen.get(name) == value, name  # configuration reaches the tool unchanged


def test_every_variable_an_mcp_server_gets_from_claude_is_stripped_or_known(
    api: FakeAnthropic, tmp_path: Path, project: Path
) -> None:
    require_real_claude()
    env = _env(tmp_path, api, project)
    server, pidfile = write_mcp_server(tmp_path / "mcp"), tmp_path / "mcp.pid"
    config_file = write_mcp_config(tmp_path / "mcp.json", {"kit": mcp_server_entry(server, pidfile)})
    release = tmp_path / "release"
    api.script("hold", bash(f"while [ ! -e {release} ]; do sleep 0.1; done"), "ok")
    args = ["-p", "hold", *TOOL_ARGS, "--mcp-config", str(config_file)]
    with PrintRun(args, env, project, tmp_path / "logs") as claude, Leftovers() as leftovers:
        server_proc = leftovers.track(int(wait_for_file(pidfile).split()[0]))
        seen = server_proc.environ()
        release.touch()
        assert claude.wait(120) == 0, claude.stderr
    added = added_by_claude(env, seen)
    print("Claude added to its MCP server's environment:", ", ".join(sorted(added)))
    assert {"CLAUDECODE", "CLAUDE_CODE_SESSION_ID"} <= added
    assert unaccounted(added) == [], "markers the default strip_env misses (add them to environ.MARKERS)"


def test_claude_started_from_a_real_bash_tool_through_the_shim_gets_no_markers(
    api: FakeAnthropic, tmp_path: Path, project: Path
) -> None:
    real = require_real_claude()
    env = _env(tmp_path, api, project)
    shim_dir = tmp_path / "shim"
    env.update(CLAUDE_GUARD_REAL_CLAUDE=real, CLAUDE_GUARD_COUNT_UNGUARDED="false", CLAUDE_GUARD_MAX_SESSIONS="8",
               PATH=f"{shim_dir}{os.pathsep}{env['PATH']}")
    subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(shim_dir)], env=env, check=True,
                   capture_output=True)
    outer_env, nested_pid, release = tmp_path / "outer.json", tmp_path / "nested.pid", tmp_path / "release"
    # The outer session's tool dumps its environment, then runs `claude` (found on PATH: the shim) ...
    nested_args = shlex.join(["-p", "nested", *TOOL_ARGS])
    outer = api.script("outer", bash(f"{DUMP} > {outer_env}; claude {nested_args}"), "outer done")
    # ... whose own tool names its claude (CLAUDE_PID) and holds it while the test reads its environment.
    api.script("nested", bash(f"echo $CLAUDE_PID > {nested_pid}; while [ ! -e {release} ]; do sleep 0.1; done"),
               "nested done")
    with PrintRun(["-p", "outer", *TOOL_ARGS], env, project, tmp_path / "logs", command=[str(shim_dir / "claude")]
                  ) as claude:
        nested = psutil.Process(int(wait_for_file(nested_pid)))
        assert os.path.realpath(nested.exe()) == os.path.realpath(real)  # the real CLI, started through the shim
        assert any(p.pid == claude.pid for p in nested.parents())  # ... from the outer session's tool
        nested_env = nested.environ()
        release.touch()
        assert claude.wait(120) == 0, claude.stderr
    parent = json.loads(outer_env.read_text())
    markers = sorted(added_by_claude(env, parent) - TOOL_SETTINGS - SHELL_OWN)
    assert "CLAUDE_CODE_MESSAGING_TOKEN" in markers and "CLAUDE_GUARD_COOKIE" in markers
    # None of the parent's markers; the guard's own two are set again by the nested launch, with its own values.
    own = (environ.COOKIE, environ.LAUNCHER)
    assert [m for m in markers if m in nested_env and m not in own] == []
    assert nested_env[environ.COOKIE] != parent[environ.COOKIE]  # the nested session's own cookie, not the parent's
    outer_mark, nested_mark = parent[environ.LAUNCHER].split(":"), nested_env[environ.LAUNCHER].split(":")
    assert nested_mark[0] != outer_mark[0] and int(nested_mark[2]) == int(outer_mark[2]) + 1  # one level deeper
    values = "\n".join(nested_env.values())
    for secret in ("CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_MESSAGING_TOKEN"):
        assert parent[secret] not in values, secret  # nor their values under another name
    for name in CONFIG_NAMES:
        # All configuration the tool had (Claude itself keeps some credentials from its tools), unchanged.
        assert nested_env.get(name) == parent.get(name), name
    assert nested_env["ANTHROPIC_BASE_URL"] == api.url and nested_env["HTTPS_PROXY"] == CONFIGURATION["HTTPS_PROXY"]
    assert "nested done" in outer.result(0).text
