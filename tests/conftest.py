"""Shared fixtures: a private HOME per test, stand-in claude executables, an installed shim, and cleanup
of every process a test started (by PID; never by name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standin import write_standin

REPO = Path(__file__).resolve().parent.parent


class Guard:
    """A sandboxed user: HOME, state and config in tmp, a stand-in real claude, and the shim ahead of it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.real_dir = tmp / "real"
        self.shim_dir = tmp / "shim"
        self.record = tmp / "record"
        self.record.mkdir()
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.config = self.home / ".config" / "claude-guard" / "config.toml"
        self.real = write_standin(self.real_dir, sys.executable)
        self.env = {
            "HOME": str(self.home),
            "PATH": os.pathsep.join([str(self.shim_dir), str(self.real_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "STANDIN_RECORD": str(self.record),
            "LANG": "C.UTF-8",
            # Other Claude sessions of this user (a developer's own, another test run) must not change what a
            # cap test sees; the tests of unguarded counting turn this back on.
            "CLAUDE_GUARD_COUNT_UNGUARDED": "false",
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.install()

    @property
    def shim(self) -> Path:
        return self.shim_dir / "claude"

    def install(self, folder: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("install", "--dir", str(folder or self.shim_dir))

    def cli(self, *args: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "claude_guard", *args], env={**self.env, **(env or {})},
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"claude-guard {' '.join(args)} failed {r.returncode}: {r.stderr}")
        return r

    def run(self, *args: str | bytes, env: dict[str, str] | None = None, timeout: float = 120,
            cmd: str | Path | None = None,
            stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[bytes]:
        """Run `claude ARGS` through the shim (or `cmd`), waiting for it."""
        return subprocess.run([str(cmd or self.shim), *args], env={**self.env, **(env or {})}, capture_output=True,
                              timeout=timeout, stdin=stdin)

    def start(self, *args: str, env: dict[str, str] | None = None, cmd: str | Path | None = None,
              **kw: object) -> subprocess.Popen[bytes]:
        """Start `claude ARGS` through the shim (or `cmd`) in the background; cleaned up at teardown."""
        p = subprocess.Popen([str(cmd or self.shim), *args], env={**self.env, **(env or {})},
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def wait_recorded(self, pid: int, timeout: float = 60) -> dict[str, object]:
        """Wait for the stand-in running as `pid` to record itself."""
        import json

        path = self.record / f"{pid}.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return json.loads(path.read_text())  # type: ignore[no-any-return]
            time.sleep(0.02)
        raise AssertionError(f"stand-in {pid} never recorded itself")

    def registry(self) -> dict[str, object]:
        import json

        path = self.state / "registry.json"
        return json.loads(path.read_text()) if path.exists() else {"sessions": [], "waiters": []}

    def write_config(self, text: str) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Guard]:
    g = Guard(tmp_path)
    try:
        yield g
    finally:
        g.cleanup()


def wait_for(predicate: object, timeout: float = 60, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
