"""Real processes for the sweep tests: a stand-in `claude`, a host that plays its parent, and a nursery.

- The stand-in is a Python script NAMED `claude` (procs.claude_args recognises `python3 /x/claude ...`). It
  records itself, can write a Claude-style ~/.claude/sessions/<pid>.json (status idle/busy, and since when),
  hold some memory, ignore SIGTERM, start a child in its own session (as Claude's Bash tool does) that
  outlives it, and run a command from inside itself (a `reap` run from inside a session). Its children get
  the markers Claude gives them: CLAUDE_CODE_SESSION_ID and CLAUDE_PID.
- The host is the stand-in's parent (a terminal's shell, an SDK host): killing it makes the stand-in an
  orphan.
- The nursery is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans are handed to it instead of to
  PID 1, and it reaps every one of them and writes down how each ended ("pid status" lines). PID 1 of a
  container does not always reap (this machine's does not), and a test must reap what it started.

Every process a Sandbox starts is remembered by pid and start token and killed (SIGKILL) at teardown, if
still that very process; nothing is ever signalled by name.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "realclaude"

STANDIN = r'''#!{python}
import json, os, shlex, signal, subprocess, sys, time
if sys.argv[1:] == ["--version"]:
    print("2.1.330 (Claude Code stand-in)")
    sys.exit(0)
if sys.argv[1:] == ["--help"]:  # the real 2.1.330 help, for doctor's option table check
    sys.stdout.write(open(os.path.join({fixtures!r}, "help-2.1.330.txt")).read())
    sys.exit(0)
rec = os.environ["SWEEP_RECORD"]
me = os.getpid()
def write(name, data):
    tmp = os.path.join(rec, f".{me}.{name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, os.path.join(rec, f"{me}.{name}"))
def on_term(signum, frame):
    write("signal", {"signal": signum})
    os._exit(128 + signum)
# SIGUSR1: become another program (same pid, same start time), as a process may exec at any moment.
other = [sys.executable, "-c", "import time; time.sleep(3600)"]
signal.signal(signal.SIGUSR1, lambda *a: os.execv(sys.executable, other))
if os.environ.get("SWEEP_OWN_GROUP"):
    os.setpgid(0, 0)  # leads its own process group, as claude started by a shell's job control or setsid does
if os.environ.get("SWEEP_NOHUP"):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # survives its terminal's hang-up, as `nohup` would
if os.environ.get("SWEEP_TRAP") == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
hold = bytearray(int(float(os.environ.get("SWEEP_ALLOC_MB", "0")) * 1024 * 1024))
for i in range(0, len(hold), 4096):
    hold[i] = 1  # touch every page so it counts as resident
session = os.environ.get("SWEEP_SESSION") or ""
status = os.environ.get("SWEEP_STATUS")
if status:
    folder = os.path.join(os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude"), "sessions")
    os.makedirs(folder, exist_ok=True)
    with open(f"/proc/{me}/stat", "rb") as f:
        start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    now = time.time()
    since = now - float(os.environ.get("SWEEP_STATUS_AGE", "0"))
    with open(os.path.join(folder, f"{me}.json"), "w") as f:
        json.dump({"pid": me, "sessionId": session, "procStart": start, "status": status,
                   "statusUpdatedAt": int(since * 1000), "cwd": os.getcwd(), "kind": "interactive",
                   "entrypoint": os.environ.get("SWEEP_ENTRYPOINT", "cli"), "startedAt": int(now * 1000),
                   "name": os.environ.get("SWEEP_NAME")}, f)
child_env = dict(os.environ, CLAUDE_CODE_SESSION_ID=session, CLAUDE_PID=str(me), CLAUDECODE="1")
kids = {}
if os.environ.get("SWEEP_GRANDCHILD"):
    # A Bash-tool call as the real CLI makes one: a tool shell that leads its own session and process group,
    # `bash -c "... eval '<command>' < /dev/null && pwd -P >| <tmp>/claude-<hex>-cwd"`, running the command
    # as its child. With "orphaned" the command starts a grandchild and exits (`cmd &`, then the tool shell
    # exits): the grandchild leaves the tree while this claude is still alive.
    code = "import time; time.sleep(3600)"
    if os.environ["SWEEP_GRANDCHILD"] == "orphaned":
        code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; "
                "time.sleep(3600)']); print(p.pid, flush=True)")
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-c", code))
    cwd_file = f"{rec}/claude-{os.urandom(2).hex()}-cwd"
    tool = ["bash", "-c", f"eval {shlex.quote(command)} < /dev/null && pwd -P >| {cwd_file}"]
    if os.environ["SWEEP_GRANDCHILD"] == "plain":
        tool = [sys.executable, "-c", code]  # a child in its own session that does not look like a tool shell
    p = subprocess.Popen(tool, env=child_env, start_new_session=True,
                         stdout=subprocess.PIPE if os.environ["SWEEP_GRANDCHILD"] == "orphaned" else None,
                         stdin=subprocess.DEVNULL)
    kids["child"] = p.pid
    if os.environ["SWEEP_GRANDCHILD"] == "orphaned":
        kids["grandchild"] = int(p.stdout.readline())
        p.wait()
    elif os.environ["SWEEP_GRANDCHILD"] != "plain":
        while "command" not in kids:  # the command the tool shell runs (recorded so a test can clean it up)
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                found = f.read().split()
            if found:
                kids["command"] = int(found[0])
            else:
                time.sleep(0.01)
if os.environ.get("SWEEP_HELPER"):
    # One of claude's own helpers (an MCP server): in claude's process group, with the session id but no
    # CLAUDE_PID. With "orphaned", the helper's own child outlives it (a wrapper that exited).
    helper_env = {k: v for k, v in child_env.items() if k != "CLAUDE_PID"}
    helper_env["CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS"] = session
    code = "import time; time.sleep(3600)"
    if os.environ["SWEEP_HELPER"] == "orphaned":
        code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; "
                "time.sleep(3600)']); print(p.pid, flush=True)")
    p = subprocess.Popen([sys.executable, "-c", code], env=helper_env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE if os.environ["SWEEP_HELPER"] == "orphaned" else None)
    kids["helper"] = p.pid
    if os.environ["SWEEP_HELPER"] == "orphaned":
        kids["helper_child"] = int(p.stdout.readline())
        p.wait()
write("json", {"pid": me, "ppid": os.getppid(), "argv": sys.argv[1:], "kids": kids,
               "cookie": os.environ.get("CLAUDE_GUARD_COOKIE")})
run = os.environ.get("SWEEP_RUN")
if run:
    trigger = os.path.join(rec, f"{me}.go")
    while not os.path.exists(trigger):
        time.sleep(0.02)
    r = subprocess.run(json.loads(run), env=child_env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    write("run", {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr})
if os.environ.get("SWEEP_BURN"):
    while True:  # a busy session: CPU all the time
        pass
time.sleep(float(os.environ.get("SWEEP_SLEEP", "3600")))
'''

# The parent of a stand-in (a terminal's shell, an SDK host): starts the command of the JSON spec in argv[1]
# with pipes, /dev/null, or a terminal as its stdio, writes the child's pid to spec["pidfile"] and waits.
# With a terminal it is that terminal's session leader and controlling process, as a login shell is (the
# stand-in gets the terminal as its controlling terminal). With "middle", one more process stands between
# it and the stand-in (`timeout claude`, a wrapper): killing that one orphans the stand-in and leaves the
# terminal alone. The test kills the host or the middle to orphan the stand-in.
HOST = r'''
import json, os, subprocess, sys, time
spec = json.loads(sys.argv[1])
tty = None
if spec.get("pty"):
    os.setsid()
    tty = os.open(spec["pty"], os.O_RDWR)  # the first terminal a session leader opens becomes its controlling one
pipe = subprocess.PIPE if spec.get("pipes") else subprocess.DEVNULL
argv = spec["argv"]
if spec.get("middle"):
    argv = [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen(sys.argv[1:]); "
            "print(p.pid, flush=True); p.wait(); import time; time.sleep(3600)", *argv]
p = subprocess.Popen(argv, env=spec["env"], cwd=spec.get("cwd"),
                     stdin=tty if tty is not None else pipe, stdout=subprocess.PIPE if spec.get("middle") else
                     (tty if tty is not None else pipe), stderr=tty if tty is not None else subprocess.DEVNULL)
pid = int(p.stdout.readline()) if spec.get("middle") else p.pid
with open(spec["pidfile"] + ".tmp", "w") as f:
    f.write(str(pid))
os.replace(spec["pidfile"] + ".tmp", spec["pidfile"])
p.wait()
time.sleep(3600)
'''

# A child subreaper: starts the commands it is sent (one JSON argv per line on stdin, answering each with the
# pid), so that everything under them is handed to it when their parents die; reaps every child and
# adopted orphan, logging "pid status"; stops on SIGTERM or when stdin closes.
NURSERY = r'''
import ctypes, json, os, select, signal, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl failed")
log = open(sys.argv[1], "a", buffering=1)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
while True:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if not pid:
            break
        log.write(f"{pid} {status}\n")
    if stop:
        break
    ready, _, _ = select.select([sys.stdin], [], [], 0.02)
    if ready:
        line = sys.stdin.readline()
        if not line:
            stop.append(1)
            continue
        argv = json.loads(line)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        p.returncode = 0  # reaped by the loop above, not by Popen
        print(p.pid, flush=True)
'''


def _script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text.replace("{python}", sys.executable).replace("{fixtures!r}", repr(str(FIXTURES))))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class Sandbox:
    """A private user world (HOME, state, config, ~/.claude in tmp) with the shim installed in front of a
    stand-in claude, a nursery, and bookkeeping of every process started."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.record = tmp / "record"
        self.record.mkdir()
        self.claude = _script(tmp / "real", "claude", STANDIN)
        self.host = _script(tmp / "bin", "host.py", HOST)
        self.shim_dir = tmp / "shim"
        self.claude_dir = self.home / ".claude"
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.env = {
            "HOME": str(self.home),
            "PATH": os.pathsep.join([str(self.shim_dir), str(tmp / "real"), "/usr/local/bin", "/usr/bin", "/bin"]),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "CLAUDE_GUARD_REAL_CLAUDE": str(self.claude),
            "SWEEP_RECORD": str(self.record),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            # Other Claude sessions of this user (other tests, a developer's own) must not fill the cap.
            "CLAUDE_GUARD_COUNT_UNGUARDED": "false",
        }
        self.started: list[tuple[int, str]] = []
        self.popens: list[subprocess.Popen[bytes]] = []
        self.statuses = tmp / "nursery.log"
        self.nursery = self._popen([sys.executable, "-c", NURSERY, str(self.statuses)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, start_new_session=True)
        r = self.cli("install", "--dir", str(self.shim_dir))
        assert r.returncode == 0, r.stderr

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
        nursery = self.nursery
        for pid, start in reversed(self.started):
            if pid != nursery.pid and procs.alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.popens:
            if p is not nursery:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        # Let the nursery reap what was handed to it, then stop it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(procs.alive(p, s) for p, s in self.started if p != nursery.pid):
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
    def cli(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "claude_guard", *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

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
                middle: bool = False) -> Standin:
        """Start a stand-in under a host (through the shim unless `guarded` is False); returns once it has
        recorded itself. `pty` is the path of a terminal to give it as stdio."""
        program = str(self.shim_dir / "claude") if guarded else str(self.claude)
        pidfile = self.tmp / f"host-{uuid.uuid4().hex}.pid"
        spec = {"argv": [program, *args], "env": {**self.env, **(env or {})}, "pty": pty, "pipes": pipes,
                "cwd": str(cwd or self.tmp), "pidfile": str(pidfile), "middle": middle}
        host = self.spawn([sys.executable, str(self.host), json.dumps(spec)])
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
        wait_for(lambda: ppid(s.pid) == self.nursery.pid, 30, f"PID {s.pid} to be reparented")

    def registry(self) -> dict[str, Any]:
        path = self.state / "registry.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"sessions": []}
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


def wait_for(predicate: Callable[[], object], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


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
