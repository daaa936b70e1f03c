"""The harness in tests/realclaude.py works: the fake API on its own, then the real CLI driven through it."""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realclaude import (
    FAKE_API_KEY,
    FakeAnthropic,
    InteractiveClaude,
    escape_project_dir,
    is_alive,
    offline_env,
    proc_start,
    require_real_claude,
    run_print,
    transcript_entries,
    user_blocks,
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
