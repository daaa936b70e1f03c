"""The Windows side, run for real under Wine: scripts/test-windows builds a Windows CPython environment (cached)
and runs the Windows suite in it (tests/test_win_*, tests/test_runner.py, the sweep portability tests and the
end-to-end launch in tests/test_win_e2e.py). test_windows_suite_under_wine fails when that suite fails.

What a Windows test cannot do from inside, this side does: a Ctrl-C typed at a console. Wine gives a program
started on a Unix terminal a console, and turns the terminal's ^C into CTRL_C_EVENT for every process of it,
as a Windows console does for a key press.

Both skip, saying why, when Wine cannot be installed here (not amd64, no apt-get, no root), or when
CLAUDE_GUARD_TEST_WINE=0. scripts/test prepares Wine first and says so plainly when it skips.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CANNOT = 3  # scripts/test-windows: Wine cannot be installed here
DEADLINE = 120.0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Wine harness runs on Linux")


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/test-windows ARGS; skips the test when Wine cannot be installed or was not asked for."""
    if os.environ.get("CLAUDE_GUARD_TEST_WINE", "1") == "0":
        pytest.skip("CLAUDE_GUARD_TEST_WINE=0: the Windows suite under Wine was not asked for")
    done = subprocess.run(["bash", str(REPO / "scripts" / "test-windows"), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=3600, check=False)
    if done.returncode == CANNOT:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no reason given"
        pytest.skip(f"Wine cannot be installed here: {reason}")
    return done


def windows_path(path: Path) -> str:
    return "Z:" + str(path).replace("/", "\\")


@linux_only
def test_windows_suite_under_wine() -> None:
    done = harness()
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
    assert done.returncode == 0, f"scripts/test-windows failed ({done.returncode}):\n{tail}"
    assert " passed" in done.stdout, tail  # pytest ran under Wine, and ran something



@linux_only
def test_ctrl_c_at_the_console_reaches_claude_once_and_its_status_comes_back(tmp_path: Path) -> None:
    """^C at the terminal: claude (the stand-in) gets exactly one CTRL_C_EVENT and decides (exits 130); the
    guard, which ignores it, stays until claude ends and returns claude's status."""
    ready = harness("--setup-only")
    assert ready.returncode == 0, ready.stderr[-3000:]
    cache = Path(os.environ.get("CLAUDE_GUARD_TEST_CACHE") or REPO / ".cache") / "wine"
    wine_env = {**os.environ, "WINEPREFIX": str(cache / "prefix"), "WINEDEBUG": "-all", "WINEARCH": "win64",
                "WINEDLLOVERRIDES": "mscoree,mshtml="}
    wine_env.pop("DISPLAY", None)
    if not (cache / "cmdshim" / "npm" / "claude.cmd").is_file():
        pytest.skip("no claude.cmd from npm's cmd-shim (scripts/install-test-deps installs cmd-shim)")
    prepared = subprocess.run(
        ["wine", "C:\\venv\\Scripts\\python.exe", windows_path(REPO / "tests" / "test_win_e2e.py"),
         windows_path(tmp_path / "box"), windows_path(cache / "cmdshim" / "npm")],
        env=wine_env, stdin=subprocess.DEVNULL, capture_output=True, timeout=DEADLINE,
        check=False)
    assert prepared.returncode == 0, prepared.stderr.decode(errors="replace")
    box = json.loads(prepared.stdout.decode().strip().splitlines()[-1])
    env = {**wine_env, **{k: v for k, v in box["env"].items() if k.upper() != "PATH"}}
    env["WINEPATH"] = box["env"]["PATH"]  # Wine builds the Windows PATH from this and its registry
    env.update({"STANDIN_SLEEP": "60", "STANDIN_SIGINT": "1"})
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes wine running the shim, on the pty (Wine makes it a console)
        try:
            os.execvpe("wine", ["wine", box["shim"], "-p", "hello"], env)
        finally:
            os._exit(127)
    output = b""
    try:
        output = _until(fd, b"stand-in ready", output)
        os.write(fd, b"\x03")  # the key press: the terminal driver and Wine's console turn it into Ctrl-C
        output = _until(fd, None, output)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)  # our own child (wine), by PID
            os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 130, text
    assert json.loads((tmp_path / "box" / "record" / "sigint.json").read_text()) == 1, text


def _until(fd: int, marker: bytes | None, output: bytes) -> bytes:
    """Read the pty until `marker` shows (None: until it closes)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if marker is not None and marker in output:
            return output
        readable, _, _ = select.select([fd], [], [], 0.5)
        if not readable:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            data = b""
        if not data:
            if marker is None:
                return output
            break
        output += data
    raise AssertionError(f"gave up waiting for {marker!r}; output:\n{output.decode(errors='replace')}")
