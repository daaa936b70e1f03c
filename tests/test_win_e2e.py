"""End to end on Windows (run under Wine by scripts/test-windows): the installed `claude.exe` shim launching an
npm `claude.cmd` written by the real cmd-shim, whose target is a recording stand-in `claude.exe`.

The stand-in is a real Windows program: pip's own console-script launcher (distlib's t64.exe) with a shebang
that runs tests' RECORDER with the base interpreter, so it is `claude.exe` -> `python.exe recorder.py`,
and the recorder writes what it was given (its arguments as the C runtime parsed them, and the raw command
line) into STANDIN_RECORD. Folders have spaces, as under `C:\\Users\\Anderson Wang`.

Only processes this test started are ended, by PID, after checking they are the ones it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="runs on Windows (scripts/test-windows, under Wine)")

if sys.platform == "win32":
    import psutil

DEADLINE = 60.0
HOSTILE = ["", "x&calc", "%PATH%", 'say "hi"', "C:\\Program Files\\", "a b", "^!x|y<z>", "-p"]

RECORDER = r'''
import ctypes, json, os, subprocess, sys, time
# argv: recorder.py, the launcher's own path (distlib passes it as the script), then claude's arguments.
rec = os.environ["STANDIN_RECORD"]
k32 = ctypes.WinDLL("kernel32")
k32.GetCommandLineW.restype = ctypes.c_wchar_p
data = {"pid": os.getpid(), "launcher": os.getppid(), "argv": sys.argv[2:], "command_line": k32.GetCommandLineW()}
if os.environ.get("STANDIN_SIGINT"):  # count Ctrl-C; after the first, wait a moment for a duplicate, exit 130
    import signal
    got = []
    signal.signal(signal.SIGINT, lambda s, f: got.append(s))
if os.environ.get("STANDIN_GRANDCHILD"):
    data["grandchild"] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"]).pid
tmp = os.path.join(rec, f".{data['launcher']}.tmp")
with open(tmp, "w") as f:
    json.dump(data, f)
os.replace(tmp, os.path.join(rec, f"{data['launcher']}.json"))
if os.environ.get("STANDIN_SIGINT"):
    print("stand-in ready", file=sys.stderr, flush=True)
end = time.monotonic() + float(os.environ.get("STANDIN_SLEEP", "0"))
while time.monotonic() < end:
    time.sleep(0.05)
    if os.environ.get("STANDIN_SIGINT") and got and end - time.monotonic() > 2:
        end = time.monotonic() + 2
if os.environ.get("STANDIN_SIGINT"):
    with open(os.path.join(rec, "sigint.json"), "w") as f:
        json.dump(len(got), f)
    sys.exit(130 if got else 0)
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
'''


def make_standin_exe(path: Path, recorder: Path) -> None:
    """pip's console launcher + `#!"python.exe" "recorder.py"` + a zip: the layout distlib writes."""
    from pip._vendor import distlib

    launcher = (Path(distlib.__file__).parent / "t64.exe").read_bytes()
    python = getattr(sys, "_base_executable", sys.executable)
    shebang = f'#!"{python}" "{recorder}"\r\n'.encode()
    zipped = path.with_suffix(".zip")
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("__main__.py", "raise SystemExit('the recorder runs from the shebang')\n")
    path.write_bytes(launcher + shebang + zipped.read_bytes())
    zipped.unlink()


