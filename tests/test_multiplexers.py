"""A session in a tmux or screen session that no client is attached to counts as detached for the idle rules:
real tmux and screen servers on private sockets, real clients attached in ptys, stand-in sessions."""

from __future__ import annotations

import os
import pty
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweepkit import Sandbox, box, new_id, wait_for

__all__ = ["box"]

IDLE = {"SWEEP_STATUS": "idle", "SWEEP_STATUS_AGE": "7200"}  # idle two hours by Claude's own status


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/install-test-deps installs it with apt-get as root)")
    return path


def judged(box: Sandbox, pid: int, *extra: str) -> tuple[dict[str, Any], str]:
    """(ps row, what reap --dry-run does with it: "idle" when planned, else the reason it was kept)."""
    row = box.ps_row(pid)
    report = box.reap("--dry-run", "--idle-after", "1h", "--min-age", "0", *extra)
    for a in report["actions"]:
        if a["pid"] == pid:
            return row, a["reason"]
    return row, next(s["why"] for s in report["skipped"] if s["pid"] == pid)


class Client:
    """A client attached in a pty (`tmux attach`, `screen -r`), started and ended by PID."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            os.execvpe(argv[0], argv, {**env, "TERM": "xterm"})

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.master)


def user_x(path: Path) -> bool:
    return bool(os.stat(path).st_mode & stat.S_IXUSR)


@pytest.fixture
def tmux(box: Sandbox) -> Iterator[tuple[str, Path]]:
    exe = needs("tmux")
    sock = box.tmp / "tmux.sock"
    try:
        yield exe, sock
    finally:
        subprocess.run([exe, "-S", str(sock), "kill-server"], capture_output=True, timeout=30)


def test_an_idle_session_in_a_tmux_nobody_is_attached_to_is_detached(box: Sandbox, tmux: tuple[str, Path]) -> None:
    exe, sock = tmux
    env = {**box.env, **IDLE, "SWEEP_SESSION": new_id()}
    env.pop("TMUX", None)
    # Several words: tmux runs them itself (no shell); `env` execs the shim, which execs claude: the pane's PID.
    subprocess.run([exe, "-S", str(sock), "new-session", "-d", "-c", str(box.tmp), "env", "IN_TMUX=1",
                    str(box.shim)], env=env, check=True, timeout=30)
    pane = subprocess.run([exe, "-S", str(sock), "display-message", "-p", "-t", "%0", "#{pane_pid}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    pid = box.remember(int(pane))
    box.wait_recorded(pid)

    row, fate = judged(box, pid)
    assert row["terminal"] and row["terminal"].startswith("/dev/pts/")
    assert row["attached"] is False and row["no_client"] == "tmux" and fate == "idle"
    table = box.cli("ps", "--under", str(box.tmp), env={"COLUMNS": "250"}).stdout
    assert "(tmux, no client)" in table
    kept = box.cli(  # the setting off: a multiplexer's terminal is a terminal like any other
"reap", "--dry-run", "--json", "--under", str(box.tmp), "--idle-after", "1h", "--min-age", "0",
                   env={"CLAUDE_GUARD_MULTIPLEXER_DETACHED": "false"})
    assert f'"pid": {pid}' in kept.stdout and "attached to live terminal" in kept.stdout

    client = Client([exe, "-S", str(sock), "attach"], box.env)
    try:
        wait_for(lambda: user_x(sock), 30, "tmux to mark its socket: a client is attached")
        row, fate = judged(box, pid)
        assert row["attached"] is True and row["no_client"] is None
        assert fate.startswith("attached to live terminal")
    finally:
        client.close()
    wait_for(lambda: not user_x(sock), 30, "tmux to see its client gone")
    row, fate = judged(box, pid)
    assert row["no_client"] == "tmux" and fate == "idle"


def test_tmux_is_asked_which_session_has_the_client(box: Sandbox, tmux: tuple[str, Path]) -> None:
    """One server, two sessions, a client on the other one: the socket says "someone is attached", tmux says
    not to this session."""
    exe, sock = tmux
    env = {**box.env, **IDLE, "SWEEP_SESSION": new_id()}
    subprocess.run([exe, "-S", str(sock), "new-session", "-d", "-s", "work", "-c", str(box.tmp), "env", "X=1",
                    str(box.shim)], env=env, check=True, timeout=30)
    subprocess.run([exe, "-S", str(sock), "new-session", "-d", "-s", "other", "sleep", "600"], env=box.env,
                   check=True, timeout=30)
    pane = subprocess.run([exe, "-S", str(sock), "display-message", "-p", "-t", "work:", "#{pane_pid}"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    pid = box.remember(int(pane))
    box.wait_recorded(pid)
    client = Client([exe, "-S", str(sock), "attach", "-t", "other"], box.env)
    try:
        wait_for(lambda: user_x(sock), 30, "a client on the other session")
        row, fate = judged(box, pid)
        assert row["no_client"] == "tmux" and fate == "idle"
    finally:
        client.close()


def test_a_tmux_variable_alone_proves_nothing(box: Sandbox, tmux: tuple[str, Path]) -> None:
    """A session in a real terminal whose environment merely names a detached tmux server (inherited, or set
    by hand) stays attached: the server is not its ancestor."""
    exe, sock = tmux
    subprocess.run([exe, "-S", str(sock), "new-session", "-d", "sleep", "600"], env=box.env, check=True, timeout=30)
    server = subprocess.run([exe, "-S", str(sock), "display-message", "-p", "#{pid}"], capture_output=True,
                            text=True, check=True, timeout=30).stdout.strip()
    master, slave = os.openpty()
    try:
        s = box.session(pty=os.ttyname(slave), env={**IDLE, "SWEEP_SESSION": new_id(),
                                                   "TMUX": f"{sock},{server},0", "TMUX_PANE": "%0"})
        os.close(slave)
        row, fate = judged(box, s.pid)
        assert row["attached"] is True and row["no_client"] is None
        assert fate.startswith("attached to live terminal")
    finally:
        os.close(master)


def test_an_idle_session_in_a_detached_screen_is_detached(box: Sandbox, tmp_path: Path) -> None:
    exe = needs("screen")
    screens = tmp_path / "screens"
    screens.mkdir(mode=0o700)
    name = f"cg{os.getpid()}"
    env = {**box.env, **IDLE, "SWEEP_SESSION": new_id(), "SCREENDIR": str(screens)}
    subprocess.run([exe, "-dmS", name, "env", "IN_SCREEN=1", str(box.shim)], env=env, cwd=box.tmp, check=True,
                   timeout=30)
    try:
        wait_for(lambda: any(screens.iterdir()), 30, "screen's socket")
        sty = next(screens.iterdir()).name
        server = box.remember(int(sty.split(".")[0]))
        kids = Path(f"/proc/{server}/task/{server}/children")
        wait_for(lambda: kids.read_text().split() != [], 30, "screen's window")
        pid = box.remember(int(kids.read_text().split()[0]))
        box.wait_recorded(pid)
        row, fate = judged(box, pid)
        assert row["attached"] is False and row["no_client"] == "screen" and fate == "idle"

        client = Client([exe, "-r", name], {**box.env, "SCREENDIR": str(screens)})
        try:
            wait_for(lambda: user_x(screens / sty), 30, "screen to mark its socket: attached")
            row, fate = judged(box, pid)
            assert row["attached"] is True and fate.startswith("attached to live terminal")
            subprocess.run([exe, "-d", name], env={**box.env, "SCREENDIR": str(screens)}, capture_output=True,
                           timeout=30)
            wait_for(lambda: not user_x(screens / sty), 30, "screen to see the client detach")
        finally:
            client.close()
        row, fate = judged(box, pid)
        assert row["no_client"] == "screen" and fate == "idle"
    finally:
        subprocess.run([exe, "-S", name, "-X", "quit"], env={**box.env, "SCREENDIR": str(screens)},
                       capture_output=True, timeout=30)
        time.sleep(0.2)
