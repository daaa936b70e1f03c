"""The process backends and the file writers, with the other systems' semantics, on Linux.

- A session file found only by ~/.claude/sessions/<PID>.json holds Claude's /proc start ticks (`procStart`)
  and its start time; the psutil backend (macOS, Windows) has epoch tokens, so the launch must compare the
  file with the process as the sweep does (issue 14.1).
- The launch's takeover signals through the backend's checked signal, as the reaper does (14.3).
- Logs rotate with the file closed, as Windows needs for the rename (14.2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from claude_guard import admission, files, procs, registry
from claude_guard.proc.portable import Portable
from conftest import Guard
from sweepkit import wait_for

MAC = Portable()
WINDOWS = Portable(windows=True)


@pytest.mark.parametrize("backend", [procs.BACKEND, MAC, WINDOWS], ids=["native", "psutil", "windows"])
def test_holder_found_only_by_its_session_file(guard: Guard, backend: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unguarded `claude --continue` names its session only in its own session file: a holder with every
    backend, though the file's procStart is /proc's token and the psutil backend's is epoch seconds."""
    sid = str(uuid.uuid4())
    holder = guard.start("--continue", env={"STANDIN_SLEEP": "60", "STANDIN_SESSION": sid}, cmd=guard.real)
    guard.wait_recorded(holder.pid)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", guard.env["CLAUDE_CONFIG_DIR"])
    found = json.loads((guard.home / ".claude" / "sessions" / f"{holder.pid}.json").read_text())
    assert isinstance(backend, (Portable, type(procs.BACKEND)))
    if backend is not procs.BACKEND:
        # The comparison the launch made before: procStart against this backend's token. Never equal here.
        assert not backend.alive(holder.pid, found["procStart"])
    census = admission.Census({"version": 1, "sessions": [], "waiters": []}, os.getpid(), backend)
    assert census.holders(sid) == [holder.pid]


@pytest.mark.parametrize("backend", [procs.BACKEND, MAC], ids=["native", "psutil"])
def test_stale_session_file_is_no_holder_with_either_backend(guard: Guard, backend: object,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A file left by an earlier process with this pid (another start time and start token) is not a holder."""
    sid = str(uuid.uuid4())
    folder = guard.home / ".claude" / "sessions"
    folder.mkdir(parents=True)
    holder = guard.start("--continue", env={"STANDIN_SLEEP": "60"}, cmd=guard.real)
    guard.wait_recorded(holder.pid)
    (folder / f"{holder.pid}.json").write_text(json.dumps({"pid": holder.pid, "sessionId": sid, "procStart": "1",
                                                            "startedAt": 1000}))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", guard.env["CLAUDE_CONFIG_DIR"])
    assert isinstance(backend, (Portable, type(procs.BACKEND)))
    assert admission.Census({"version": 1, "sessions": [], "waiters": []}, os.getpid(), backend).holders(sid) == []


@pytest.mark.parametrize("backend", [procs.BACKEND, MAC], ids=["native", "psutil"])
def test_takeover_signals_only_claude(guard: Guard, backend: object) -> None:
    """takeover() ends a holder that still runs Claude Code, and leaves a pid that no longer does (it exec'd
    another program, or the pid was reused) alone: the backend's checked signal refuses it."""
    assert isinstance(backend, (Portable, type(procs.BACKEND)))
    holder = guard.start("--resume", "abc", env={"STANDIN_SLEEP": "60", "STANDIN_TRAP": "record"}, cmd=guard.real)
    guard.wait_recorded(holder.pid)
    other = guard.start("-c", "import time; time.sleep(60)", cmd=sys.executable)
    admission.takeover([holder.pid, other.pid], 5.0, backend)
    assert holder.wait(timeout=30) == 128 + signal.SIGTERM
    assert other.poll() is None


def test_log_rotates_with_the_file_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows refuses to rename an open file: files.append closes the log before it renames it. Proven by
    renaming through a stand-in os.replace that fails while any descriptor of the file is open in this process
    (as Windows' rename fails), and by a reader that holds the file across the rotation."""
    log = tmp_path / "guard.log"
    log.write_bytes(b"x" * 2000)
    real_replace = os.replace

    def replace_like_windows(src: str, dst: str) -> None:
        target = os.path.realpath(src)
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == target and int(fd) != reader.fileno():
                    raise PermissionError(13, "The process cannot access the file because it is being used")
            except FileNotFoundError:
                continue
        real_replace(src, dst)

    with open(log, "rb") as reader:  # another process's reader: Windows opens with FILE_SHARE_DELETE for it
        monkeypatch.setattr(os, "replace", replace_like_windows)
        files.append(str(log), "new line\n", 1000)
        assert reader.read() == b"x" * 2000  # the reader keeps the old file
    assert (tmp_path / "guard.log.1").read_bytes() == b"x" * 2000
    assert log.read_bytes() == b"new line\n"


def test_guard_log_rotates(tmp_path: Path) -> None:
    """guard.log goes through the same appender: past 1 MiB it moves to guard.log.1."""
    reg = registry.Registry(str(tmp_path))
    (tmp_path / registry.LOG).write_bytes(b"x" * (registry._LOG_LIMIT + 1))
    reg.log("admitted pid=1")
    assert (tmp_path / (registry.LOG + ".1")).stat().st_size == registry._LOG_LIMIT + 1
    assert (tmp_path / registry.LOG).read_text().endswith("admitted pid=1\n")


def test_atomic_write_leaves_old_or_new(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    files.atomic_write(str(target), b"old")
    files.atomic_write(str(target), b"new", mode=0o644)
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        files.atomic_write(str(tmp_path / "d"), b"x")  # a folder in the way: nothing half-written left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.json"]


@pytest.mark.parametrize("backend", [procs.BACKEND, MAC], ids=["native", "psutil"])
def test_population_bounds_the_process_table_and_exists_follows_it(backend: object) -> None:
    """population() may say more processes than there are (Linux: every thread the kernel has), never fewer:
    a launch takes "fewer than the cap" from it without listing every process. exists() is a PID's presence,
    anyone's process or a zombie included, as the listing has it."""
    from claude_guard.proc import Backend

    assert isinstance(backend, Backend)
    gone = subprocess.Popen(["true"])
    gone.wait()
    zombie = subprocess.Popen(["true"])
    try:
        wait_for(lambda: getattr(procs.read(zombie.pid), "state", "") == "Z", what="the exited child to be a zombie")
        listed = backend.pids()
        population = backend.population()
        assert listed and population is not None and population >= len(listed)
        assert backend.exists(os.getpid()) and backend.exists(zombie.pid)
        assert backend.exists(1)  # init: someone else's process unless we are root, present either way
        assert not backend.exists(gone.pid) and not backend.exists(0) and not backend.exists(-1)
    finally:
        zombie.wait()
