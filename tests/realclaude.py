"""Run the real Claude Code CLI offline in tests: a fake Messages API, an isolated environment, a pty driver.

Nothing here talks to the network or touches the real home: every run gets a throwaway HOME (tests pass
`tmp_path`), `ANTHROPIC_BASE_URL` points at a loopback `FakeAnthropic`, and `$HOME/.claude.json` is seeded so
the first-run dialogs (onboarding, API-key approval, folder trust) do not appear. Processes are signalled
only by the PID this module started (or, for a wrapper, the claude descendant it found and pinned by
create time), never by name.

Scripted tool calls make real tool descendants: `api.script(prompt, bash(cmd), ..., "text")` answers the
prompt with a Bash `tool_use`, each tool result with the next step; `pid_command` + `wait_for_file` tell a
test when (and as which PID) the command started; `PrintRun` runs `claude -p` in the background;
`write_mcp_server`/`mcp_server_entry`/`write_mcp_config` give the CLI a real stdio MCP server (direct or
through `sh -c`); `Leftovers` ends whatever a test's tool commands left running, by pinned PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "CLAUDE_GUARD_TEST_REAL_CLAUDE"
# Where scripts/install-test-deps puts the pinned CLI (npm's hard link to the native binary), below its
# cache folder ($CLAUDE_GUARD_TEST_CACHE, else .cache in the repo).
CLAUDE_IN_CACHE = "npm/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
EXPECTED_VERSION = "2.1.330"
FAKE_API_KEY = "sk-ant-fake"
SKIP_REASON = "real Claude Code CLI not installed: run scripts/install-test-deps"


def find_real_claude() -> str | None:
    """The real CLI to run: `$CLAUDE_GUARD_TEST_REAL_CLAUDE` (a path, or a name looked up on PATH), else the
    copy installed by scripts/install-test-deps. None when neither is an executable file."""
    override = os.environ.get(ENV_VAR, "")
    if override:
        found = shutil.which(override) if os.sep not in override else override
        # An override that does not resolve means "not installed", not "fall back": a typo must not
        # silently test some other binary.
        return found if found and os.access(found, os.X_OK) and Path(found).is_file() else None
    cached = Path(os.environ.get("CLAUDE_GUARD_TEST_CACHE") or REPO_ROOT / ".cache") / CLAUDE_IN_CACHE
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return None


def require_real_claude() -> str:
    """The real CLI's path; skips the calling test when it is absent."""
    path = find_real_claude()
    if path is None:
        pytest.skip(SKIP_REASON)
    return path


# ----------------------------------------------------------------------------------------------------
# The fake Messages API


@dataclass(frozen=True)
class RecordedRequest:
    """One request the CLI made to the fake API."""

    method: str
    path: str  # with its query string, e.g. `/v1/messages?beta=true`
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body; None when there was none or it was not JSON

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.partition("?")[0]


@dataclass(frozen=True)
class ToolUse:
    """One tool call the fake model makes: a `tool_use` content block with this tool name and input."""

    name: str
    input: dict[str, Any]


# Arguments that let the CLI run scripted Bash calls without asking: allow the tool, and a permission mode
# that never stops to ask (2.1.330's interactive default, "auto", wants a server-side check the loopback API
# cannot give; `--dangerously-skip-permissions` is refused under root). `--allowedTools` takes several values:
# keep another option (or the end) after it, never the prompt.
TOOL_ARGS = ("--permission-mode", "dontAsk", "--allowedTools", "Bash")


def bash(
    command: str,
    *,
    background: bool = False,
    description: str = "Run a command for the test",
    timeout_ms: int | None = None,
) -> ToolUse:
    """A call of the CLI's Bash tool. `background=True` sets `run_in_background` (the tool starts the command
    as a background shell and answers at once with its shell id)."""
    tool_input: dict[str, Any] = {"command": command, "description": description}
    if background:
        tool_input["run_in_background"] = True
    if timeout_ms is not None:
        tool_input["timeout"] = timeout_ms
    return ToolUse("Bash", tool_input)


# What one assistant turn says: text (the turn ends), or one tool call, or several at once (parallel calls);
# the CLI runs the tools and sends their results in its next request.
Turn = str | ToolUse | tuple[ToolUse, ...]
Reply = str | Callable[[Any], Turn]
# An assistant message as the API sends it: its content blocks and its stop reason.
Answer = tuple[list[dict[str, Any]], str]


