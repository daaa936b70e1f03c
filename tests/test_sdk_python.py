"""claude_guard.sdk with the real Python Agent SDK (PyPI claude-agent-sdk) and its bundled CLI, offline against
tests/realclaude.FakeAnthropic: query() and ClaudeSDKClient go through the guard (admitted, capped, registered,
markers stripped), and what the guard refuses reaches the host as an SDK error carrying the guard's line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import admission, config, procs, sdk
from conftest import wait_for
from realclaude import FakeAnthropic, offline_env, run_print, user_blocks
from standin import env_of

REPLY = "Hi from the fake API."
SKIP_SDK = "Python claude-agent-sdk not installed: run scripts/install-test-deps"


# -- import cost and options (no CLI run) ---------------------------------------------------------------------


def test_import_loads_neither_the_sdk_nor_the_sweep() -> None:
    code = "import sys; import claude_guard.sdk; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ours = {m for m in out if m.startswith("claude_guard")}
    assert ours == {"claude_guard", "claude_guard.sdk"}
    for heavy in ("claude_agent_sdk", "psutil", "filelock", "platformdirs", "colorama", "anyio", "argparse"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in out), heavy


def test_settings_are_launch_keys_of_the_config() -> None:
    assert set(sdk.SETTINGS) <= set(config.KEYS)
    for key in ("idle_after", "grace", "protect"):  # the sweep's keys mean nothing to a launch
        assert key not in sdk.SETTINGS


def test_shim_entry_from_every_interpreter_of_the_venv() -> None:
    bindir = Path(sys.executable).parent
    names = [n for n in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}")
             if (bindir / n).exists()]
    code = "from claude_guard.sdk import shim_entry; print(shim_entry())"
    seen = {subprocess.run([str(bindir / n), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
            for n in names}
    assert len(seen) == 1
    [entry] = seen
    assert os.access(entry, os.X_OK) and Path(entry).name.startswith("claude-guard-shim")


def test_shim_entry_without_a_usable_sys_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    # An embedded interpreter (uwsgi, a GUI app) may report something else as sys.executable.
    expected = sdk.shim_entry()
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/host-app")
    assert os.path.samefile(sdk.shim_entry(), expected)


def test_docs_cover_every_setting_and_quote_the_real_lines() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sdk.md").read_text()
    module = Path(sdk.node_module()).read_text()
    for key in sdk.SETTINGS:
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
        assert f"| `{key}` | `{camel}` |" in docs and f"`CLAUDE_GUARD_{key.upper()}`" in docs, key
        assert f"{camel}:" in module, camel

    class Census:  # the two PIDs the quoted line names
        def pids(self, unguarded: bool) -> set[int]:
            return {4242, 4243}

    for waited in (None, 55.0):
        line = admission._refuse_cap(Census(), 2, waited, False).message  # type: ignore[arg-type]
        assert f"claude-guard: {line}\n" in docs
    line = admission._refuse_duplicate("5b0e595e-d7fd-4f34-932c-fdd816fa7f8b", [4242]).message
    assert f"claude-guard: {line}\n" in docs


@pytest.fixture
def agent_sdk() -> Any:
    return pytest.importorskip("claude_agent_sdk", reason=SKIP_SDK)


def bundled_cli(agent_sdk: Any) -> str:
    path = Path(agent_sdk.__file__).parent / "_bundled" / "claude"
    if not path.is_file():
        pytest.skip("this claude-agent-sdk wheel bundles no CLI for this platform")
    return str(path)


def test_guarded_options_defaults(agent_sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CODE_STREAM_CLOSE_TIMEOUT", raising=False)
    host = agent_sdk.ClaudeAgentOptions(cwd="/tmp", env={"KEEP": "1"}, max_turns=3)
    opts = sdk.guarded_options(host, max_sessions=2)
    assert opts.cli_path == sdk.shim_entry()
    assert opts.env == {"KEEP": "1", "CLAUDE_GUARD_REAL_CLAUDE": bundled_cli(agent_sdk),
                        "CLAUDE_GUARD_MAX_SESSIONS": "2", "CLAUDE_GUARD_ON_CAP": "wait",
                        "CLAUDE_GUARD_WAIT_TIMEOUT": "55.0"}
    assert opts.max_turns == 3 and str(opts.cwd) == "/tmp"
    assert host.cli_path is None and host.env == {"KEEP": "1"}  # the host's object is left alone
    assert sdk.guarded_options(opts).env == opts.env  # guarding twice changes nothing
    refuse = sdk.guarded_options(on_cap="refuse").env
    assert refuse["CLAUDE_GUARD_ON_CAP"] == "refuse" and "CLAUDE_GUARD_WAIT_TIMEOUT" not in refuse


def test_guarded_options_without_the_sdk_says_how_to_install_it() -> None:
    """A host without claude_agent_sdk gets the guard's one line (what is missing, the pip command), not a bare
    ModuleNotFoundError. `sys.modules[name] = None` is how Python itself marks a module as not importable."""
    script = ("import sys; sys.modules['claude_agent_sdk'] = None\n"
              "from claude_guard import sdk\nfrom claude_guard.errors import GuardError\n"
              "try:\n    sdk.guarded_options()\nexcept GuardError as e:\n    print(e.exit_code, e.message)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    code, line = out.stdout.split(" ", 1)
    assert int(code) == 127 and "Claude Agent SDK" in line and "pip install claude-agent-sdk" in line
    assert line.count("\n") == 1


def test_guarded_options_real_cli_choice(agent_sdk: Any, tmp_path: Path) -> None:
    own = tmp_path / "claude"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    host = agent_sdk.ClaudeAgentOptions(cli_path=own)
    assert sdk.guarded_options(host).env["CLAUDE_GUARD_REAL_CLAUDE"] == str(own)  # the host's choice is kept
    assert sdk.guarded_options(host, real_claude="/opt/claude").env["CLAUDE_GUARD_REAL_CLAUDE"] == "/opt/claude"


def test_guarded_options_rejects_what_the_guard_would(agent_sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match=r"max_session\b.*valid: max_sessions, on_cap"):
        sdk.guarded_options(max_session=2)
    with pytest.raises(ValueError, match="on_cap"):
        sdk.guarded_options(on_cap="queue")
    monkeypatch.delenv("CLAUDE_CODE_STREAM_CLOSE_TIMEOUT", raising=False)
    # The SDK would time out its initialize request first, with a message that does not say why.
    with pytest.raises(ValueError, match="CLAUDE_CODE_STREAM_CLOSE_TIMEOUT"):
        sdk.guarded_options(wait_timeout="5m")
    monkeypatch.setenv("CLAUDE_CODE_STREAM_CLOSE_TIMEOUT", "600000")
    assert sdk.guarded_options(wait_timeout="5m").env["CLAUDE_GUARD_WAIT_TIMEOUT"] == "5m"


# -- the real SDK and CLI --------------------------------------------------------------------------------------


class Host:
    """A Python host process (this test process) with a private HOME and the fake API. The SDK hands the host's
    whole environment to the CLI, so the host's environment is replaced for the test's duration."""

    def __init__(self, tmp: Path, api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, agent_sdk: Any) -> None:
        self.sdk = agent_sdk
        self.bundled = bundled_cli(agent_sdk)
        self.real = os.path.realpath(self.bundled)
        self.api = api
        self.home = tmp / "home"
        self.work = (tmp / "work").resolve()
        self.work.mkdir()
        self.marker = uuid.uuid4().hex  # finds this test's CLI processes among any others of this user
        env = offline_env(self.home, api.url, trust=[self.work])
        env.update(CLAUDE_GUARD_COUNT_UNGUARDED="false", CG_TEST_MARKER=self.marker)
        for name in list(os.environ):
            if name not in env and not name.startswith("PYTEST_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        self.env = env
        self.state = self.home / ".local" / "state" / "claude-guard"

    def options(self, **settings: Any) -> Any:
        fields = {k: settings.pop(k) for k in list(settings) if k not in sdk.SETTINGS}
        base = self.sdk.ClaudeAgentOptions(cwd=str(self.work), max_turns=1, **fields)
        return sdk.guarded_options(base, **settings)

    def registry(self) -> dict[str, Any]:
        path = self.state / "registry.json"
        return json.loads(path.read_text()) if path.exists() else {"version": 1, "sessions": [], "waiters": []}

    def live_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.registry()["sessions"] if procs.alive(e["pid"], e["start"])]

    def cli_pids(self) -> list[int]:
        """Live (not zombie) processes of the real CLI that carry this test's marker."""
        found = []
        needle = f"CG_TEST_MARKER={self.marker}".encode()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.path.realpath(f"/proc/{name}/exe") != self.real:
                    continue
                with open(f"/proc/{name}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
                proc = procs.read(int(name))
            except OSError:
                continue
            if needle in environ and proc is not None and proc.state not in ("Z", "X"):
                found.append(int(name))
        return found


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(REPLY) as fake:
        yield fake


@pytest.fixture
def host(tmp_path: Path, api: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, agent_sdk: Any) -> Host:
    return Host(tmp_path, api, monkeypatch, agent_sdk)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _no_live_entry(host: Host) -> None:
    wait_for(lambda: host.cli_pids() == [], timeout=60)
    census = admission.Census(host.registry(), os.getpid())
    assert census.live == []


@pytest.mark.realclaude
def test_query_completes_a_turn_registered_while_it_runs(host: Host) -> None:
    seen: list[dict[str, Any]] = []

    async def main() -> list[Any]:
        messages = []
        async for message in host.sdk.query(prompt="say hi", options=host.options()):
            if not seen:
                seen.extend(host.live_entries())  # the CLI is running: its init message just arrived
            messages.append(message)
        return messages

    messages = run(main())
    [result] = [m for m in messages if isinstance(m, host.sdk.ResultMessage)]
    assert result.subtype == "success" and result.result == REPLY
    [entry] = seen
    assert entry["kind"] == "sdk" and entry["program"] == host.bundled
    assert "--input-format" in entry["argv"]
    wait_for(lambda: not procs.alive(entry["pid"], entry["start"]), timeout=60)
    _no_live_entry(host)
    assert host.api.turns_with("say hi")


@pytest.mark.realclaude
def test_client_session_is_registered_between_turns_and_gone_after(host: Host) -> None:
    async def main() -> tuple[dict[str, Any], list[str]]:
        replies = []
        async with host.sdk.ClaudeSDKClient(options=host.options()) as client:
            for prompt in ("first", "second"):
                await client.query(prompt)
                async for message in client.receive_response():
                    if isinstance(message, host.sdk.ResultMessage):
                        replies.append(message.result)
                [entry] = host.live_entries()
                assert host.cli_pids() == [entry["pid"]]  # exec: the registered process is the CLI itself
        return entry, replies

    entry, replies = run(main())
    assert replies == [REPLY, REPLY]
    assert entry["kind"] == "sdk"
    wait_for(lambda: not procs.alive(entry["pid"], entry["start"]), timeout=60)
    _no_live_entry(host)


class Sampler(threading.Thread):
    """Counts the test's live CLI processes as often as it can, keeping the largest count."""

    def __init__(self, host: Host) -> None:
        super().__init__(daemon=True)
        self.host = host
        self.most = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, len(self.host.cli_pids()))
            self.samples += 1
            time.sleep(0.005)


