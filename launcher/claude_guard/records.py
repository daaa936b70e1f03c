"""The shapes of the JSON the tool keeps: registry entries and waiters, and the sweep's ledger.

Imported only under TYPE_CHECKING (so the `claude` hot path never loads `typing`): these are declarations for
the type checker. The registry validates `pid` and `start` of every entry it reads (registry._validate); the
ledger replaces any part that does not have its shape (ledger.load).
"""

from __future__ import annotations

from typing import TypedDict


class _EntryBase(TypedDict):
    pid: int  # the Claude Code process (after update_pid: the runner's child where exec is impossible)
    start: str  # its start token (proc backend)
    session_id: str | None
    kind: str  # argv.Call.kind: interactive, print, ...
    argv: list[str]  # claude's arguments, repaired, summarised (launch._summary: bounded in count and length)
    program: str
    cwd: str
    tty: str | None
    ppid: int  # the process that ran the launch
    parent: str  # its program's basename
    started_at: float  # epoch seconds
    cookie: str  # CLAUDE_GUARD_COOKIE of the session; its strays carry it
    guard: str  # the guard's version


class Entry(_EntryBase, total=False):
    """One guarded session in registry.json."""

    guard_pid: int  # where exec is impossible: the guard that waits for claude (the entry's pid is its child)


class _WaiterBase(TypedDict):
    pid: int
    start: str
    since: float  # epoch seconds


class Waiter(_WaiterBase, total=False):
    """A launch queued for a slot (on_cap = wait), in arrival order."""

    renewed: float  # the monotonic clock when it last renewed its place (admission._RENEW, _STALE)


class RegistryData(TypedDict):
    version: int
    sessions: list[Entry]
    waiters: list[Waiter]


class Sample(TypedDict):
    """The ledger's memory of one Claude process ("pid:start")."""

    ref: list[float]  # [awake-clock time, CPU seconds] of the reference sample
    quiet: float | None  # awake-clock time since which its CPU stayed under idle_cpu
    judged: bool  # a whole window has been judged
    ppid: int  # its parent when first seen


class StraySeen(TypedDict, total=False):
    """The ledger's memory of one process outside a live session's tree, or a direct child of one
    ("pid:start"): what it was while its session lived (strays.judge reads it once the session is gone)."""

    left: str  # "pid:start" of the live session whose tree it had already left: kept
    child_of: int  # the live claude it was a direct child of: collateral


class Counters(TypedDict):
    ended: dict[str, int]  # sessions ended, per reason
    freed_bytes: dict[str, int]
    failed: int
    sweeps: int
    last_sweep: float
    swept_by: str  # "pid:start" of the process that swept last (doctor finds a running `reap --watch` by it)


class Book(TypedDict):
    """sweep.json: see ledger.py."""

    version: int
    boot: str
    sleep: list[list[float]]
    procs: dict[str, Sample]
    strays: dict[str, StraySeen]
    cooldown_until: float
    counters: Counters