@dataclass(frozen=True)
class ToolResult:
    """A `tool_result` block the CLI sent back: what the tool call `tool_use_id` produced."""

    tool_use_id: str
    text: str  # the result's text (its text blocks joined with newlines)
    is_error: bool


class Script:
    """The fake model's side of one conversation started by `prompt`: step 0 answers the prompt, step k+1
    answers the request carrying the results of step k's tool calls. Made by `FakeAnthropic.script`."""

    def __init__(self, api: FakeAnthropic, prompt: str, steps: Sequence[Turn]) -> None:
        self.api = api
        self.prompt = prompt.strip()
        self.steps = list(steps)
        self.ids: dict[int, list[str]] = {}  # step -> tool_use ids issued for it (the last answer's)

    def results(self, step: int) -> list[ToolResult]:
        """The results the CLI sent back for step `step`'s tool calls so far (in call order)."""
        found = {r.tool_use_id: r for r in self.api.tool_results()}
        return [found[i] for i in self.ids.get(step, []) if i in found]

    def result(self, step: int = 0, timeout: float = 120) -> ToolResult:
        """Wait for the result of step `step`'s (first) tool call and return it."""
        wait_until(lambda: bool(self.results(step)), timeout, f"the tool result of step {step} of {self.prompt!r}")
        return self.results(step)[0]

    @property
    def answered(self) -> int:
        """How many steps have been answered so far."""
        return len(self.ids) if not self.ids else max(self.ids) + 1


class FakeAnthropic:
    """A loopback stand-in for the Anthropic Messages API, enough for the CLI to complete turns.

    Answers `POST /v1/messages` (streamed as server-sent events, or as one JSON message when the request
    does not ask for a stream), `POST /v1/messages/count_tokens`, and anything else with a 404 in the API's
    error shape (so the CLI takes the feature as absent rather than retrying). `reply` is the assistant text,
    or a function of the request body giving a turn (text, a ToolUse, or a tuple of them); `script()`
    scripts whole tool-calling conversations and takes precedence over `reply` for the requests it matches.
    """

    def __init__(self, reply: Reply = "Hello from the fake API.") -> None:
        self.reply = reply
        self._scripts: list[Script] = []
        self._issued: dict[str, tuple[Script, int]] = {}  # tool_use id -> (script, step)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeAnthropic:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True  # a CLI that drops a connection mid-stream must not hold up shutdown
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="FakeAnthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to put in ANTHROPIC_BASE_URL."""
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- what the CLI asked
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def message_requests(self) -> list[RecordedRequest]:
        """The `POST /v1/messages` requests (conversation turns and the CLI's side calls alike)."""
        return [r for r in self.requests if r.method == "POST" and r.route.endswith("/v1/messages")]

    def turns_with(self, prompt: str) -> list[RecordedRequest]:
        """The message requests whose last user message has `prompt` as one of its text blocks (stripped):
        the turns a prompt produced, as opposed to side calls (titles, probes) the CLI makes around them."""
        return [
            r for r in self.message_requests() if prompt.strip() in (b.strip() for b in user_blocks(r.body))
        ]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- scripted tool calls
    def script(self, prompt: str, *steps: Turn) -> Script:
        """Script the conversation that `prompt` starts: the request whose last user message has `prompt` as
        a text block is answered with `steps[0]`, the request carrying the results of step k's tool calls
        with `steps[k + 1]`; after the last step, `reply` answers. A tool call the request does not offer
        (no tool of that name in its `tools`) is answered with a text saying so instead, so a side call of
        the CLI never runs anything. Example:

            run = api.script("go", bash(f"echo $$ > {pidfile}; sleep 600", background=True), "started")
        """
        script = Script(self, prompt, steps)
        with self._lock:
            self._scripts.append(script)
        return script

    def tool_results(self) -> list[ToolResult]:
        """Every tool result the CLI sent so far, oldest first, each once (a later request repeats the
        history, and a retry the whole request)."""
        seen: dict[str, ToolResult] = {}
        for request in self.message_requests():
            for result in tool_results(request.body):
                seen.setdefault(result.tool_use_id, result)
        return list(seen.values())

    def _answer(self, body: Any) -> Answer:
        scripted = self._scripted(body)
        if scripted is not None:
            return scripted
        return _content(self.reply(body) if callable(self.reply) else self.reply)

    def _scripted(self, body: Any) -> Answer | None:
        with self._lock:
            for result in tool_results(body):
                if result.tool_use_id in self._issued:
                    script, step = self._issued[result.tool_use_id]
                    return self._issue(script, step + 1, body)
            blocks = [b.strip() for b in user_blocks(body)]
            for script in reversed(self._scripts):  # the newest script for a prompt wins
                if script.prompt in blocks:
                    return self._issue(script, 0, body)
        return None

    def _issue(self, script: Script, step: int, body: Any) -> Answer | None:
        if step >= len(script.steps):
            return None
        turn = script.steps[step]
        if isinstance(turn, str):
            script.ids.setdefault(step, [])
            return _content(turn)
        calls = _calls(turn)
        offered = {t.get("name") for t in (body.get("tools") or []) if isinstance(t, dict)}
        missing = sorted({c.name for c in calls} - offered)
        if missing:
            return _content(f"(fake API: the request offers no tool named {', '.join(missing)})")
        answer = _content(turn)
        script.ids[step] = [block["id"] for block in answer[0]]
        for tool_use_id in script.ids[step]:
            self._issued[tool_use_id] = (script, step)
        return answer