@pytest.mark.realclaude
def test_five_concurrent_queries_under_a_cap_of_two_wait_and_all_complete(host: Host) -> None:
    opts = host.options(max_sessions=2, on_cap="wait", wait_timeout=50)

    async def one(i: int) -> Any:
        result = None
        async for message in host.sdk.query(prompt=f"concurrent {i}", options=opts):  # to the end: the SDK
            if isinstance(message, host.sdk.ResultMessage):  # reaps its CLI when the iteration finishes
                result = message
        return result

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(one(i) for i in range(5))))

    sampler = Sampler(host)
    sampler.start()
    try:
        results = run(main())
    finally:
        sampler.done.set()
        sampler.join()
    assert [r.subtype for r in results] == ["success"] * 5
    assert all(r.result == REPLY for r in results)
    assert sampler.samples > 0 and sampler.most <= 2
    log = (host.state / "guard.log").read_text()
    assert log.count("admitted pid=") == 5 and "refused" not in log
    assert host.registry()["waiters"] == []
    _no_live_entry(host)


@pytest.mark.realclaude
def test_refused_at_the_cap_raises_an_sdk_error_with_the_guards_line(host: Host) -> None:
    stderr: list[str] = []
    opts = host.options(max_sessions=2, on_cap="refuse")

    async def refused_query(i: int) -> BaseException | None:
        try:
            async for _ in host.sdk.query(prompt=f"over the cap {i}", options=opts):
                pass
        except Exception as e:
            return e
        return None

    async def main() -> tuple[list[BaseException | None], BaseException | None, list[int]]:
        async with host.sdk.ClaudeSDKClient(options=opts) as a, host.sdk.ClaudeSDKClient(options=opts) as b:
            assert a is not b
            holders = sorted(e["pid"] for e in host.live_entries())
            errors = list(await asyncio.gather(*(refused_query(i) for i in range(3))))
            client_error = None
            try:
                watched = host.options(max_sessions=2, on_cap="refuse", stderr=stderr.append)
                async with host.sdk.ClaudeSDKClient(options=watched):
                    pass
            except Exception as e:
                client_error = e
        return errors, client_error, holders

    errors, client_error, holders = run(main())
    assert len(holders) == 2
    line = (f"claude-guard: refused: 2 of 2 Claude sessions already running (PIDs {holders[0]}, {holders[1]}); "
            "see `claude-guard ps`")
    for error in [*errors, client_error]:
        # The guard writes nothing on stdout (the SDK reads it as claude's stream), so the SDK reports the exit
        # status; the guard's reason is the one line on the host's stderr, or in its `stderr` callback.
        assert isinstance(error, host.sdk.ProcessError), repr(error)
        assert error.exit_code == 75, repr(error)
    assert len(stderr) == 1 and stderr[0].startswith(line)  # one line on stderr
    assert host.cli_pids() == []


