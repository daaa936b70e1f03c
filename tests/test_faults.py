"""Faults on the launch side, with real processes: a shim killed mid-admission, a frozen lock holder, writes
that fail, and a registry path that is not ours. The registry must stay parseable and intact, no lock may
stay held, and claude must still start (unless `strict`)."""

from __future__ import annotations

import fcntl
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Guard, wait_for
from standin import records

ROUNDS = int(os.environ.get("CLAUDE_GUARD_FAULT_ROUNDS", "200"))


def _lock_is_free(guard: Guard) -> bool:
    fd = os.open(guard.state / "registry.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_sigkill_at_random_moments_during_admission(guard: Guard) -> None:
    rng = random.Random(1234)
    env = {**guard.env, "STANDIN_SLEEP": "30", "CLAUDE_GUARD_MAX_SESSIONS": "100000", "STANDIN_RECORD": ""}
    for _ in range(ROUNDS):
        p = subprocess.Popen([str(guard.shim), "-p", "x"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.06))  # before, during and after admission (about 20-40 ms here)
        p.kill()
        p.wait()
    # The registry parses (or was never written), and no lock is held.
    path = guard.state / "registry.json"
    if path.exists():
        data = json.loads(path.read_text())
        assert data["version"] == 1
    assert _lock_is_free(guard)
    # One more launch prunes every dead entry and the temp files of killed writers.
    r = guard.run("-p", "y", env={"STANDIN_RECORD": str(guard.record)})
    assert r.returncode == 0, r.stderr
    sessions = guard.registry()["sessions"]
    assert len(sessions) == 1  # type: ignore[arg-type]
    assert [p.name for p in guard.state.iterdir() if ".tmp-" in p.name] == []


@pytest.fixture
def frozen_holder(guard: Guard) -> Iterator[subprocess.Popen[bytes]]:
    """A process that takes the registry lock (with filelock, as the sweep does) and then freezes (SIGSTOP)."""
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    code = ("import filelock, os, signal, sys; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)")
    p = subprocess.Popen([sys.executable, "-c", code, str(guard.state / "registry.json.lock")],
                         stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"held\n"
    wait_for(lambda: Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T")
    try:
        yield p
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def test_frozen_lock_holder_bounded_wait_then_start_with_warning(guard: Guard,
                                                                  frozen_holder: subprocess.Popen[bytes]) -> None:
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_LOCK_TIMEOUT": "1"})
    assert r.returncode == 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "still busy after 1s" in lines[0] and "starting claude unguarded" in lines[0]
    assert len(records(guard.record)) == 1


def test_frozen_lock_holder_under_strict_refuses(guard: Guard, frozen_holder: subprocess.Popen[bytes]) -> None:
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_LOCK_TIMEOUT": "1", "CLAUDE_GUARD_STRICT": "true"})
    assert r.returncode == 74
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert records(guard.record) == []


def _seed_registry(guard: Guard) -> bytes:
    """A valid registry with one live entry (this test process), as the previous state to keep intact."""
    assert guard.run("-p", "seed").returncode == 0
    return (guard.state / "registry.json").read_bytes()


def test_file_size_limit_keeps_the_old_registry_and_starts_claude(guard: Guard) -> None:
    old = _seed_registry(guard)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer; we want EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    # claude inherits the limit too, so it shows it ran by its exit status rather than by a record file
    env = {**guard.env, "STANDIN_RECORD": "", "STANDIN_EXIT": "7"}
    r = subprocess.run([str(guard.shim), "-p", "x"], env=env, capture_output=True, preexec_fn=limit,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 7
    assert b"cannot write registry" in r.stderr and b"starting claude unguarded" in r.stderr
    assert (guard.state / "registry.json").read_bytes() == old


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")


@pytest.fixture
def state_on_tmpfs(guard: Guard) -> Iterator[Path]:
    _mount_tmpfs(guard.state, "256k")
    try:
        yield guard.state
    finally:
        subprocess.run(["umount", "-l", str(guard.state)], check=False)


def test_disk_full_keeps_the_old_registry_and_starts_claude(guard: Guard, state_on_tmpfs: Path) -> None:
    old = _seed_registry(guard)
    fd = os.open(state_on_tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # fill the file system to the last byte
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    r = guard.run("-p", "x")
    assert r.returncode == 0
    assert b"cannot write registry" in r.stderr and b"No space left" in r.stderr
    assert (guard.state / "registry.json").read_bytes() == old
    assert len(records(guard.record)) == 2


def test_read_only_folder_keeps_the_old_registry_and_starts_claude(guard: Guard, state_on_tmpfs: Path) -> None:
    old = _seed_registry(guard)
    subprocess.run(["mount", "-o", "remount,ro", str(state_on_tmpfs)], check=True)
    r = guard.run("-p", "x")
    assert r.returncode == 0
    assert b"Read-only file system" in r.stderr and b"starting claude unguarded" in r.stderr
    assert (guard.state / "registry.json").read_bytes() == old
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"})
    assert r.returncode == 74


def test_registry_that_is_a_symlink_is_refused_and_nothing_written_through_it(guard: Guard, tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    (guard.state / "registry.json").symlink_to(victim)
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"is a symlink" in r.stderr
    assert victim.read_text() == "precious"
    assert (guard.state / "registry.json").is_symlink()
    assert guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"}).returncode == 74


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating real other-user ownership needs root")


@needs_root
def test_registry_owned_by_another_user_is_refused(guard: Guard) -> None:
    old = _seed_registry(guard)
    os.chown(guard.state / "registry.json", 65534, 65534)
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"owned by uid 65534" in r.stderr
    assert (guard.state / "registry.json").read_bytes() == old
    assert guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"}).returncode == 74


@needs_root
def test_state_folder_owned_by_another_user_is_refused(guard: Guard) -> None:
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(guard.state, 65534, 65534)
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"owned by uid 65534" in r.stderr
    assert list(guard.state.iterdir()) == []


def test_world_writable_state_folder_is_refused(guard: Guard) -> None:
    guard.state.mkdir(parents=True, exist_ok=True)
    guard.state.chmod(0o777)
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"writable by group or others" in r.stderr
    assert list(guard.state.iterdir()) == []


def test_saving_another_file_never_removes_a_live_writers_temp(guard: Guard) -> None:
    # The sweep's ledger (sweep.json) is saved under its own lock, beside the registry: its clean-up of temp
    # files once removed a launch's registry.json.tmp-<pid> mid-write (found by the soak test).
    from claude_guard import ledger, registry

    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    writer = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        live_tmp = guard.state / f"registry.json.tmp-{writer.pid}"
        dead_tmp = guard.state / f"registry.json.tmp-{dead.pid}"
        live_tmp.write_text("in flight")
        dead_tmp.write_text("left by a killed writer")
        ledger.save(str(guard.state), ledger.empty())
        assert live_tmp.exists() and dead_tmp.exists()  # not the ledger's temps: untouched
        reg = registry.Registry(str(guard.state))
        with reg.locked():
            reg.save(reg.load())
        assert live_tmp.exists()  # its writer is alive
        assert not dead_tmp.exists()  # its writer is gone
    finally:
        writer.kill()
        writer.wait()
