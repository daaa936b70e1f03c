"""What the sweep remembers between runs: `sweep.json` beside the registry.

- `sleep`: the clock ledger (see clock.py): when each new sleep offset was first seen, for idle time that
  does not count suspend.
- `procs`: per Claude process (key "pid:start"): a CPU reference sample taken on the awake clock, since
  when its CPU has stayed under `idle_cpu` (the idle test for sessions without Claude's own status), and
  the parent it had when first seen (a later change means it was reparented: an orphan).
- `strays`: per process outside a live session's tree ("left", with the session) or directly under one
  ("child_of"), while that session lived: once the session is gone, this says how the process was left
  (strays.py); dropped when the process is gone.
- `cooldown_until`: awake-clock time before which the memory policy waits (after a memory-pressure kill,
  the kernel needs a moment before available memory shows what was freed).
- `counters`: sessions ended and bytes freed per reason, for `claude-guard metrics` (they survive reboots).

Only `reap` writes it, under `sweep.lock`, which also keeps two reapers (a timer and a watch loop) from
acting at once. `ps` and `metrics` read it without writing. Entries of another boot are dropped: process
start times and the awake clock restart at boot.
"""

from __future__ import annotations

import os

from . import clock, files, jsonio
from .errors import ExitCode, GuardError
from .registry import Lock, remove_stale_temps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .reaper import Action
    from .records import Book, Sample, StraySeen
    from .sessions import View
    from .settings import Settings

FILE = "sweep.json"
LOCK = "sweep.lock"
VERSION = 1


def key(pid: int, start: str) -> str:
    return f"{pid}:{start}"


def empty(boot: str | None = None) -> Book:
    return {"version": VERSION, "boot": boot or clock.boot_id(), "sleep": [], "procs": {}, "strays": {},
            "cooldown_until": 0.0, "counters": {"ended": {}, "freed_bytes": {}, "failed": 0, "sweeps": 0,
                                                "last_sweep": 0.0, "swept_by": ""}}


def load(folder: str) -> Book:
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
        fresh["counters"].update(counters)  # type: ignore[typeddict-item]
    if data.get("boot") == boot:
        if isinstance(data.get("sleep"), list):
            fresh["sleep"] = data["sleep"]
        if isinstance(data.get("procs"), dict):
            fresh["procs"] = data["procs"]
        if isinstance(data.get("strays"), dict):
            fresh["strays"] = data["strays"]
        if isinstance(data.get("cooldown_until"), (int, float)):
            fresh["cooldown_until"] = float(data["cooldown_until"])
    return fresh


def save(folder: str, data: Book) -> None:
    path = os.path.join(folder, FILE)
    try:
        files.atomic_write(path, jsonio.dumps(data).encode("ascii"))
    except OSError as e:
        raise GuardError(f"cannot write {path}: {e.strerror}; free disk space or fix the folder's permissions",
                         ExitCode.STATE) from None
    remove_stale_temps(path)


def lock(folder: str, timeout: float) -> Lock:
    """The lock one reaper holds for its whole run."""
    from .registry import ensure_dir

    ensure_dir(folder)
    return Lock(os.path.join(folder, LOCK), timeout)


def observe(book: Book, view: View, settings: Settings) -> None:
    """Fold a pass into the ledger: CPU windows, first-seen parents, the sleep offset."""
    clock.record(book["sleep"], view.now)
    old = book["procs"]
    new: dict[str, Sample] = {}
    window = settings.cpu_window
    threshold = settings.idle_cpu / 100.0
    for s in view.sessions:
        k = key(s.pid, s.start)
        rec = old.get(k)
        if not isinstance(rec, dict) or not isinstance(rec.get("ref"), list):
            rec = {"ref": [view.awake, s.cpu], "quiet": None, "judged": False, "ppid": s.row.ppid}
        else:
            t0, c0 = float(rec["ref"][0]), float(rec["ref"][1])
            elapsed, used = view.awake - t0, s.cpu - c0
            if used > threshold * window:
                rec["ref"], rec["quiet"], rec["judged"] = [view.awake, s.cpu], None, True
            elif elapsed >= window:
                if used / elapsed <= threshold:
                    rec["quiet"] = rec.get("quiet") if rec.get("quiet") is not None else t0
                else:
                    rec["quiet"] = None
                rec["ref"], rec["judged"] = [view.awake, s.cpu], True
        new[k] = rec
    book["procs"] = new
    _observe_strays(book, view)


def _observe_strays(book: Book, view: View) -> None:
    """Note, while sessions live, which processes already left their trees (kept, should the session end)
    and which are claude's direct children (collateral, should it die); forget processes that are gone."""
    rows = view.table.rows
    old = book["strays"]
    new: dict[str, StraySeen] = {}
    for k, rec in old.items():
        pid, _, start = k.partition(":")
        row = rows.get(int(pid)) if pid.isdigit() else None
        if row is not None and row.start == start and isinstance(rec, dict):
            new[k] = rec
    sessions = {s.pid for s in view.sessions}
    for s in view.sessions:
        for child in view.table.children.get(s.pid, ()):
            row = rows.get(child)
            if row is not None and child not in sessions:
                new.setdefault(key(child, row.start), {"child_of": s.pid})
    for st in view.strays:
        if st.owner is not None:
            new[key(st.pid, st.start)] = {"left": key(st.owner.pid, st.owner.start)}
    book["strays"] = new


def count(book: Book, reason: str, freed: int) -> None:
    counters = book["counters"]
    counters["ended"][reason] = int(counters["ended"].get(reason, 0)) + 1
    counters["freed_bytes"][reason] = int(counters["freed_bytes"].get(reason, 0)) + int(freed)


def record(book: Book, actions: Iterable[Action], now: float, cooldown: float, *, sweep: bool = True) -> None:
    """What a sweep did: the ended processes forgotten, counters per reason, and the memory policy's cooldown
    after a memory-pressure kill. `sweep` False (`claude-guard kill`): counted per reason, but not as a sweep."""
    counters = book["counters"]
    failed = 0
    for a in actions:
        if a.outcome == "failed":
            failed += 1
        if a.outcome != "ended":
            continue
        book["procs"].pop(key(a.pid, a.start), None)  # gone: no sample to keep
        count(book, a.reason, a.rss)
        if a.reason == "memory":
            book["cooldown_until"] = clock.awake() + cooldown
    counters["failed"] = int(counters.get("failed", 0)) + failed
    if not sweep:
        return
    counters["sweeps"] = int(counters.get("sweeps", 0)) + 1
    counters["last_sweep"] = now
    # Who swept: a `reap --watch` is told apart from any other user's or HOME's watch by this, not by its name.
    from . import procs

    counters["swept_by"] = key(os.getpid(), procs.start_token(os.getpid()) or "")