@pytest.mark.realclaude
def test_duplicate_resume_of_an_open_session_is_refused_through_the_sdk(host: Host) -> None:
    stderr: list[str] = []

    async def main() -> tuple[str, int, BaseException | None, Any]:
        async with host.sdk.ClaudeSDKClient(options=host.options()) as client:
            await client.query("remember this")
            sid = ""
            async for message in client.receive_response():
                if isinstance(message, host.sdk.ResultMessage):
                    sid = message.session_id
            [holder] = host.live_entries()
            error = None
            try:
                async for _ in host.sdk.query(prompt="again", options=host.options(resume=sid, stderr=stderr.append)):
                    pass
            except Exception as e:
                error = e
            forked = None  # a fork is a new session: allowed while the original is open
            async for message in host.sdk.query(prompt="fork", options=host.options(resume=sid, fork_session=True)):
                if isinstance(message, host.sdk.ResultMessage):
                    forked = message
        return sid, holder["pid"], error, forked

    sid, pid, error, forked = run(main())
    assert isinstance(error, host.sdk.ProcessError) and error.exit_code == 75
    [line] = stderr
    assert line.startswith(f"claude-guard: refused: session {sid} is already open in PID {pid}")
    assert forked is not None and forked.subtype == "success" and forked.session_id != sid

    async def resume_after() -> Any:  # the holder is gone: the same resume now goes through
        result = None
        async for message in host.sdk.query(prompt="back again", options=host.options(resume=sid)):
            if isinstance(message, host.sdk.ResultMessage):
                result = message
        return result

    wait_for(lambda: host.cli_pids() == [], timeout=60)
    resumed = run(resume_after())
    assert resumed.subtype == "success" and resumed.session_id == sid


