"""Soak: many launches of stand-in sessions with random lifetimes against a cap of 8, with `reap --watch`
running beside them. The number of live sessions sampled from the process table never exceeds the cap, no
launch is refused (none waits past its timeout while a slot is free), and once the last one has exited one
sweep leaves the registry empty.

CLAUDE_GUARD_SOAK_LAUNCHES sets the count (default 1000)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Guard

LAUNCHES = int(os.environ.get("CLAUDE_GUARD_SOAK_LAUNCHES", "1000"))
CAP = 8


def _state_and_start(pid: str) -> tuple[bytes, bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0], fields[19]


class Sampler(threading.Thread):
    """Counts live stand-in sessions (the real claude of this test, not a waiting shim) in the process table.

    One pass over /proc is not a snapshot: it may read X alive, then Y, admitted after X ended. So each pass
    keeps only the processes still alive (same start time) when it is over: those were all alive at once."""

    def __init__(self, needle: bytes) -> None:
        super().__init__(daemon=True)
        self.needle = needle
        self.most = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            seen: dict[str, bytes] = {}
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        if self.needle not in f.read():
                            continue
                except OSError:
                    continue
                now = _state_and_start(name)
                if now and now[0] not in (b"Z", b"X"):
                    seen[name] = now[1]
            live = 0
            for name, start in seen.items():
                now = _state_and_start(name)
                live += bool(now and now[0] not in (b"Z", b"X") and now[1] == start)
            self.most = max(self.most, live)
            self.samples += 1
            time.sleep(0.005)


@pytest.mark.slow
def test_soak_launches_against_a_cap_with_reap_watch(guard: Guard) -> None:
    env = {**guard.env, "CLAUDE_GUARD_MAX_SESSIONS": str(CAP), "CLAUDE_GUARD_ON_CAP": "wait",
           "CLAUDE_GUARD_WAIT_TIMEOUT": "300", "CLAUDE_GUARD_LOCK_TIMEOUT": "60", "STANDIN_RECORD": ""}
    work = guard.tmp / "work"
    work.mkdir()
    watch = subprocess.Popen([sys.executable, "-m", "claude_guard", "reap", "--watch", "--interval", "0.5",
                              "--under", str(work), "-q"], env=env, cwd=work, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    guard.procs.append(watch)
    sampler = Sampler(os.fsencode(str(guard.real)) + b"\0")
    sampler.start()
    rng = random.Random(7)
    lifetimes = [rng.choice([0.0, 0.02, 0.05, 0.1, 0.3]) for _ in range(LAUNCHES)]

    def launch(lifetime: float) -> tuple[int, bytes]:
        r = subprocess.run([str(guard.shim), "-p", "soak"], env={**env, "STANDIN_SLEEP": str(lifetime)}, cwd=work,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        return r.returncode, r.stderr

    try:
        with ThreadPoolExecutor(max_workers=3 * CAP) as pool:  # more launchers than slots: there are waiters
            results = list(pool.map(launch, lifetimes))
    finally:
        sampler.stop.set()
        sampler.join()
    failures = [(rc, err) for rc, err in results if rc != 0 or err]
    assert failures == [], failures[:3]  # no refusal, and no warning (a launch that went unguarded)
    assert sampler.samples > 0
    assert sampler.most <= CAP, f"{sampler.most} live sessions seen against a cap of {CAP}"
    log = (guard.state / "guard.log").read_text()
    assert log.count("admitted pid=") >= LAUNCHES - 1  # the log rotates past 1 MiB; the count is a floor
    # The watch loop survived the whole run and stops cleanly on SIGTERM.
    assert watch.poll() is None, watch.stderr.read() if watch.stderr else b""
    os.kill(watch.pid, signal.SIGTERM)
    assert watch.wait(timeout=60) == 0
    r = guard.cli("reap", "--under", str(work))
    assert r.returncode == 0, r.stderr
    registry = guard.registry()
    assert registry["sessions"] == [] and registry["waiters"] == []
