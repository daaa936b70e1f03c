"""Idle time that does not count time the machine spent asleep.

A laptop closed over the weekend must not come back to find every session "idle for 60 hours" and reaped.
Wall-clock arithmetic (`now - statusUpdatedAt`) counts the suspend; so does every peer's idle test. Two
clocks, one that stops while the machine sleeps and one that does not, tell the difference:

- Linux: CLOCK_MONOTONIC stops while suspended, CLOCK_BOOTTIME does not, so `BOOTTIME - MONOTONIC` is
  the total time asleep since boot (the "sleep offset"). It only ever grows.
- macOS: CLOCK_MONOTONIC keeps counting asleep, CLOCK_UPTIME_RAW does not: the offset is their difference.
- Windows: `time.monotonic()` is QueryPerformanceCounter there, which keeps counting in sleep and
  hibernation, so it cannot be the awake clock. The interrupt-time count can: QueryUnbiasedInterruptTime
  leaves out sleep and hibernation, QueryInterruptTime (Windows 10 and later) counts them, both in 100 ns
  units from zero at boot. (On older Windows, GetTickCount64, which counts them too, in milliseconds.)
  Microsoft does not say how Modern Standby (S0 low-power idle, where the machine stays in the working
  state with the screen off) counts; docs/sweep.md says what that means for idle time.
- Elsewhere no such pair is read here: the offset is 0, and idle time is wall time.

The offset now minus the offset at some past moment is the time asleep since then. The offset of the past
is not kept by the kernel, so the sweep keeps a small ledger: the wall time at which each new offset was
first seen (one entry per suspend, recorded by every sweep). For a past wall time `t` the ledger's last
entry at or before `t` gives an offset that is at most the true one, so the sleep subtracted is never less
than the real sleep after `t`: idle time is under-counted, never over-counted, and a session is never
ended early because of a suspend the ledger did not see. Before the first entry the offset is taken as 0
(all sleep since boot is subtracted).

`awake()` is the clock for intervals measured by the sweep itself (CPU samples): it stops while asleep and
is shared by every process of one boot, so samples written by one run are valid for the next.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Offsets closer than this are the same offset: the two clocks are read a few microseconds apart (on
# Windows, GetTickCount64 moves in steps of 10 to 16 ms).
_SAME = 0.5
_KEEP = 256  # ledger entries kept (one per suspend since boot)

_awake: Callable[[], float]  # stops while asleep
_all: Callable[[], float] | None  # counts asleep too; None: no such clock here

if sys.platform.startswith("linux"):
    def _awake() -> float:
        return time.clock_gettime(time.CLOCK_MONOTONIC)

    def _all() -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
elif sys.platform == "darwin":
    def _awake() -> float:
        return time.clock_gettime(time.CLOCK_UPTIME_RAW)

    def _all() -> float:
        return time.clock_gettime(time.CLOCK_MONOTONIC)
elif sys.platform == "win32":  # pragma: no cover - Windows only
    import ctypes

    _kernel32 = ctypes.WinDLL("kernel32")
    _kernel32.QueryUnbiasedInterruptTime.argtypes = [ctypes.POINTER(ctypes.c_ulonglong)]
    _kernel32.QueryUnbiasedInterruptTime.restype = ctypes.c_int
    _kernel32.GetTickCount64.restype = ctypes.c_ulonglong
    _query_all = getattr(_kernel32, "QueryInterruptTime", None)  # Windows 10 and later
    if _query_all is not None:
        _query_all.argtypes = [ctypes.POINTER(ctypes.c_ulonglong)]
        _query_all.restype = None

    def _awake() -> float:
        count = ctypes.c_ulonglong()
        _kernel32.QueryUnbiasedInterruptTime(ctypes.byref(count))
        return count.value / 1e7

    def _all() -> float:
        if _query_all is None:
            return float(_kernel32.GetTickCount64()) / 1e3
        count = ctypes.c_ulonglong()
        _query_all(ctypes.byref(count))
        return count.value / 1e7
else:  # pragma: no cover - no pair of clocks read here
    _awake = time.monotonic
    _all = None


def awake() -> float:
    """Seconds on a clock that stops while the machine sleeps, comparable across processes of one boot."""
    return _awake()


def asleep_total() -> float:
    """Seconds the machine has spent asleep since boot (0 where it cannot be told)."""
    if _all is None:  # pragma: no cover
        return 0.0
    return max(0.0, _all() - _awake())


def boot_id() -> str:
    """Identifies this boot: ledger entries and CPU samples of an earlier boot mean nothing now."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        # Elsewhere: the wall time of boot, to the minute (wall minus the all-time clock).
        base = _all() if _all is not None else time.monotonic()
        return f"boot-{int((time.time() - base) // 60)}"


def record(ledger: list[list[float]], wall: float | None = None, offset: float | None = None) -> None:
    """Note the current sleep offset in `ledger` (a list of [wall, offset], oldest first) if it is new."""
    wall = time.time() if wall is None else wall
    offset = asleep_total() if offset is None else offset
    if not ledger or offset - ledger[-1][1] >= _SAME:
        ledger.append([wall, offset])
        del ledger[:-_KEEP]


def asleep_since(ledger: list[list[float]], then: float, offset: float | None = None) -> float:
    """Seconds asleep since wall time `then` (at least the true figure; see the module docstring)."""
    offset = asleep_total() if offset is None else offset
    before = 0.0
    for wall, value in ledger:
        if wall > then:
            break
        before = value
    return max(0.0, offset - before)


def idle_for(ledger: list[list[float]], since_wall: float, now_wall: float | None = None,
             offset: float | None = None) -> float:
    """Awake seconds between wall time `since_wall` and now: wall time minus the sleep in between."""
    now_wall = time.time() if now_wall is None else now_wall
    return max(0.0, now_wall - since_wall - asleep_since(ledger, since_wall, offset))
