"""The cap is exact under concurrent launches: admission happens under the registry lock (peers without a
lock admitted 9 agents against a cap of 2)."""

from __future__ import annotations

import time

import pytest

from conftest import Guard
from standin import records


@pytest.mark.parametrize("round_", range(3))
def test_32_concurrent_launches_against_a_cap_of_4_admit_exactly_4(guard: Guard, round_: int) -> None:
    env = {"CLAUDE_GUARD_MAX_SESSIONS": "4", "STANDIN_SLEEP": "60", "CLAUDE_GUARD_LOCK_TIMEOUT": "120"}
    procs = [guard.start("-p", f"launch {i}", env=env) for i in range(32)]
    # The refused ones exit on their own; the admitted ones sleep until the fixture ends them.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(p.poll() is not None for p in procs) < 28:
        time.sleep(0.05)
    exited = [p for p in procs if p.poll() is not None]
    assert len(exited) == 28, f"{len(exited)} exited"
    for p in exited:
        err = p.stderr.read() if p.stderr else b""
        assert p.returncode == 75, err
        assert b"refused: 4 of 4" in err
    running = [p for p in procs if p.poll() is None]
    assert len(running) == 4
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(records(guard.record)) < 4:
        time.sleep(0.05)
    assert sorted(r["pid"] for r in records(guard.record)) == sorted(p.pid for p in running)
    assert sorted(e["pid"] for e in guard.registry()["sessions"]) == sorted(p.pid for p in running)  # type: ignore[attr-defined]