class Box:
    def __init__(self, tmp: Path, source: str | None = None) -> None:
        self.tmp = tmp
        self.shim_dir = tmp / "Program Files" / "claude guard bin"
        self.npm = tmp / "Users" / "Anderson Wang" / "AppData" / "Roaming" / "npm"
        self.record = tmp / "record"
        self.record.mkdir()
        source = source or os.environ.get("CLAUDE_GUARD_TEST_CMDSHIM")
        if not source:
            pytest.skip("no claude.cmd from npm's cmd-shim (scripts/test-windows writes it when node and cmd-shim "
                        "are installed)")
        shutil.copytree(source, self.npm)
        self.target = self.npm / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
        recorder = tmp / "recorder dir" / "recorder.py"
        recorder.parent.mkdir()
        recorder.write_text(RECORDER)
        make_standin_exe(self.target, recorder)
        local = tmp / "LocalAppData"
        system = os.environ.get("SYSTEMROOT", "C:\\windows")
        self.env = {
            **{k: v for k, v in os.environ.items() if k.upper() in ("SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT",
                                                                     "TEMP", "TMP", "USERPROFILE", "USERNAME")},
            "PATH": os.pathsep.join([str(self.shim_dir), str(self.npm), f"{system}\\system32", system]),
            "WIN_PD_OVERRIDE_LOCAL_APPDATA": str(local),
            "WIN_PD_OVERRIDE_APPDATA": str(tmp / "AppData"),
            "LOCALAPPDATA": str(local),
            "APPDATA": str(tmp / "AppData"),
            "CLAUDE_CONFIG_DIR": str(tmp / "dot-claude"),
            "STANDIN_RECORD": str(self.record),
            "CLAUDE_GUARD_COUNT_UNGUARDED": "false",
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started: list[psutil.Process] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).parent / "claude-guard.exe"
        return subprocess.run([str(exe), *args], env=self.env, capture_output=True, text=True, timeout=DEADLINE,
                              stdin=subprocess.DEVNULL, cwd=self.tmp)

    @property
    def shim(self) -> Path:
        return self.shim_dir / "claude.exe"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(self.shim), *args], env={**self.env, **env}, capture_output=True,
                              timeout=DEADLINE, stdin=subprocess.DEVNULL, cwd=self.tmp)

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([str(self.shim), *args], env={**self.env, **env}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmp)
        self.procs.append(p)
        return p

    def recorded(self, launcher: int | None = None) -> dict[str, object]:
        """The record of the stand-in whose claude.exe is `launcher` (default: the only one)."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            files = sorted(self.record.glob("*.json"))
            if launcher is not None:
                files = [f for f in files if f.name == f"{launcher}.json"]
            if files:
                data: dict[str, object] = json.loads(files[-1].read_text())
                return data
            ended = [p for p in self.procs if p.poll() is not None]
            if ended:  # the shim gave up before claude started: say why
                err = ended[0].communicate()[1].decode(errors="replace")
                raise AssertionError(f"the shim exited {ended[0].returncode} before claude started: {err}")
            time.sleep(0.05)
        raise AssertionError("the stand-in never recorded itself")

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.started:
            try:
                if proc.is_running():  # psutil checks PID and creation time: the very process we started
                    proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    try:
        installed = b.cli("install", "--dir", str(b.shim_dir))
        if installed.returncode != 0 and not installed.stdout and not installed.stderr \
                and os.environ.get("CLAUDE_GUARD_TEST_UNDER_WINE"):
            # Once seen under Wine on a loaded machine: pip's claude-guard.exe ended 1 before Python wrote a
            # byte (every failure of install itself says why on stderr). Tried once more; a second silent
            # failure, or any failure that says something, fails the test.
            installed = b.cli("install", "--dir", str(b.shim_dir))
        assert installed.returncode == 0, installed.stderr
        yield b
    finally:
        b.cleanup()


def wait_for(check: object, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_install_writes_the_exe_shim_into_a_folder_with_spaces(box: Box) -> None:
    assert box.shim.is_file()
    assert box.shim.read_bytes()[:2] == b"MZ"
    assert (box.npm / "claude.cmd").read_bytes().startswith(b"@ECHO off\r\nGOTO start\r\n")


def test_hostile_arguments_reach_claude_exactly_through_npm_claude_cmd(box: Box) -> None:
    done = box.run(*HOSTILE)
    assert done.stdout == b""  # the shim never writes to stdout
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b"", done.stderr.decode(errors="replace")  # no "unguarded" warning of any kind
    record = box.recorded()
    assert record["argv"] == HOSTILE
    # The direct path wrote the line (C-runtime quoting, a quote always as \"), not the cmd.exe fallback
    # (which doubles quotes and breaks up percents); the stand-in's launcher passes its line on verbatim.
    line = str(record["command_line"])
    assert '"say \\"hi\\""' in line and "%PATH%" in line, line
    assert '""hi""' not in line and "%cd:~,%" not in line, line


def test_unguarded_fallback_still_passes_arguments_exactly(box: Box) -> None:
    """When the guard fails (an internal error), claude still starts, unguarded, with its arguments intact:
    Windows has no exec, and os.execv there would join them unquoted."""
    code = "import sys; from claude_guard import shim; sys.exit(shim._unguarded(sys.argv[1:], None, shim._settings()))"
    python = Path(sys.executable)
    # In the sandbox folder: were cmd.exe ever to parse these arguments, `>` would create a file there.
    done = subprocess.run([str(python), "-c", code, *HOSTILE], env=box.env, capture_output=True, timeout=DEADLINE,
                          stdin=subprocess.DEVNULL, cwd=box.tmp)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert box.recorded()["argv"] == HOSTILE


def test_exit_status_comes_back(box: Box) -> None:
    assert box.run("-p", "x", STANDIN_EXIT="7").returncode == 7


def test_session_is_registered_listed_refused_twice_and_its_tree_ends_with_the_guard(box: Box) -> None:
    sid = str(uuid.uuid4())
    first = box.start("--resume", sid, STANDIN_SLEEP="300", STANDIN_GRANDCHILD="1")
    record = box.recorded()
    claude = psutil.Process(int(record["launcher"]))  # type: ignore[call-overload]
    recorder = psutil.Process(int(record["pid"]))  # type: ignore[call-overload]
    grandchild = psutil.Process(int(record["grandchild"]))  # type: ignore[call-overload]
    box.started += [claude, recorder, grandchild]
    assert first.poll() is None, first.communicate()[1].decode(errors="replace")

    listed = box.cli("ps", "--json")
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    mine = [s for s in sessions if s.get("pid") == claude.pid]
    assert mine, listed.stdout
    assert mine[0].get("session_id") == sid

    twice = box.run("--resume", sid)
    assert twice.returncode == 75
    assert f"already open in PID {claude.pid}".encode() in twice.stderr, twice.stderr

    dry = box.cli("reap", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr
    assert not gone(claude)

    # The guard holds claude's Job Object: ending it (Task Manager's End task) ends claude's whole tree.
    guard = psutil.Process(claude.ppid())
    assert guard.pid != first.pid  # the guard is the interpreter under the shim's launchers
    box.started.append(guard)
    guard.kill()
    wait_for(lambda: gone(claude) and gone(recorder) and gone(grandchild), "claude's tree to end with the guard")
    first.communicate(timeout=DEADLINE)


def test_the_guard_and_its_launchers_do_not_count_as_sessions(box: Box) -> None:
    """Cap 1: the first session starts (the shim's own claude.exe launcher, alive as the guard's ancestor, is
    not a Claude session), the second is refused with one stderr line and nothing on stdout."""
    config = box.tmp / "AppData" / "claude-guard" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("max_sessions = 1\n")
    sid = str(uuid.uuid4())
    box.start("--resume", sid, STANDIN_SLEEP="300", CLAUDE_GUARD_CONFIG=str(config))
    record = box.recorded()
    box.started.append(psutil.Process(int(record["launcher"])))  # type: ignore[call-overload]
    refused = box.run("--resume", str(uuid.uuid4()), CLAUDE_GUARD_CONFIG=str(config))
    assert refused.returncode == 75
    assert refused.stdout == b""
    assert b"1 of 1 Claude sessions already running" in refused.stderr, refused.stderr



def prepare(folder: Path, source: str) -> dict[str, object]:
    """For tests/test_wine.py, which drives the shim from a Linux pty (a console Ctrl-C): the same layout in
    `folder`, the shim installed; returns the shim's path and the environment to run it with."""
    folder.mkdir(parents=True, exist_ok=True)
    b = Box(folder, source)
    installed = b.cli("install", "--dir", str(b.shim_dir))
    if installed.returncode != 0:
        raise SystemExit(f"install failed: {installed.stderr}")
    return {"shim": str(b.shim), "record": str(b.record), "env": b.env}


if __name__ == "__main__":
    print(json.dumps(prepare(Path(sys.argv[1]), sys.argv[2])))
