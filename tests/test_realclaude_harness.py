"""The harness in tests/realclaude.py works: the fake API on its own, then the real CLI driven through it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from realclaude import (
    FAKE_API_KEY,
    TOOL_ARGS,
    FakeAnthropic,
    InteractiveClaude,
    Leftovers,
    PrintRun,
    ToolResult,
    bash,
    escape_project_dir,
    is_alive,
    mcp_server_entry,
    offline_env,
    pid_command,
    proc_start,
    require_real_claude,
    run_print,
    transcript_entries,
    user_blocks,
    wait_for_file,
    wait_until,
    write_mcp_config,
    write_mcp_server,
)

REPLY = "Hi from the fake API."
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(REPLY) as fake:
        yield fake


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # Resolved: the CLI names the transcript folder after the real path of its working directory.
    folder = (tmp_path / "project").resolve()
    folder.mkdir()
    return folder


def _post(url: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read()


# ------------------------------------------------------------------------------------------------------------
# The fake API alone (no CLI needed)


def test_fake_api_streams_a_complete_turn(api: FakeAnthropic) -> None:
    status, content_type, payload = _post(
        api.url + "/v1/messages?beta=true",
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 200
    assert content_type.startswith("text/event-stream")
    events = [line[len("event: ") :] for line in payload.decode().splitlines() if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    lines = payload.decode().splitlines()
    data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data:")]
    assert data[2]["delta"] == {"type": "text_delta", "text": REPLY}
    assert data[4]["delta"]["stop_reason"] == "end_turn"


def test_fake_api_answers_plain_requests_and_records_them(api: FakeAnthropic) -> None:
    api.reply = lambda body: "echo: " + user_blocks(body)[-1]
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    status, _, payload = _post(api.url + "/v1/messages", request)
    assert status == 200
    message = json.loads(payload)
    assert message["content"] == [{"type": "text", "text": "echo: x"}]
    assert message["stop_reason"] == "end_turn"

    status, _, payload = _post(api.url + "/v1/messages/count_tokens?beta=true", request)
    assert status == 200
    assert json.loads(payload)["input_tokens"] > 0

    status, _, payload = _post(api.url + "/v1/elsewhere", {})
    assert status == 404
    assert json.loads(payload)["type"] == "error"

    assert [r.path for r in api.requests] == [
        "/v1/messages",
        "/v1/messages/count_tokens?beta=true",
        "/v1/elsewhere",
    ]
    assert [r.route for r in api.message_requests()] == ["/v1/messages"]
    assert api.turns_with("x") == api.message_requests()
    assert api.requests[0].headers["content-type"] == "application/json"


def test_offline_env_isolates_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = {"PATH": "/bin", "CLAUDE_CONFIG_DIR": "/elsewhere"}
    env = offline_env(home, "http://127.0.0.1:9", base, trust=[tmp_path])
    assert env["HOME"] == str(home)
    assert env["PATH"] == "/bin"
    assert "CLAUDE_CONFIG_DIR" not in env  # it would move ~/.claude out of the throwaway home
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["ANTHROPIC_API_KEY"] == FAKE_API_KEY
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(env[name]).is_relative_to(home), name
    config = json.loads((home / ".claude.json").read_text())
    assert config["hasCompletedOnboarding"] is True
    assert config["customApiKeyResponses"]["approved"] == [FAKE_API_KEY]
    assert config["projects"][str(tmp_path)]["hasTrustDialogAccepted"] is True

    # Seeding again (another folder) keeps what is there.
    offline_env(home, "http://127.0.0.1:9", trust=[home])
    config = json.loads((home / ".claude.json").read_text())
    assert set(config["projects"]) == {str(tmp_path), str(home)}
    assert config["customApiKeyResponses"]["approved"] == [FAKE_API_KEY]


def test_offline_env_leaves_out_the_callers_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As when the tests themselves run inside a Claude Code session.
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("CLAUDE_CODE_CHILD_SESSION", "1")
    env = offline_env(tmp_path / "home", "http://127.0.0.1:9")
    assert "CLAUDECODE" not in env
    assert "CLAUDE_CODE_CHILD_SESSION" not in env
    assert env["PATH"] == os.environ["PATH"]


# ------------------------------------------------------------------------------------------------------------
# The real CLI


@pytest.mark.realclaude
def test_print_completes_a_turn(api: FakeAnthropic, tmp_path: Path, project: Path) -> None:
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    result = run_print(["-p", "say hi"], env, project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert REPLY in result.stdout
    (turn,) = api.turns_with("say hi")
    assert turn.route == "/v1/messages"
    assert turn.body["stream"] is True
    assert turn.headers["x-api-key"] == FAKE_API_KEY


@pytest.mark.realclaude
def test_interactive_session_lifecycle(api: FakeAnthropic, tmp_path: Path, project: Path) -> None:
    claude = require_real_claude()
    home = tmp_path / "home"
    env = offline_env(home, api.url, trust=[project])
    with InteractiveClaude([claude], env=env, cwd=project) as session:
        session.wait_ready(timeout=60)
        assert session.answered == []  # the seeded .claude.json kept every first-run dialog away
        assert session.claude_pid == session.pid

        sessions_file = home / ".claude" / "sessions" / f"{session.pid}.json"
        assert session.sessions_file() == sessions_file
        info = json.loads(sessions_file.read_text())
        assert info["pid"] == session.pid
        assert UUID.match(info["sessionId"])
        assert info["sessionId"] == session.session_id
        # procStart is what makes (pid, procStart) an identity that survives PID reuse.
        assert str(info["procStart"]) == proc_start(session.pid)
        assert info["cwd"] == str(project)

        projects = home / ".claude" / "projects"
        transcript = projects / escape_project_dir(project) / f"{session.session_id}.jsonl"
        assert session.transcript_path == transcript
        assert not transcript.exists()  # written only at the first message
        session.send("hello harness")
        assert transcript.exists()
        entries = transcript_entries(transcript)
        assert any(e.get("type") == "user" and e["message"]["content"] == "hello harness" for e in entries)
        assert any(e.get("type") == "assistant" and REPLY in json.dumps(e) for e in entries)
        assert len(api.turns_with("hello harness")) == 1

        status = session.close()
    assert status == 143  # SIGTERM is trapped: a graceful exit
    assert not sessions_file.exists()


@pytest.mark.realclaude
def test_first_run_dialogs_are_answered_when_not_seeded(
    api: FakeAnthropic, tmp_path: Path, project: Path
) -> None:
    claude = require_real_claude()
    home = tmp_path / "home"
    env = offline_env(home, api.url)
    (home / ".claude.json").write_text('{"hasCompletedOnboarding": true}')  # no key approval, no trust
    with InteractiveClaude([claude], env=env, cwd=project) as session:
        session.wait_ready(timeout=60)
        assert session.answered == ["trust", "api-key"]
    # What the CLI wrote after the answers is what seed_claude_json writes up front.
    config = json.loads((home / ".claude.json").read_text())
    assert config["projects"][str(project)]["hasTrustDialogAccepted"] is True
    assert config["customApiKeyResponses"]["approved"] == [FAKE_API_KEY[-20:]]


@pytest.mark.realclaude
@pytest.mark.parametrize("wrapper", ["exec", "fork"])
def test_interactive_through_a_wrapper(
    api: FakeAnthropic, tmp_path: Path, project: Path, wrapper: str
) -> None:
    claude = require_real_claude()
    home = tmp_path / "home"
    env = offline_env(home, api.url, trust=[project])
    # exec: a shim that replaces itself (same PID); fork: a wrapper that waits for claude as its child, and
    # dies on TERM without passing it on, as node's cli-wrapper does.
    run = f'{shlex.quote(claude)} "$@"'
    script = f"exec {run}" if wrapper == "exec" else f"{run}; exit $?"
    with InteractiveClaude(["/bin/sh", "-c", script, "wrapper"], env=env, cwd=project) as session:
        session.wait_ready(timeout=60)
        claude_process = session.claude
        assert claude_process is not None
        assert (session.claude_pid == session.pid) is (wrapper == "exec")
        assert session.sessions_file().name == f"{session.claude_pid}.json"
        sessions_file = session.sessions_file()
    assert not is_alive(claude_process)
    assert not sessions_file.exists()  # claude itself got TERM, so it cleaned up


# ------------------------------------------------------------------------------------------------------------
# Scripted tool calls


def _stream_blocks(payload: bytes) -> tuple[list[dict[str, Any]], str]:
    """Reassemble a streamed message: its content blocks (tool inputs parsed) and its stop reason."""
    lines = payload.decode().splitlines()
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    stop = ""
    for event in (json.loads(line[len("data: ") :]) for line in lines if line.startswith("data:")):
        if event["type"] == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            partial[event["index"]] = partial.get(event["index"], "") + event["delta"]["partial_json"]
        elif event["type"] == "content_block_delta":
            blocks[event["index"]]["text"] += event["delta"]["text"]
        elif event["type"] == "message_delta":
            stop = event["delta"]["stop_reason"]
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text)
    return blocks, stop


def test_fake_api_scripts_tool_calls_step_by_step(api: FakeAnthropic) -> None:
    run = api.script("go", bash("echo one"), (bash("echo two", background=True), bash("echo three")), "done")
    tools = [{"name": "Bash", "input_schema": {}}]
    first = {"model": "m", "stream": True, "tools": tools, "messages": [{"role": "user", "content": "go"}]}
    blocks, stop = _stream_blocks(_post(api.url + "/v1/messages", first)[2])
    assert stop == "tool_use"
    (call,) = blocks
    assert call["type"] == "tool_use" and call["name"] == "Bash"
    assert call["input"] == {"command": "echo one", "description": "Run a command for the test"}
    assert run.ids[0] == [call["id"]]

    def answer(ids: list[str], outputs: list[str]) -> dict[str, Any]:
        content = [
            {"type": "tool_result", "tool_use_id": i, "content": [{"type": "text", "text": o}]}
            for i, o in zip(ids, outputs, strict=True)
        ]
        return {"model": "m", "stream": True, "tools": tools, "messages": [{"role": "user", "content": content}]}

    blocks, stop = _stream_blocks(_post(api.url + "/v1/messages", answer([call["id"]], ["one"]))[2])
    assert stop == "tool_use"
    assert [b["input"]["command"] for b in blocks] == ["echo two", "echo three"]  # parallel calls
    assert blocks[0]["input"]["run_in_background"] is True
    assert "run_in_background" not in blocks[1]["input"]
    assert run.results(0) == [ToolResult(call["id"], "one", False)]

    second = [b["id"] for b in blocks]
    blocks, stop = _stream_blocks(_post(api.url + "/v1/messages", answer(second, ["two", "three"]))[2])
    assert (blocks, stop) == ([{"type": "text", "text": "done"}], "end_turn")
    assert [r.text for r in run.results(1)] == ["two", "three"]
    assert run.answered == 3

    # A request that does not offer the tool (a side call) is never told to run anything.
    api.script("side", bash("echo no"))
    side = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "side"}]}
    blocks, stop = _stream_blocks(_post(api.url + "/v1/messages", side)[2])
    assert stop == "end_turn"
    assert "no tool named Bash" in blocks[0]["text"]


def test_pid_command_records_the_pid_of_the_command(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with Leftovers() as leftovers:
        shell = subprocess.Popen(pid_command(pidfile, "sleep 600"), shell=True)
        proc = leftovers.track(int(wait_for_file(pidfile)))
        assert proc.cmdline() == ["sleep", "600"]  # exec: the recorded PID is the command itself
    assert not is_alive(proc)
    shell.wait(30)


@pytest.fixture
def leftovers() -> Iterator[Leftovers]:
    with Leftovers() as tracked:
        yield tracked


def _descends_from(pid: int, ancestor: int) -> bool:
    return any(p.pid == ancestor for p in psutil.Process(pid).parents())


@pytest.mark.realclaude
def test_print_runs_a_scripted_tool_call(api: FakeAnthropic, tmp_path: Path, project: Path) -> None:
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    seen = tmp_path / "seen"
    run = api.script(
        "run the tools",
        bash(f"echo first-output; echo $PPID > {seen}"),
        bash("echo second-output; echo oops >&2; exit 3"),
        "all done",
    )
    result = run_print(["-p", "run the tools", *TOOL_ARGS], env, project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "all done"
    assert seen.exists()  # the command really ran, under the CLI's own Bash tool
    first, second = run.result(0), run.result(1)
    assert first.text == "first-output" and not first.is_error  # the output reached the next request
    assert "second-output" in second.text and "oops" in second.text and second.is_error
    assert "3" in second.text  # the exit status is reported


@pytest.mark.realclaude
def test_tool_command_is_a_live_descendant_until_it_ends(
    api: FakeAnthropic, tmp_path: Path, project: Path, leftovers: Leftovers
) -> None:
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    pidfile, release = tmp_path / "pid", tmp_path / "release"
    # The command waits for the test: while it runs, the test sees the real process layout.
    command = f"while [ ! -e {release} ]; do sleep 0.1; done; echo released"
    run = api.script("hold", bash(pid_command(pidfile, f"sh -c {shlex.quote(command)}")), "finished")
    with PrintRun(["-p", "hold", *TOOL_ARGS], env, project, tmp_path / "logs") as claude:
        tool = leftovers.track(int(wait_for_file(pidfile)))
        assert _descends_from(tool.pid, claude.pid)
        assert not run.results(0)  # still running: no result sent yet
        release.touch()
        assert claude.wait(120) == 0, claude.stderr
    assert run.result(0).text == "released"
    assert claude.stdout.strip() == "finished"


@pytest.mark.realclaude
def test_background_tool_call_starts_a_background_shell(
    api: FakeAnthropic, tmp_path: Path, project: Path, leftovers: Leftovers
) -> None:
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    pidfile = tmp_path / "pid"
    run = api.script("bg", bash(pid_command(pidfile, "sleep 600"), background=True), "started")
    with PrintRun(["-p", "bg", *TOOL_ARGS], env, project, tmp_path / "logs") as claude:
        job = leftovers.track(int(wait_for_file(pidfile)))
        result = run.result(0)  # the tool answers at once, while the job runs on
        assert "background" in result.text and not result.is_error
        assert is_alive(job)
        assert _descends_from(job.pid, claude.pid)


@pytest.mark.realclaude
@pytest.mark.parametrize("wrapper", [False, True], ids=["direct", "sh-wrapper"])
def test_print_starts_a_real_mcp_server(
    api: FakeAnthropic, tmp_path: Path, project: Path, leftovers: Leftovers, wrapper: bool
) -> None:
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    server, pidfile = write_mcp_server(tmp_path / "mcp"), tmp_path / "mcp.pid"
    config = write_mcp_config(tmp_path / "mcp.json", {"kit": mcp_server_entry(server, pidfile, wrapper=wrapper)})
    release = tmp_path / "release"
    api.script("mcp", bash(f"while [ ! -e {release} ]; do sleep 0.1; done"), "ok")
    args = ["-p", "mcp", *TOOL_ARGS, "--mcp-config", str(config)]
    with PrintRun(args, env, project, tmp_path / "logs") as claude:
        pid, ppid = map(int, wait_for_file(pidfile).split())
        leftovers.track(pid)
        assert _descends_from(pid, claude.pid)
        if wrapper:  # sh stays in between (dash does not exec the command of `sh -c`)
            shell = psutil.Process(ppid)
            assert shell.name() == "sh" and shell.ppid() == claude.pid
            leftovers.track(ppid)
        else:
            assert ppid == claude.pid
        wait_until(lambda: bool(api.turns_with("mcp")), 60, "the turn's request")
        release.touch()
        assert claude.wait(120) == 0, claude.stderr
    # The CLI connected to the server: its tool was offered to the model (2.1.330 lists MCP tools as
    # deferred ones, by name, in the request's text rather than in `tools`).
    (turn,) = api.turns_with("mcp")
    assert "mcp__kit__ping" in json.dumps(turn.body)


@pytest.mark.realclaude
def test_interactive_session_runs_a_scripted_tool_call(
    api: FakeAnthropic, tmp_path: Path, project: Path, leftovers: Leftovers
) -> None:
    claude = require_real_claude()
    env = offline_env(tmp_path / "home", api.url, trust=[project])
    pidfile = tmp_path / "pid"
    run = api.script("start the job", bash(pid_command(pidfile, "sleep 600"), background=True), "job started")
    with InteractiveClaude([claude, *TOOL_ARGS], env=env, cwd=project) as session:
        session.wait_ready(timeout=60)
        session.send("start the job", timeout=120)
        job = leftovers.track(int(wait_for_file(pidfile)))
        assert _descends_from(job.pid, session.claude_pid)
        assert "background" in run.result(0).text
        entries = transcript_entries(session.transcript_path)
        assert any(e.get("type") == "assistant" and "job started" in json.dumps(e) for e in entries)


def _tty_nr(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[4])


@pytest.mark.realclaude
@pytest.mark.parametrize("controlling_tty", [False, True])
def test_interactive_session_with_or_without_a_controlling_terminal(
    api: FakeAnthropic, tmp_path: Path, project: Path, controlling_tty: bool
) -> None:
    claude = require_real_claude()
    env = offline_env(tmp_path / "home", api.url, trust=[project])
    with InteractiveClaude([claude], env=env, cwd=project, controlling_tty=controlling_tty) as session:
        session.wait_ready(timeout=60)
        assert session.claude_pid == session.pid  # the helper that takes the terminal execs: same PID
        assert os.getsid(session.pid) == session.pid
        assert (_tty_nr(session.pid) != 0) is controlling_tty


@pytest.mark.realclaude
@pytest.mark.parametrize("linger", [False, True], ids=["exits-on-eof", "lingers"])
def test_mcp_server_after_claude_is_sigkilled(
    api: FakeAnthropic, tmp_path: Path, project: Path, leftovers: Leftovers, linger: bool
) -> None:
    # The kit's server either honours stdin EOF or, with linger=True, keeps running like the servers that leak.
    require_real_claude()
    env = offline_env(tmp_path / "home", api.url)
    server, pidfile = write_mcp_server(tmp_path / "mcp"), tmp_path / "mcp.pid"
    entry = mcp_server_entry(server, pidfile, linger=linger)
    config = write_mcp_config(tmp_path / "mcp.json", {"kit": entry})
    hold = tmp_path / "hold.pid"
    api.script("hold", bash(pid_command(hold, "sleep 600")), "ok")
    args = ["-p", "hold", *TOOL_ARGS, "--mcp-config", str(config)]
    with PrintRun(args, env, project, tmp_path / "logs") as claude:
        mcp = leftovers.track(int(wait_for_file(pidfile).split()[0]))
        tool = leftovers.track(int(wait_for_file(hold)))  # it outlives the SIGKILL: Leftovers ends it
        leftovers.track(tool.ppid())  # and its tool shell
        claude.proc.kill()  # our own PID
        claude.wait(60)
        if linger:
            wait_until(lambda: mcp.ppid() != claude.pid, 60, "the server to be reparented")
            assert is_alive(mcp)
        else:
            wait_until(lambda: not is_alive(mcp), 60, "the server to exit on stdin EOF")