def _last_user_content(body: Any) -> Any:
    """The content of the last user message of a Messages request body (None when there is none)."""
    if not isinstance(body, dict):
        return None
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message.get("content")
    return None


def user_blocks(body: Any) -> list[str]:
    """The text blocks of the last user message of a Messages request body. The CLI sends the prompt as its
    own block, next to blocks of context it adds (environment, reminders)."""
    content = _last_user_content(body)
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(b["text"]) for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def tool_results(body: Any) -> list[ToolResult]:
    """The `tool_result` blocks of the last user message of a Messages request body."""
    content = _last_user_content(body)
    found = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict) or block.get("type") != "tool_result":
            continue
        inner = block.get("content")
        if isinstance(inner, list):
            inner = "\n".join(str(b.get("text", "")) for b in inner if isinstance(b, dict))
        found.append(ToolResult(str(block.get("tool_use_id")), str(inner or ""), bool(block.get("is_error"))))
    return found


def system_blocks(body: Any) -> list[str]:
    """The text blocks of a Messages request's system prompt (a plain string counts as one block)."""
    system = body.get("system") if isinstance(body, dict) else None
    if isinstance(system, str):
        return [system]
    if isinstance(system, list):
        return [str(b["text"]) for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _message_id() -> str:
    return "msg_fake_" + uuid.uuid4().hex[:24]


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _calls(turn: ToolUse | tuple[ToolUse, ...]) -> tuple[ToolUse, ...]:
    return (turn,) if isinstance(turn, ToolUse) else turn


def _content(turn: Turn) -> Answer:
    """A turn as content blocks (each tool call with a fresh tool_use id) and its stop reason."""
    if isinstance(turn, str):
        return [{"type": "text", "text": turn}], "end_turn"
    blocks = [
        {"type": "tool_use", "id": "toolu_fake_" + uuid.uuid4().hex[:20], "name": c.name, "input": dict(c.input)}
        for c in _calls(turn)
    ]
    return blocks, "tool_use"


def _sse_stream(model: str, answer: Answer) -> bytes:
    """The event sequence of an assistant message, as the real API streams it: each text block as one
    `text_delta`, each tool call's input as one `input_json_delta`."""
    blocks, stop_reason = answer
    deltas: list[tuple[str, dict[str, Any]]] = []
    for index, block in enumerate(blocks):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        deltas += [
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": _message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(10, 1),
                },
            },
        ),
        *deltas,
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": max(1, len(json.dumps(blocks).split()))},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _json_message(model: str, answer: Answer) -> dict[str, Any]:
    blocks, stop_reason = answer
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(10, max(1, len(json.dumps(blocks).split()))),
    }


