"""The Windows runner, with real processes: exit statuses, the Job Object ending the tree, console events.

Windows has no exec, so the guard runs claude as a child there (POSIX execs, and the runner refuses to run).
These tests run under Wine (scripts/test-windows, tests/test_wine.py); on Linux only the refusal and the
structure layouts are checked. A small Python child records each console event it gets into a file. The runner
runs in-process for the plain cases and in a driver process (this file's DRIVER) whenever a test ends it.
Every test waits by polling with a generous deadline, never by timing, and reaps what it started; only PIDs the
test started are ever signalled.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from claude_guard import runner
from claude_guard.errors import ExitCode, GuardError
from claude_guard.win import job

REPO = Path(__file__).resolve().parent.parent
LINUX = sys.platform.startswith("linux")
WINDOWS = sys.platform == "win32"
DEADLINE = 30.0
# A venv's python.exe on Windows is a launcher that runs the base interpreter as its child (and may hold it in a
# job of its own): the runner's children, and the driver a test kills, must be the interpreter itself, so that
# PIDs are the real ones and only the runner's job can be what ends the tree.
PYTHON = getattr(sys, "_base_executable", sys.executable) if WINDOWS else sys.executable
windows_only = pytest.mark.skipif(not WINDOWS, reason="Job Objects and console control events exist only on Windows")

CHILD = """
import json, os, signal, sys, time
record, ready = sys.argv[1], sys.argv[2]
exit_on = {int(s) for s in sys.argv[3].split(",") if s} if len(sys.argv) > 3 else set()
names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGBREAK")
         if hasattr(signal, n)]
ignored = [int(getattr(signal, n)) for n in names if signal.getsignal(getattr(signal, n)) is signal.SIG_IGN]
if len(sys.argv) > 4 and sys.argv[4]:  # a grandchild, to show that the whole tree ends
    import subprocess
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
def on(sig, frame):
    with open(record, "a") as f:
        f.write(f"{sig}\\n")
    if sig == signal.SIGTERM:
        sys.exit(143)  # a SIGTERM trap that exits the way a shell reports the signal
    if sig in exit_on:
        sys.exit(128 + sig)
for n in names:
    sig = getattr(signal, n)
    if sig not in ignored:
        signal.signal(sig, on)
with open(ready + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "ignored": ignored}, f)
os.replace(ready + ".tmp", ready)
end = time.monotonic() + 120  # never outlive a broken test by long
while time.monotonic() < end:
    time.sleep(0.02)
sys.exit(99)
"""

DRIVER = """
import os, sys
from claude_guard import runner
mode, spawned = sys.argv[1], sys.argv[2]
def on_spawn(pid):
    with open(spawned + ".tmp", "w") as f:
        f.write(str(pid))
    os.replace(spawned + ".tmp", spawned)
sys.exit(runner.run(sys.argv[3:], dict(os.environ), on_spawn=on_spawn))
"""

def wait_for(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def gone(proc: psutil.Process) -> bool:
    """The process has ended (a zombie counts: it runs nothing); a reused PID is not the same process."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.child = tmp / "child.py"
        self.child.write_text(CHILD)
        self.driver = tmp / "driver.py"
        self.driver.write_text(DRIVER)
        self.record = tmp / "record"
        self.ready = tmp / "ready"
        self.spawned = tmp / "spawned"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.children: list[psutil.Process] = []

    def child_argv(self, exit_on: str = "", grandchild: bool = False) -> list[str]:
        return [PYTHON, str(self.child), str(self.record), str(self.ready), exit_on, "1" if grandchild else ""]

    def start(self, mode: str, exit_on: str = "", grandchild: bool = False, **popen: object) -> subprocess.Popen[bytes]:
        # On Windows the installed package runs (scripts/test-windows installs the wheel, as users get it),
        # from the venv's site-packages on the base interpreter's path.
        site = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
        path = site if WINDOWS else str(REPO / "launcher")
        env = {**os.environ, "PYTHONPATH": path}
        argv = [PYTHON, str(self.driver), mode, str(self.spawned), *self.child_argv(exit_on, grandchild)]
        proc = subprocess.Popen(argv, env=env, **popen)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def child_ready(self) -> dict[str, object]:
        wait_for(self.ready.exists, "the child to start")
        info: dict[str, object] = json.loads(self.ready.read_text())
        pid = info["pid"]
        assert isinstance(pid, int)
        self.children.append(psutil.Process(pid))
        return info

    def signals(self) -> list[int]:
        return [int(line) for line in self.record.read_text().split()] if self.record.exists() else []

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for child in self.children:
            if not gone(child):
                child.kill()  # psutil checks it is still the same process before signalling


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        s.cleanup()


# --- in process ----------------------------------------------------------------------------------------


