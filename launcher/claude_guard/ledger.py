"""What the sweep remembers between runs: `sweep.json` beside the registry.

- `sleep`: the clock ledger (see clock.py): when each new sleep offset was first seen, for idle time that
  does not count suspend.
- `procs`: per Claude process (key "pid:start"): a CPU reference sample taken on the awake clock, since
  when its CPU has stayed under `idle_cpu` (the idle test for sessions without Claude's own status), and
  the parent it had when first seen (a later change means it was reparented: an orphan).
- `cooldown_until`: awake-clock time before which the memory policy waits (after a memory-pressure kill,
  the kernel needs a moment before available memory shows what was freed).
- `counters`: sessions ended and bytes freed per reason, for `claude-guard metrics` (they survive reboots).

Only `reap` writes it, under `sweep.lock`, which also keeps two reapers (a timer and a watch loop) from
acting at once. `ps` and `metrics` read it without writing. Entries of another boot are dropped: process
start times and the awake clock restart at boot.
"""

from __future__ import annotations

import os

from . import clock, jsonio
from .registry import Lock, Registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FILE = "sweep.json"
LOCK = "sweep.lock"
VERSION = 1


def key(pid: int, start: str) -> str:
    return f"{pid}:{start}"


def empty(boot: str | None = None) -> dict[str, Any]:
    return {"version": VERSION, "boot": boot or clock.boot_id(), "sleep": [], "procs": {},
            "cooldown_until": 0.0, "counters": {"ended": {}, "freed_bytes": {}, "failed": 0, "sweeps": 0,
                                                "last_sweep": 0.0}}


def load(folder: str) -> dict[str, Any]:
    """The saved state (an empty one when missing or unreadable; it is only a cache and counters)."""
    boot = clock.boot_id()
    try:
        with open(os.path.join(folder, FILE), "rb") as f:
            data = jsonio.loads(f.read(16 << 20).decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("unknown format")
    except (OSError, ValueError, UnicodeDecodeError):
        return empty(boot)
    fresh = empty(boot)
    counters = data.get("counters")
    if isinstance(counters, dict):
        fresh["counters"].update(counters)
    if data.get("boot") == boot:
        for name in ("sleep", "procs"):
            if isinstance(data.get(name), type(fresh[name])):
                fresh[name] = data[name]
        if isinstance(data.get("cooldown_until"), (int, float)):
            fresh["cooldown_until"] = float(data["cooldown_until"])
    return fresh


class _Store(Registry):
    """The registry's atomic writer (temp file, fsync, rename) pointed at sweep.json."""

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.path = os.path.join(folder, FILE)


def save(folder: str, data: dict[str, Any]) -> None:
    _Store(folder).save(data)


def lock(folder: str, timeout: float) -> Lock:
    """The lock one reaper holds for its whole run."""
    from .registry import ensure_dir

    ensure_dir(folder)
    return Lock(os.path.join(folder, LOCK), timeout)


def count(data: dict[str, Any], reason: str, freed: int) -> None:
    counters = data["counters"]
    counters["ended"][reason] = int(counters["ended"].get(reason, 0)) + 1
    counters["freed_bytes"][reason] = int(counters["freed_bytes"].get(reason, 0)) + int(freed)
