"""The one test world: a sandboxed user with the shim installed in front of a stand-in claude, real processes,
and cleanup of every process a test started (by pid and start token; nothing is ever signalled by name).

- The stand-in is tests/fixtures/standin/claude.py, installed as an executable NAMED `claude` (proc.claude_args
  recognises `python3 /x/claude ...`); its options (STANDIN_* for the launch tests, SWEEP_* for the sweep
  tests) are listed at its top. It records itself, can write a Claude-style ~/.claude/sessions/<pid>.json,
  hold memory, ignore SIGTERM, start a child in its own session (as Claude's Bash tool does) that outlives it,
  and run a command from inside itself (a `reap` run from inside a session).
- The host (fixtures/standin/host.py) is the stand-in's parent (a terminal's shell, an SDK host): killing it
  makes the stand-in an orphan.
- The nursery (fixtures/standin/nursery.py) is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans are
  handed to it instead of to PID 1, and it reaps every one of them and writes down how each ended ("pid
  status" lines). PID 1 of a container does not always reap (this machine's does not), and a test must reap
  what it started. It starts with the first process a test spawns through it.

Two fixtures make the world: `guard` (conftest.py: the launch tests; the shim finds the real claude on PATH,
sessions started around the guard are not counted) and `box` (here: the sweep tests; the real claude named by
CLAUDE_GUARD_REAL_CLAUDE, the stand-in records SWEEP_* facts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs
from standin import write_standin

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "standin"


def wait_for(predicate: Callable[[], object], timeout: float = 60, what: str = "condition") -> None:
    """The one wait of the tests: until `predicate()` is true, failing after `timeout` seconds (a bound for a
    stuck test, never an assertion about time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Sandbox:
    """A private user world (HOME, state, config, ~/.claude in tmp) with the shim installed in front of a
    stand-in claude, and bookkeeping of every process started. `sweep`: the sweep tests' world (see the
    module docstring), else the launch tests'."""

    def __init__(self, tmp: Path, *, sweep: bool = True) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.record = tmp / "record"
        self.record.mkdir()
        self.real_dir = tmp / "real"
        self.claude = self.real = write_standin(self.real_dir, sys.executable)
        self.host = FIXTURES / "host.py"
        self.shim_dir = tmp / "shim"
        self.claude_dir = self.home / ".claude"
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.config = self.home / ".config" / "claude-guard" / "config.toml"
        self.env = {
            "HOME": str(self.home),
            "PATH": os.pathsep.join([str(self.shim_dir), str(self.real_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "LANG": "C.UTF-8",
            # Other Claude sessions of this user (a developer's own, another test run, another helper's benchmark
            # of hundreds) must not fill the cap a launch here is judged by; the tests of unguarded counting turn
            # this back on.
            "CLAUDE_GUARD_COUNT_UNGUARDED": "false",
        }
        if sweep:
            self.env.update({"CLAUDE_GUARD_REAL_CLAUDE": str(self.claude), "SWEEP_RECORD": str(self.record),
                             "NO_COLOR": "1"})
            # The sweep tests' programs live in the sandbox's bin folder (some put their own there too).
            self.host = tmp / "bin" / "host.py"
            self.host.parent.mkdir()
            self.host.write_text((FIXTURES / "host.py").read_text())
        else:
            self.env["STANDIN_RECORD"] = str(self.record)
        self.started: list[tuple[int, str]] = []
        self.popens: list[subprocess.Popen[bytes]] = []
        self.procs = self.popens  # the launch tests' name for the processes they started
        self.statuses = tmp / "nursery.log"
        self._nursery: subprocess.Popen[bytes] | None = None
        r = self.install()
        assert r.returncode == 0, r.stderr

    @property
    def nursery(self) -> subprocess.Popen[bytes]:
        if self._nursery is None:
            self._nursery = self._popen([sys.executable, str(FIXTURES / "nursery.py"), str(self.statuses)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        return self._nursery

    @property
    def shim(self) -> Path:
        return self.shim_dir / "claude"

    def install(self, folder: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("install", "--dir", str(folder or self.shim_dir), check=True)

    # -- bookkeeping
    def remember(self, pid: int) -> int:
        start = procs.start_token(pid)
        if start:
            self.started.append((pid, start))
        return pid

    def _popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, **kw)
        self.popens.append(p)
        self.remember(p.pid)
        return p

    def spawn(self, argv: list[str]) -> int:
        """Start `argv` as a child of the nursery; its pid."""
        assert self.nursery.stdin is not None and self.nursery.stdout is not None
        self.nursery.stdin.write((json.dumps(argv) + "\n").encode())
        self.nursery.stdin.flush()
        return self.remember(int(self.nursery.stdout.readline()))

    def cleanup(self) -> None:
        nursery = self._nursery
        skip = nursery.pid if nursery is not None else 0
        for p in self.popens:
            if p is not nursery and p.poll() is None:
                self.remember(p.pid)  # an unwaited child of ours (a test may add its own): its pid is still its
        for pid, start in reversed(self.started):
            if pid != skip and procs.alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.popens:
            if p is not nursery:
                try:
                    p.communicate(timeout=10)
                except (subprocess.TimeoutExpired, ValueError):
                    pass
        if nursery is None:
            return
        # Let the nursery reap what was handed to it, then stop it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(procs.alive(p, s) for p, s in self.started if p != skip):
            time.sleep(0.02)
        nursery.send_signal(signal.SIGTERM)
        try:
            if nursery.stdin is not None:
                nursery.stdin.close()
            nursery.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nursery.kill()
            nursery.wait()

    # -- running things
    def cli(self, *args: str, env: dict[str, str] | None = None, check: bool = False,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`claude-guard ARGS`; with `check`, a failure fails the test."""
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
              **kw: Any) -> subprocess.Popen[bytes]:
        """Start `claude ARGS` through the shim (or `cmd`) in the background; cleaned up at teardown."""
        return self._popen([str(cmd or self.shim), *args], env={**self.env, **(env or {})},
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def wait_recorded(self, pid: int, timeout: float = 60) -> dict[str, Any]:
        """Wait for the stand-in running as `pid` to record itself."""
        return self.wait_file(f"{pid}.json", timeout)

    def write_config(self, text: str) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)

    def reap(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """`reap --json ARGS`, limited to sessions working under this sandbox (other people's tests may run
        stand-ins on this machine too); returns the report (asserting it ran)."""
        r = self.cli("reap", "--json", "--under", str(self.tmp), *args, env=env)
        assert r.returncode in (0, 1), r.stderr
        report: dict[str, Any] = json.loads(r.stdout)
        report["rc"] = r.returncode
        return report

    def ps(self, *args: str) -> list[dict[str, Any]]:
        r = self.cli("ps", "--json", "--under", str(self.tmp), *args)
        assert r.returncode == 0, r.stderr
        rows: list[dict[str, Any]] = json.loads(r.stdout)
        return rows

    def ps_row(self, pid: int) -> dict[str, Any]:
        rows = [r for r in self.ps() if r["pid"] == pid]
        assert rows, f"PID {pid} not listed by ps"
        return rows[0]

    def ps_state(self, pid: int) -> str | None:
        rows = [r for r in self.ps() if r["pid"] == pid]
        return rows[0]["state"] if rows else None

    def session(self, *args: str, guarded: bool = True, env: dict[str, str] | None = None,
                pty: str | None = None, pipes: bool = False, cwd: Path | None = None,
                middle: bool = False, interpreter: str = sys.executable) -> Standin:
        """Start a stand-in under a host (through the shim unless `guarded` is False); returns once it has
        recorded itself. `pty` is the path of a terminal to give it as stdio; `interpreter` runs the host
        (a link named otherwise gives the host that process name)."""
        program = str(self.shim_dir / "claude") if guarded else str(self.claude)
        pidfile = self.tmp / f"host-{uuid.uuid4().hex}.pid"
        spec = {"argv": [program, *args], "env": {**self.env, **(env or {})}, "pty": pty, "pipes": pipes,
                "cwd": str(cwd or self.tmp), "pidfile": str(pidfile), "middle": middle}
        host = self.spawn([interpreter, str(self.host), json.dumps(spec)])
        wait_for(pidfile.exists, 60, "the host to start its claude")
        pid = self.remember(int(pidfile.read_text()))
        if middle:
            self.remember(ppid(pid) or 0)
        record = self.wait_file(f"{pid}.json")
        for kid in record["kids"].values():
            self.remember(kid)
        return Standin(self, pid, host, record)

    def wait_file(self, name: str, timeout: float = 60) -> dict[str, Any]:
        path = self.record / name
        wait_for(path.exists, timeout, f"{name} to be written")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def adopted_status(self, pid: int, timeout: float = 30) -> int:
        """The wait status the nursery saw for an orphan it reaped."""
        found: list[int] = []

        def seen() -> bool:
            if self.statuses.exists():
                for line in self.statuses.read_text().splitlines():
                    p, s = line.split()
                    if int(p) == pid:
                        found.append(int(s))
                        return True
            return False

        wait_for(seen, timeout, f"the nursery to reap PID {pid}")
        return found[0]

    def orphan(self, s: Standin) -> None:
        """Kill the stand-in's parent (its host, or the middle process): the stand-in is handed to the
        nursery."""
        parent = ppid(s.pid)
        assert parent and any(parent == pid and procs.alive(pid, start) for pid, start in self.started), \
            "the parent is not a process this test started"
        os.kill(parent, signal.SIGKILL)
        # Or already ended: a `reap --watch` the test runs may take the new orphan before this sees it adopted.
        wait_for(lambda: ppid(s.pid) == self.nursery.pid or not s.alive, 30, f"PID {s.pid} to be reparented")

    def registry(self) -> dict[str, Any]:
        path = self.state / "registry.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"sessions": [], "waiters": []}
        return data


class Standin:
    def __init__(self, box: Sandbox, pid: int, host: int, record: dict[str, Any]) -> None:
        self.box, self.pid, self.host, self.record = box, pid, host, record
        self.start = procs.start_token(pid)
        self.host_start = procs.start_token(host)

    @property
    def alive(self) -> bool:
        return procs.alive(self.pid, self.start)

    def kid(self, name: str) -> tuple[int, str | None]:
        pid = int(self.record["kids"][name])
        return pid, procs.start_token(pid)


def ppid(pid: int) -> int | None:
    proc = procs.read(pid)
    return proc.ppid if proc else None


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    if not procs.LINUX:
        pytest.skip("the sweep tests use /proc and a child subreaper (Linux)")
    b = Sandbox(tmp_path)
    try:
        yield b
    finally:
        b.cleanup()