MARKERS = {
    "CLAUDECODE": "1",
    "CLAUDECODE_EXTRA": "1",
    "CLAUDE_CODE_SESSION_ID": "5b0e595e-d7fd-4f34-932c-fdd816fa7f8b",
    "CLAUDE_CODE_ENTRYPOINT": "cli",
    "CLAUDE_CODE_CHILD_SESSION": "1",
    "CLAUDE_CODE_SESSION_ATTENDED": "1",
    "CLAUDE_CODE_MESSAGING_SOCKET": "/tmp/cc-socks/1.sock",
    "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS": "5b0e595e-d7fd-4f34-932c-fdd816fa7f8b",
    "CLAUDE_PROJECT_DIR": "/somewhere",
    "CLAUDE_PID": "1",
    "AI_AGENT": "claude-code",
}


@pytest.mark.realclaude
def test_nesting_markers_of_the_host_do_not_reach_the_cli(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    # A host started from inside a Claude Code session (a Bash tool, a hook) carries these.
    for name, value in MARKERS.items():
        monkeypatch.setenv(name, value)
    # The SDK itself drops CLAUDECODE from the host's environment, but passes options.env as given.
    opts = host.options(env={"CLAUDECODE": "1", "CLAUDECODE_VIA_OPTIONS": "1"})

    async def main() -> tuple[dict[str, str], str | None]:
        async with host.sdk.ClaudeSDKClient(options=opts) as client:
            [entry] = host.live_entries()
            environ = env_of(entry["pid"])  # the real CLI's own environment, read while it runs
            await client.query("hi")
            reply = None
            async for message in client.receive_response():
                if isinstance(message, host.sdk.ResultMessage):
                    reply = message.result
            return environ, reply

    environ, reply = run(main())
    assert reply == REPLY
    leaked = sorted(n for n in environ if n in MARKERS or n.startswith("CLAUDECODE"))
    assert leaked == []
    assert environ["ANTHROPIC_BASE_URL"] == host.api.url and environ["CG_TEST_MARKER"] == host.marker
    assert len(environ["CLAUDE_GUARD_COOKIE"]) == 32
    # CLAUDE_CODE_CHILD_SESSION=1 would have turned transcript saving off; it was on.
    assert list((host.home / ".claude" / "projects").glob("*/*.jsonl"))


@pytest.mark.realclaude
def test_bun_style_dropped_empty_argument_is_repaired_through_popen(host: Host) -> None:
    args = ["--setting-sources", "--permission-mode", "plan", "-p", "hi"]
    direct = run_print(args, host.env, host.work, command=[host.bundled])
    assert direct.returncode != 0 and "Invalid setting source" in direct.stdout + direct.stderr
    p = sdk.popen([host.bundled, *args], cwd=host.work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert REPLY in out and "Invalid setting source" not in err
    assert "restored the empty value of --setting-sources" in (host.state / "guard.log").read_text()


# -- die_with_parent: a host that dies takes its CLI along (issue 16.3) ----------------------------------------

HOST_SCRIPT = """
import asyncio, sys
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from claude_guard.sdk import guarded_options

async def main():
    options = guarded_options(ClaudeAgentOptions(cwd=sys.argv[1], max_turns=1), die_with_parent=sys.argv[2] == "1")
    async with ClaudeSDKClient(options=options) as client:
        await client.query("slow-turn")
        print("asked", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def _end(pid: int, start: str | None) -> None:
    """SIGKILL a CLI this test started, if it is still that process."""
    if start and procs.alive(pid, start):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.realclaude
@pytest.mark.parametrize("die", [True, False], ids=["die_with_parent", "without"])
def test_host_killed_mid_turn_takes_its_cli_along(host: Host, tmp_path: Path, die: bool) -> None:
    # Idle, the CLI ends by itself at stdin EOF; mid-turn (here: waiting for the API) it outlives a SIGKILLed host
    # until a sweep, unless the kernel was asked to end it with its parent.
    hold = threading.Event()

    def reply(body: Any) -> str:
        if "slow-turn" in user_blocks(body):
            hold.wait(60)
        return REPLY

    host.api.reply = reply
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(host.work), "1" if die else "0"],
                            stdout=subprocess.PIPE, text=True)
    cli, start = 0, None
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "asked"
        wait_for(lambda: host.api.turns_with("slow-turn"), timeout=60)  # the CLI is mid-turn
        [cli] = host.cli_pids()
        start = procs.start_token(cli)
        assert start
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        if die:
            wait_for(lambda: not procs.alive(cli, start), timeout=30)
            print(f"CLI gone {time.monotonic() - killed:.2f}s after its host")  # measured, not asserted
        else:
            time.sleep(3)
            assert procs.alive(cli, start)  # the leak die_with_parent stops
    finally:
        hold.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _end(cli, start)


@pytest.mark.realclaude
def test_cli_started_from_a_thread_that_ends_keeps_its_conversation(host: Host) -> None:
    # The kernel watches the parent *thread*: a CLI spawned from a thread that then ends (anyio on trio spawns from
    # a worker thread trio retires) must not be ended with it. The guard leaves die_with_parent off there.
    env = {**os.environ, "CLAUDE_GUARD_REAL_CLAUDE": host.bundled}
    started: list[subprocess.Popen[bytes]] = []
    execed = threading.Event()
    command = [sdk.shim_entry(), "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]

    def spawn() -> None:
        started.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=host.work))
        execed.wait(60)  # like trio's worker: the thread outlives the spawn, then ends while the CLI runs

    spawner = threading.Thread(target=spawn)
    spawner.start()
    wait_for(lambda: started and host.cli_pids() == [started[0].pid], timeout=60)  # the guard has exec'd the CLI
    execed.set()
    spawner.join()
    [cli] = started
    try:
        assert cli.stdin is not None and cli.stdout is not None
        time.sleep(1)  # let a wrongly armed PDEATHSIG arrive before the turn
        line = {"type": "user", "message": {"role": "user", "content": "after the thread"},
                "parent_tool_use_id": None, "session_id": "default"}
        cli.stdin.write(json.dumps(line).encode() + b"\n")
        cli.stdin.flush()
        result = None
        for raw in cli.stdout:
            message = json.loads(raw)
            if message.get("type") == "result":
                result = message
                break
        assert result is not None and result["result"] == REPLY
        log = (host.state / "guard.log").read_text()
        assert "die_with_parent not in force: started from a thread other than its parent's main thread" in log
    finally:
        if cli.stdin is not None:
            cli.stdin.close()
        try:
            cli.wait(30)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli.wait()