def _make_handler(api: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the CLI's HTTP client expects from the real API

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean; the recorded requests are the log

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()  # the blank line after the last chunk
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
            self.end_headers()
            self.wfile.write(payload)

        def _send_json(self, status: int, data: Any) -> None:
            self._send(status, "application/json", json.dumps(data).encode())

        def _handle(self) -> None:
            raw = self._read_body()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            api._record(request)
            route = request.route
            data = body if isinstance(body, dict) else {}
            model = str(data.get("model") or "claude-fake")
            if self.command == "POST" and route.endswith("/v1/messages/count_tokens"):
                self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif self.command == "POST" and route.endswith("/v1/messages"):
                answer = api._answer(body)
                if data.get("stream"):
                    self._send(200, "text/event-stream; charset=utf-8", _sse_stream(model, answer))
                else:
                    self._send_json(200, _json_message(model, answer))
            else:
                error = {"type": "not_found_error", "message": f"{self.command} {route} is not faked"}
                self._send_json(404, {"type": "error", "error": error})

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


# ----------------------------------------------------------------------------------------------------
# The environment


def seed_claude_json(home: Path, *, api_key: str = FAKE_API_KEY, trust: Sequence[Path | str] = ()) -> Path:
    """Merge into `$HOME/.claude.json` what the CLI itself writes once its first-run dialogs are answered, so
    they never appear: onboarding done, the API key approved, and each folder in `trust` trusted (trust covers
    sub-folders too). Returns the file's path."""
    path = home / ".claude.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    config["hasCompletedOnboarding"] = True
    # The CLI remembers an approved key by its last 20 characters (the whole key when it is shorter).
    responses = config.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
    approved = responses.setdefault("approved", [])
    if api_key and api_key[-20:] not in approved:
        approved.append(api_key[-20:])
    responses.setdefault("rejected", [])
    projects = config.setdefault("projects", {})
    for folder in trust:
        projects.setdefault(str(folder), {})["hasTrustDialogAccepted"] = True
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def offline_env(
    home: Path,
    api_url: str,
    base_env: Mapping[str, str] | None = None,
    *,
    trust: Sequence[Path | str] = (),
) -> dict[str, str]:
    """An environment that runs the real CLI offline against `api_url` with `home` as its whole world.

    Without `base_env` it starts from almost nothing (PATH and the locale only): the test process may itself
    run inside Claude Code, whose markers (CLAUDECODE, CLAUDE_CODE_*) must not leak into the CLI under test.
    With `base_env`, that mapping is kept as given (a test may set markers on purpose) and only the variables
    below override it. `.claude.json` is seeded (see `seed_claude_json`) with `trust` as trusted folders.
    """
    home = Path(home)
    if base_env is None:
        env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
        env.setdefault("PATH", os.defpath)
    else:
        env = dict(base_env)
    for name in ("CLAUDE_CONFIG_DIR", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        # Each would send the CLI to another config folder or another credential than the fake ones.
        env.pop(name, None)
    for folder in (".config", ".cache", ".local/share", ".local/state"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),  # the home on Windows
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        ANTHROPIC_API_KEY=FAKE_API_KEY,
        ANTHROPIC_BASE_URL=api_url,
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        TERM=env.get("TERM") or "xterm-256color",
    )
    # The CLI puts its messaging socket in $XDG_RUNTIME_DIR/cc-socks/<pid>.sock (else /tmp/cc-socks). Inside
    # the home it is isolated too, but a Unix socket path has a limit of 107 bytes, and a deep tmp_path can
    # pass it: then the shared /tmp/cc-socks is used (its names are PIDs, so live sessions never collide).
    runtime = home / ".run"
    if len(os.fsencode(runtime / "cc-socks" / "4194304.sock")) <= 100:
        runtime.mkdir(mode=0o700, exist_ok=True)  # XDG asks for 0700
        env["XDG_RUNTIME_DIR"] = str(runtime)
    else:
        env.pop("XDG_RUNTIME_DIR", None)
    seed_claude_json(home, trust=trust)
    return env


def run_print(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | str,
    timeout: float = 120,
    *,
    command: Sequence[str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command + args` (command defaults to the real CLI; args include `-p` where wanted) to completion.

    stdin is empty unless `input` is given: with `-p` the CLI reads stdin when it is not a terminal, and an
    inherited pytest stdin would make it wait.
    """
    argv = [*(command or [require_real_claude()]), *args]
    return subprocess.run(
        argv,
        env=dict(env),
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,  # keep it away from the terminal's signals (Ctrl-C goes to pytest only)
        check=False,
    )


class PrintRun:
    """`claude -p` (or a shim in front of it) running in the background, so a test can look at its processes
    while the turn goes on. stdout and stderr go to files in `logs`, not pipes: a tool command that inherits
    them must not keep a reader waiting. Its own session, like `run_print`. `close()` signals only its PID."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | str,
        logs: Path,
        *,
        command: Sequence[str] | None = None,
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / "stdout", logs / "stderr"
        argv = [*(command or [require_real_claude()]), *args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = 120) -> int:
        """Its exit status, once it has exited."""
        return self.proc.wait(timeout)

    def close(self, timeout: float = 30) -> int:
        """SIGTERM (SIGKILL after `timeout`) if it still runs; its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout)

    def __enter__(self) -> PrintRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------
# Knowing what a tool command did


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `done` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = 120) -> str:
    """Wait until `path` holds a complete line (a tool command wrote it: the command has started) and
    return its text."""
    def written() -> bool:
        try:
            return path.read_text().endswith("\n")
        except OSError:
            return False

    wait_until(written, timeout, f"{path} to be written")
    return path.read_text()


def pid_command(pidfile: Path, command: str) -> str:
    """A shell command that records its own PID in `pidfile`, then becomes `command` (exec: same PID). For
    a tool call: `bash(pid_command(f, "sleep 600"))`, then `int(wait_for_file(f))` is the sleep's PID."""
    inner = f"echo $$ > {shlex.quote(str(pidfile))}; exec {command}"
    return f"sh -c {shlex.quote(inner)}"


class Leftovers:
    """Processes a test's tool commands started, pinned (PID + create time) as soon as their PID is known,
    and ended by `close()` if still running: a detached job must not outlive the test. Only these PIDs are
    ever signalled, and psutil's create-time check keeps a reused PID safe."""

    def __init__(self) -> None:
        self.procs: list[psutil.Process] = []

    def track(self, pid: int) -> psutil.Process:
        proc = psutil.Process(pid)
        self.procs.append(proc)
        return proc

    def close(self, timeout: float = 10) -> None:
        for proc in reversed(self.procs):
            if is_alive(proc):
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.terminate()
                    if not _wait_gone(proc, timeout):
                        proc.kill()
                        _wait_gone(proc, timeout)

    def __enter__(self) -> Leftovers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------
# A real MCP server

# A minimal stdio MCP server (newline-delimited JSON-RPC): enough for the CLI to connect and list its one
# tool. It records "<pid> <ppid>\n" in the file named by its first argument once it runs. With --linger it
# keeps running after stdin closes, as the servers that leak in the field do; without, it exits on EOF.
MCP_SERVER_SOURCE = r'''
import json, os, sys, time
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {os.getppid()}\n")
def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    try:
        request = json.loads(line)
    except ValueError:
        continue
    if "id" not in request:
        continue  # a notification
    method, rid = request.get("method"), request["id"]
    if method == "initialize":
        version = (request.get("params") or {}).get("protocolVersion") or "2024-11-05"
        send({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": version, "capabilities": {"tools": {}},
              "serverInfo": {"name": "kit", "version": "1.0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "ping", "description": "Answers pong.",
              "inputSchema": {"type": "object", "properties": {}}}]}})
    elif method == "tools/call":
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "pong"}]}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}})
if "--linger" in sys.argv:
    while True:
        time.sleep(3600)
'''


def write_mcp_server(folder: Path) -> Path:
    """Write the MCP server script into `folder`; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mcp_server.py"
    path.write_text(MCP_SERVER_SOURCE.lstrip(), encoding="utf-8")
    return path


def mcp_server_entry(script: Path, pidfile: Path, *, wrapper: bool = False, linger: bool = False) -> dict[str, Any]:
    """An `mcpServers` entry that runs `script` with this Python. `wrapper=True` launches it through a shell,
    the shape of `npm exec`/`uvx` launchers: `{"command": "sh", "args": ["-c", "python3 server.py"]}`."""
    argv = [sys.executable, str(script), str(pidfile), *(["--linger"] if linger else [])]
    if wrapper:
        return {"type": "stdio", "command": "sh", "args": ["-c", shlex.join(argv)]}
    return {"type": "stdio", "command": argv[0], "args": argv[1:]}


def write_mcp_config(path: Path, servers: Mapping[str, dict[str, Any]]) -> Path:
    """Write an `--mcp-config` file naming `servers` (name -> entry); returns its path."""
    path.write_text(json.dumps({"mcpServers": dict(servers)}, indent=2), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------
# An interactive session in a real pty

# CSI sequences (colours, cursor moves: the CLI draws the gaps between words with cursor moves, so each one
# becomes a space) and OSC sequences (titles, hyperlinks).
_CSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_OTHER_ESC = re.compile(r"\x1b[()][0-9A-Za-z]|\x1b[78=>cDEHMNOZ]")
_WHITESPACE = re.compile(r"\s+")


def strip_ansi(data: bytes | str) -> str:
    """Terminal output as plain text (escape sequences become spaces, so compare with `squash`)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return _OTHER_ESC.sub("", _CSI.sub(" ", _OSC.sub("", text)))


def squash(text: str) -> str:
    """Text with all whitespace removed: the CLI's layout decides where the spaces fall, not the words."""
    return _WHITESPACE.sub("", text)


def escape_project_dir(cwd: str | Path) -> str:
    """The folder name under `~/.claude/projects/` for a working directory: every character outside
    `[a-zA-Z0-9]` becomes `-`. (Past 200 characters the CLI cuts the name and adds a hash; not modelled:
    use `InteractiveClaude.transcript_path`, which searches, for long paths.)"""
    return re.sub(r"[^a-zA-Z0-9]", "-", str(cwd))


def proc_start(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), as the CLI records it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    return stat[stat.rindex(")") + 2 :].split()[22 - 3]


# Run after setsid(): make stdin (the pty's slave) the new session's controlling terminal, then become the command.
_ACQUIRE_CTTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"
)


@dataclass(frozen=True)
class _Dialog:
    name: str
    marker: str  # text that shows the dialog is up
    choice: str  # the text of the choice to confirm
    move: bytes  # the key that moves the selection towards it


# The first-run dialogs, for when `.claude.json` was not seeded (or the CLI changed what it checks).
_DIALOGS = (
    _Dialog("trust", "Yes, I trust this folder", "Yes, I trust this folder", b"\x1b[B"),  # 2nd of 2: Down
    _Dialog("api-key", "Do you want to use this API key?", "Yes", b"\x1b[A"),  # "No" is preselected: Up
)
_SELECTED = "\N{HEAVY RIGHT-POINTING ANGLE QUOTATION MARK ORNAMENT}"  # the CLI's cursor, also its prompt


class InteractiveClaude:
    """The real CLI (or a shim in front of it) running interactively in a pseudo-terminal.

    `command` is the whole argv: `[real_claude, ...]` or `[shim, ...]`. The process runs in its own session
    with the pty's slave as stdin/stdout/stderr; a reader thread drains the master so the CLI never blocks on
    a full pty buffer. `close()` (also on leaving a `with` block) signals only the PID this object started,
    plus the claude descendant found by `wait_ready` when a wrapper stood in between (pinned by its create
    time, so a reused PID is never signalled).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str,
        cols: int = 120,
        rows: int = 40,
        answer_dialogs: bool = True,
        controlling_tty: bool = False,
    ) -> None:
        self.command = list(command)
        # A terminal emulator or tmux makes the pty the session's controlling terminal (children then share
        # it); without, the CLI has the pty as stdin/stdout/stderr but no controlling terminal (tty_nr 0).
        self.controlling_tty = controlling_tty
        self.env = dict(env)
        self.cwd = Path(cwd)
        self.home = Path(self.env["HOME"])
        self.cols, self.rows = cols, rows
        self.answer_dialogs = answer_dialogs
        self.answered: list[str] = []  # names of the dialogs this object answered, in order
        self.proc: subprocess.Popen[bytes] | None = None
        self.claude: psutil.Process | None = None  # the claude process itself (set by wait_ready)
        self._master = -1
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._dialog: _Dialog | None = None
        self._dialog_from = 0  # where in the output the pending dialog was seen
        self._dialog_moved_at: float | None = None
        self._dialog_scan_from = 0

    # -- lifecycle
    def start(self) -> InteractiveClaude:
        if self.proc is not None:
            raise RuntimeError("already started")
        master, slave = os.openpty()
        try:
            # Set the size before the CLI starts: it lays out its first frame from it.
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
            command = self.command
            if self.controlling_tty:
                # Through an exec (same PID), not preexec_fn: forking a process with threads (the fake API's)
                # and running Python code in the child can deadlock.
                command = [sys.executable, "-I", "-S", "-c", _ACQUIRE_CTTY, *command]
            self.proc = subprocess.Popen(
                command,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own session and group: no signal from our terminal reaches it
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            # Only the child holds the slave now, so the master reads EIO once the child side is gone.
            os.close(slave)
        self._master = master
        self._reader = threading.Thread(target=self._drain, name=f"pty-reader-{self.proc.pid}", daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> InteractiveClaude:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        # select with a short timeout rather than a blocking read: close() must be able to stop this thread
        # even when a grandchild still holds the slave (no EIO then), before it closes the master.
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every slave descriptor is closed (the CLI and its children are gone)
                return
            if not data:
                return
            with self._lock:
                self._buffer.extend(data)

    @property
    def pid(self) -> int:
        """The PID this object started (the CLI itself, or the shim/wrapper in front of it)."""
        if self.proc is None:
            raise RuntimeError("not started")
        return self.proc.pid

    @property
    def claude_pid(self) -> int:
        """The claude process's PID (differs from `pid` when a wrapper forked it); known after wait_ready."""
        if self.claude is None:
            raise RuntimeError("claude process not found yet: call wait_ready() first")
        return self.claude.pid

    # -- output
    @property
    def output(self) -> bytes:
        """Everything the CLI wrote to the terminal so far."""
        with self._lock:
            return bytes(self._buffer)

    def text(self, since: int = 0) -> str:
        """The output from byte offset `since` on, as plain text."""
        return strip_ansi(self.output[since:])

    def mark(self) -> int:
        """The current end of the output, for `text(since=...)` / `wait_for_text(since=...)`."""
        with self._lock:
            return len(self._buffer)

    def wait_for_text(self, text: str, timeout: float = 60, *, since: int = 0) -> None:
        """Wait until `text` (compared without whitespace) appears in the output after `since`."""
        want = squash(text)
        self._poll(lambda: want in squash(self.text(since)), timeout, f"text {text!r} on the screen")

    def write(self, data: bytes | str) -> None:
        """Send raw keys to the CLI."""
        os.write(self._master, data.encode() if isinstance(data, str) else data)

    # -- Claude's own files
    def sessions_file(self, pid: int | None = None) -> Path:
        """`~/.claude/sessions/<pid>.json` of the claude process (or of `pid`)."""
        return self.home / ".claude" / "sessions" / f"{self.claude_pid if pid is None else pid}.json"

    def session_info(self) -> dict[str, Any]:
        """The claude process's sessions file, parsed ({} while it is missing or half-written)."""
        return _read_json(self.sessions_file())

    @property
    def session_id(self) -> str:
        """The session id the running CLI recorded for itself."""
        session_id = self.session_info().get("sessionId")
        if not isinstance(session_id, str):
            raise RuntimeError(f"no sessionId in {self.sessions_file()}")
        return session_id

    @property
    def transcript_path(self) -> Path:
        """`~/.claude/projects/<escaped cwd>/<sessionId>.jsonl` (it exists only after the first message)."""
        session_id = self.session_id
        cwd = self.session_info().get("cwd") or str(self.cwd)
        expected = self.home / ".claude" / "projects" / escape_project_dir(cwd) / f"{session_id}.jsonl"
        if expected.exists() or len(expected.parent.name) <= 200:
            return expected
        found = sorted((self.home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))
        return found[0] if found else expected

    # -- waiting
    def wait_ready(self, timeout: float = 60) -> InteractiveClaude:
        """Wait until the claude process has written its sessions file and reports itself idle at its prompt,
        answering the first-run dialogs on the way if they appear. Returns self."""
        self._poll(self._ready, timeout, "the session to become ready (sessions file with status idle)")
        return self

    def _ready(self) -> bool:
        if self.answer_dialogs:
            self._answer_dialogs()
        if self.claude is None:
            self.claude = self._find_claude()
            if self.claude is None:
                return False
        return self.session_info().get("status") == "idle"

    def _find_claude(self) -> psutil.Process | None:
        """The process (ours, or one of its descendants) that has a sessions file."""
        assert self.proc is not None
        try:
            ours = psutil.Process(self.proc.pid)
            candidates = [ours, *ours.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        for proc in candidates:
            if self.sessions_file(proc.pid).exists():
                return proc
        return None

    def _answer_dialogs(self) -> None:
        end = self.mark()
        if self._dialog is None:
            seen = squash(self.text(self._dialog_scan_from))
            for dialog in _DIALOGS:
                if squash(dialog.marker) in seen:
                    self._dialog, self._dialog_from = dialog, self._dialog_scan_from
                    # As if a key had just been pressed: a key sent while the dialog is still mounting can be
                    # lost (it was redrawn with the old choice), so the first one waits a moment too.
                    self._dialog_moved_at = time.monotonic() - 2
                    break
            else:
                # Rescan a little of the old output next time: a marker may straddle two reads.
                self._dialog_scan_from = max(self._dialog_scan_from, end - 4096)
                return
        dialog = self._dialog
        # The selection cursor (❯) in front of the wanted choice: the last one drawn wins.
        screen = squash(self.text(self._dialog_from))
        selected = screen.rsplit(_SELECTED, 1)[-1] if _SELECTED in screen else ""
        if selected.startswith(squash(dialog.choice)):
            self.write(b"\r")
            self.answered.append(dialog.name)
            self._dialog = None
            self._dialog_scan_from = end  # the next dialog is drawn after this point
        elif self._dialog_moved_at is None or time.monotonic() - self._dialog_moved_at > 3:
            # One key, then wait for the redraw. Pressing again after a while is safe: the cursor rule above
            # confirms as soon as the wanted choice shows, whichever way the list clamps or wraps.
            self.write(dialog.move)
            self._dialog_moved_at = time.monotonic()

    def _poll(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if done():
                return
            if self.proc is not None and self.proc.poll() is not None:
                status = self.proc.returncode
                raise RuntimeError(f"{self.command[0]} exited ({status}) waiting for {what}; {self._tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; {self._tail()}")
            time.sleep(0.1)

    def _tail(self) -> str:
        return "screen (last 3000 characters):\n" + self.text()[-3000:]

    # -- talking to it
    def send(self, text: str, timeout: float = 60) -> None:
        """Type one line and press Enter, then wait until the turn is done: the transcript holds the message
        and, after it, a reply that calls no tool (scripted tool calls run first), and the session is idle
        again (status "idle", or "shell" while a background shell runs). Needs a FakeAnthropic (or any API) behind
        ANTHROPIC_BASE_URL."""
        if "\n" in text or "\r" in text:
            raise ValueError("send() types one line; Enter is pressed for you")
        session_file = self.sessions_file()  # also checks that wait_ready() found the process
        start = self.mark()
        self.write(text)
        # Enter must arrive as its own keystroke: in the same read as the text the CLI takes it as part of a
        # paste (a newline in the input box) instead of a submit.
        with contextlib.suppress(TimeoutError):
            self.wait_for_text(text[-20:], timeout=10, since=start)
        self.write(b"\r")

        def turn_done() -> bool:
            # Not the status alone: the transcript is created (with a few bookkeeping lines) and the status
            # rewritten before the message itself is recorded. "shell": idle, with a background shell running.
            if _read_json(session_file).get("status") not in ("idle", "shell"):
                return False
            entries = transcript_entries(self.transcript_path)
            typed = text.strip()
            asked = [i for i, e in enumerate(entries) if e.get("type") == "user" and typed in _entry_texts(e)]
            replies = [e for e in entries[asked[-1] :] if e.get("type") == "assistant"] if asked else []
            # The turn is over at a reply that calls no tool (a tool_use reply is followed by more turns).
            return bool(replies) and not _calls_tools(replies[-1])

        self._poll(turn_done, timeout, f"the reply to {text!r} in the transcript")

    def close(self, timeout: float = 30) -> int | None:
        """SIGTERM to our own process (the CLI exits gracefully: 143), SIGKILL if it outlives `timeout`; the
        same for a claude descendant that outlived a wrapper. Returns our process's exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Popen refuses to signal a PID it has already reaped
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        claude = self.claude
        if claude is not None and claude.pid != self.proc.pid and is_alive(claude):
            # A wrapper may exit on TERM and leave its claude child running (node's cli-wrapper does).
            with contextlib.suppress(psutil.NoSuchProcess):
                claude.terminate()  # psutil checks the create time first: a reused PID is not signalled
                if not _wait_gone(claude, timeout):
                    claude.kill()
                    _wait_gone(claude, timeout)
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        return self.proc.returncode


def transcript_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a transcript (.jsonl), skipping a last line caught half-written ([] when missing)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _entry_texts(entry: dict[str, Any]) -> list[str]:
    """The texts of a transcript entry's message (its content as a string, or its text blocks), stripped."""
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content.strip()]
    if isinstance(content, list):
        return [b["text"].strip() for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _calls_tools(entry: dict[str, Any]) -> bool:
    """Whether a transcript entry's message has a tool_use block."""
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)


def is_alive(proc: psutil.Process) -> bool:
    """Whether the process (pinned by its create time) still runs. A zombie counts as gone: an orphan's
    exit status waits for PID 1 to reap it, which may never happen in a container."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, or caught between the CLI's truncate and write
        return {}
    return data if isinstance(data, dict) else {}