@windows_only
@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("raise SystemExit(0)", 0),
        ("raise SystemExit(1)", 1),
        ("raise SystemExit(143)", 143),
        # TerminateProcess's exit code is the status (there is no "killed by").
        ("import os; os.kill(os.getpid(), 9)", 9),
    ],
)
def test_exit_status_is_the_childs(code: str, status: int) -> None:
    assert runner.run([PYTHON, "-c", code], dict(os.environ)) == status


@windows_only
def test_on_spawn_gets_the_real_child_pid(tmp_path: Path) -> None:
    out = tmp_path / "pid"
    seen: list[int] = []
    code = f"import os; open({str(out)!r}, 'w').write(str(os.getpid()))"
    assert runner.run([PYTHON, "-c", code], dict(os.environ), on_spawn=seen.append) == 0
    assert seen == [int(out.read_text())]


@windows_only
def test_on_spawn_failure_kills_and_reaps_the_child(tmp_path: Path) -> None:
    started: list[psutil.Process] = []

    def refuse(pid: int) -> None:
        started.append(psutil.Process(pid))
        raise GuardError("registry unusable", ExitCode.STATE)

    with pytest.raises(GuardError, match="registry unusable"):
        runner.run([PYTHON, "-c", "import time; time.sleep(60)"], dict(os.environ), on_spawn=refuse)
    assert len(started) == 1
    assert gone(started[0])


@windows_only
def test_missing_program_is_127() -> None:
    with pytest.raises(GuardError) as missing:
        runner.run(["C:\\nonexistent\\claude.exe"], {})
    assert missing.value.exit_code == ExitCode.NOT_FOUND
    with pytest.raises(GuardError):
        runner.run(["claude"], {}, command_line='"claude" -p', application="C:\\nonexistent\\claude.exe")


@pytest.mark.skipif(WINDOWS, reason="POSIX only: the launch execs claude there")
def test_posix_never_runs_claude_as_a_child(tmp_path: Path) -> None:
    """POSIX execs claude (same PID, terminal, signals); a call that reaches the runner there is a bug, said
    plainly, and nothing is started."""
    marker = tmp_path / "started"
    with pytest.raises(GuardError, match="Windows only") as refused:
        runner.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], dict(os.environ))
    assert refused.value.exit_code == ExitCode.INTERNAL
    assert not marker.exists()


def test_job_object_layout_and_clear_refusal_off_windows() -> None:
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        # The Windows x64 sizes, so the same structures are right when the module runs there.
        assert ctypes.sizeof(job.JOBOBJECT_BASIC_LIMIT_INFORMATION) == 64
        assert ctypes.sizeof(job.JOBOBJECT_EXTENDED_LIMIT_INFORMATION) == 144
    assert ctypes.sizeof(job.THREADENTRY32) == 28
    if sys.platform != "win32":
        with pytest.raises(GuardError, match="only on Windows"):
            job.KillOnCloseJob()


# --- Windows: the Job Object and the console ------------------------------------------------------------


@windows_only
def test_terminating_the_runner_ends_the_whole_tree_windows(setup: Setup) -> None:
    """TerminateProcess on the guard (Task Manager's End task) closes its only handle to the job, and Windows
    ends claude and everything claude started; the runner wrote nothing to stdout or stderr meanwhile."""
    proc = setup.start("handlers", grandchild=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    setup.child_ready()
    child = setup.children[0]
    wait_for(lambda: len(child.children()) == 1, "the child to start its grandchild")
    grandchild = child.children()[0]
    setup.children.append(grandchild)
    assert child.ppid() == proc.pid
    proc.kill()  # TerminateProcess: the runner runs no code of its own after this
    out, err = proc.communicate(timeout=DEADLINE)
    assert (out, err) == (b"", b"")
    wait_for(lambda: gone(child) and gone(grandchild), "the job to end the child and the grandchild")


@windows_only
def test_ctrl_break_reaches_the_child_once_and_the_runner_waits_windows(setup: Setup) -> None:
    """A console control event goes to every process of the console group, claude included: the runner
    ignores it and passes nothing on, so claude gets exactly one and decides (here: records it and exits with
    128 + SIGBREAK)."""
    proc = setup.start("handlers", exit_on=str(int(signal.SIGBREAK)),
                       creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    setup.child_ready()
    try:
        os.kill(proc.pid, signal.CTRL_BREAK_EVENT)  # GenerateConsoleCtrlEvent to the group the driver leads
    except OSError as e:
        if not os.environ.get("CLAUDE_GUARD_TEST_UNDER_WINE"):
            raise
        pytest.skip(f"Wine 8 does not deliver console control events to a process group ({e})")
    assert proc.wait(timeout=DEADLINE) == 128 + signal.SIGBREAK
    assert setup.signals() == [signal.SIGBREAK]
