"""Ending sessions: which ones (the policies, in their documented order) and how (signals, safely).

Policies, applied in this order; a session is taken by the first that picks it:
  dead       registry entries whose process is gone are pruned; Claude's stale session files are reported
  orphan     its parent is gone and no live terminal holds it (SDK sessions whose host died included)
  stray      processes that left a session's tree (own process group, reparented) whose session is gone:
             the collateral ones (strays.py), or all of them with `strays = "all"`
  duplicate  the copies of a session (one id, one user) other than the one in use (attached ones only
             with `reap_attached`)
  idle       idle at least `idle_after` (awake time; attached sessions only with `reap_attached`)
  over-age   older than `max_age` (off by default)
  over-cap   more live sessions than `max_sessions`: idle ones, longest idle first, down to the cap
  memory     available memory under `memory_floor`: idle ones, largest tree first, until available is back
             above floor + `memory_margin` (active ones only with --force)

Whatever the policy, a session is never ended when: the reaper runs inside it (it is the reaper or one of
its ancestors, or the reaper is in its tree); it belongs to another user (unless root and --all-users);
it matches `protect`; its age is unknown or under `min_age`. These hold for every process a plan would signal:
a tree holding a session (or PID) that must be kept is kept whole. Processes are only signalled when found to
be Claude Code or a descendant of one (by tree or by the markers in their environment), and never when their
real, effective and saved user ids differ (a set-user-id program).

Ending: SIGTERM to the session's whole tree (descendants that left it included), SIGKILL to whatever is
still there after `grace`. Right before every signal the target is re-checked: same pid and start token,
not a zombie, same owner, and a session's own process still runs Claude Code. On Linux the check and the
signal go through a pidfd opened first, so a pid reused between check and signal is never hit. Elsewhere
psutil makes the check (its terminate and kill compare pid and creation time once more right before
sending), which leaves a window of microseconds in which a PID reused at that very moment could be hit.

Windows has no SIGTERM: psutil's terminate() and kill() are both TerminateProcess, which ends a process at
once without letting it clean up. The two steps are kept (a process that survives the first is tried once
more), and `grace` is only the wait for the tree to be gone. The tree is ended from the top (the targets are
listed parents first) so that claude cannot start replacements for children being ended.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from . import environ, files, jsonio, paths, proc, procs, resolve, sessions
from . import strays as stray_rules
from .output import human_bytes, human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from .claudefiles import ClaudeFile
    from .proc import Backend
    from .records import Book, Entry
    from .registry import Registry
    from .sessions import Session, Stray, View
    from .settings import Settings

POLICIES = ("dead", "orphan", "stray", "duplicate", "idle", "over-age", "over-cap", "memory")
KILL = "kill"  # the reason of a session ended by hand, `claude-guard kill` (audit log, metrics): not a policy
MEMORY_FILE_ENV = "CLAUDE_GUARD_MEM_AVAILABLE_FILE"  # tests: a file holding the available bytes
AUDIT = "audit.jsonl"
_AUDIT_LIMIT = 4 << 20
# Windows has no SIGKILL: the number only selects psutil's kill() there (TerminateProcess, as terminate() is).
_KILL: int = getattr(signal, "SIGKILL", 9)


class Action:
    """One session (or stray group) to end, and what happened when it was."""

    def __init__(self, reason: str, detail: str, session: Session | None = None, stray: Stray | None = None,
                 targets: list[tuple[int, str, bool]] | None = None, rss: int = 0) -> None:
        self.reason = reason
        self.detail = detail
        self.session = session
        self.stray = stray
        row = session.row if session else stray.row if stray else None
        assert row is not None
        self.pid, self.start = row.pid, row.start
        self.session_id = session.session_id if session else stray.session_id if stray else None
        self.cwd = session.cwd if session else None
        self.targets = targets or []  # (pid, start token, must still be Claude Code)
        self.rss = rss
        self.outcome = "planned"  # planned | ended | failed
        self.signals: list[str] = []
        self.killed: list[int] = []  # pids that needed SIGKILL
        self.errors: list[str] = []
        self.resume: str | None = None
        self.told: str | None = None  # where the session was told why before its signal ("its terminal", ...)

    def json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "start": self.start,
            "session_id": self.session_id,
            "reason": self.reason,
            "detail": self.detail,
            "kind": "session" if self.session else "stray",
            "guarded": bool(self.session and self.session.guarded),
            "rss_bytes": self.rss,
            "processes": len(self.targets),
            "pids": [t[0] for t in self.targets],
            "cwd": self.cwd,
            "outcome": self.outcome,
            "signals": self.signals,
            "killed": self.killed,
            "errors": self.errors,
            "resume": self.resume,
            "told": self.told,
        }


class Skip:
    """A session a policy would have ended, and the rule that kept it."""

    def __init__(self, pid: int, session_id: str | None, policy: str, why: str) -> None:
        self.pid, self.session_id, self.policy, self.why = pid, session_id, policy, why

    def json(self) -> dict[str, Any]:
        return {"pid": self.pid, "session_id": self.session_id, "policy": self.policy, "why": self.why}


class Plan:
    def __init__(self, backend: Backend | None = None) -> None:
        self.backend = backend or proc.native()  # the view's: the targets' start tokens are its
        self.actions: list[Action] = []
        self.skips: list[Skip] = []
        self.pruned: list[Entry] = []
        self.stale: list[ClaudeFile] = []
        self.memory: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.kept: list[tuple[Stray, str]] = []  # strays this sweep leaves running, and why

    @property
    def freed(self) -> int:
        return sum(a.rss for a in self.actions if a.outcome in ("planned", "ended"))

    def json(self, dry_run: bool) -> dict[str, Any]:
        ended = [a for a in self.actions if a.outcome == "ended"]
        return {
            "dry_run": dry_run,
            "actions": [a.json() for a in self.actions],
            "skipped": [s.json() for s in self.skips],
            "pruned": [{"pid": e.get("pid"), "start": e.get("start"), "session_id": e.get("session_id")}
                       for e in self.pruned],
            "stale_session_files": [{"pid": f.pid, "session_id": f.session_id, "path": f.path} for f in self.stale],
            "memory": self.memory,
            "notes": self.notes,
            "kept_strays": [{**st.json(), "why": why} for st, why in self.kept],
            "summary": {
                "sessions": sum(1 for a in self.actions if a.session),
                "strays": sum(1 for a in self.actions if a.stray),
                "ended": len(ended),
                "failed": sum(1 for a in self.actions if a.outcome == "failed"),
                "freed_bytes": self.freed,
                "kept_strays": len(self.kept),
            },
        }


class Rules:
    """The never-end rules, fixed at the start of a sweep."""

    def __init__(self, settings: Settings, all_users: bool, backend: Backend | None = None) -> None:
        self.backend = backend = backend or proc.native()
        self.me = os.getpid()
        self.ancestors = set(backend.ancestors(self.me))
        self.uid = os.geteuid() if hasattr(os, "geteuid") else None
        # Windows: the account name (no uids; no root either, so --all-users never ends others' sessions).
        self.user = backend.whoami()[1] if backend.windows else None
        self.all_users = bool(all_users and self.uid == 0 and not backend.windows)
        self.min_age = settings.min_age
        self.reap_attached = settings.reap_attached
        # The reaper's own markers: started from a Bash tool (even one that left the tree, `nohup claude-guard
        # reap --watch &`), it carries its session's cookie and CLAUDE_PID, and never ends that session.
        self.cookie = os.environ.get(environ.COOKIE) or None
        self.claude_pid = os.environ.get("CLAUDE_PID", "")
        self.session_id = os.environ.get("CLAUDE_CODE_SESSION_ID") or None
        mine = backend.read(self.me)
        self.born = mine.created if mine is not None else None
        self.pids: set[int] = set()
        self.names: set[str] = set()
        self.folders: list[str] = []
        self._inside: dict[str, bool] = {}  # cwd -> within a protected folder (one realpath per folder a pass)
        for raw in settings.protect:
            item = str(raw).strip()
            if item.isdigit():
                self.pids.add(int(item))
            elif "/" in item or os.sep in item or item.startswith("~"):  # os.sep: C:\proj on Windows
                self.folders.append(os.path.realpath(os.path.expanduser(item)))
            elif item:
                self.names.add(item)

    def mine(self, pid: int) -> bool:
        """The reaper itself or one of its ancestors."""
        return pid == self.me or pid in self.ancestors

    def owner_ok(self, uid: int, user: str | None = None) -> bool:
        if self.all_users:
            return True
        if self.backend.windows:
            return proc.same_user(user, self.user)
        return self.uid is None or uid == self.uid

    def protected(self, pid: int, ids: Iterable[str | None], cwd: str | None) -> bool:
        if pid in self.pids or any(i in self.names for i in ids if i):
            return True
        if not cwd or not self.folders:
            return False
        if cwd not in self._inside:  # sessions share folders, and realpath reads each part of the path
            self._inside[cwd] = sessions.within(cwd, self.folders)
        return self._inside[cwd]

    def started_from(self, s: Session) -> bool:
        """The reaper was started inside `s` (its markers name it), wherever it runs now. A CLAUDE_PID names
        `s` only when `s` is older than the reaper (a reused PID is not its session); the session id counts
        only without the other two."""
        if self.cookie and s.cookie == self.cookie:
            return True
        if self.claude_pid:
            return self.claude_pid == str(s.pid) and self.born is not None and s.row.created <= self.born + 1.0
        return self.cookie is None and self.session_id is not None and s.session_id == self.session_id

    def setuid(self, pid: int) -> bool:
        """A set-user-id process: its real, effective and saved user ids differ. It may have
        inherited a user's markers while running as someone else: never signalled."""
        ids = self.backend.ids(pid)
        return ids is not None and len(set(ids)) > 1

    def veto(self, s: Session, attached_matters: bool) -> str | None:
        """Why `s` must not be ended, or None."""
        if self.mine(s.pid) or self.me in s.tree:
            return "the reaper runs inside this session"
        if self.started_from(s):
            return "the reaper was started from inside this session (it carries its markers)"
        if not self.owner_ok(s.row.uid, s.row.user):
            return f"belongs to {self.backend.owner(s.row)} (only root with --all-users ends other users' sessions)"
        if self.protected(s.pid, (s.session_id, s.name), s.cwd):
            return "matches protect"
        if s.age is None:
            return "age unknown"
        if s.age < self.min_age:
            return f"younger than min_age ({human_duration(s.age)} < {human_duration(self.min_age)})"
        if attached_matters and s.attached and not self.reap_attached:
            return f"attached to live terminal {s.terminal} (set reap_attached to include it)"
        return None

    def veto_stray(self, st: Stray, view: View) -> str | None:
        if self.mine(st.pid) or self.me in st.tree or any(self.mine(p) for p in st.tree):
            return "the reaper runs inside it"
        if not self.owner_ok(st.row.uid, st.row.user):
            return f"belongs to {self.backend.owner(st.row)}"
        if st.holds:
            return f"its tree holds live session PID {', '.join(map(str, st.holds))}"
        if self.setuid(st.pid):
            return "set-user-id: its real, effective and saved user ids differ (never signalled)"
        if self.protected(st.pid, (st.session_id,), st.cwd) or any(p in self.pids for p in st.tree):
            return "matches protect"
        age = view.now - st.row.created if st.row.created else None
        if age is None or age < self.min_age:
            return "younger than min_age" if age is not None else "age unknown"
        return None


def available_memory() -> tuple[int, int]:
    """(available, total) bytes. Tests inject the available figure with $CLAUDE_GUARD_MEM_AVAILABLE_FILE."""
    injected = os.environ.get(MEMORY_FILE_ENV)
    if sys.platform.startswith("linux"):
        total = 0
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
        if injected:
            with open(injected, encoding="ascii") as f:
                return int(f.read().split()[0]), total
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, total
    import psutil

    vm = psutil.virtual_memory()
    if injected:
        with open(injected, encoding="ascii") as f:
            return int(f.read().split()[0]), int(vm.total)
    return int(vm.available), int(vm.total)


def _bytes(setting: float, total: int) -> int:
    """A size setting: negative values are a share of total memory (config.parse_size's "10%")."""
    return int(-setting * total) if setting < 0 else int(setting)


def plan(view: View, settings: Settings, *, all_users: bool = False, force: bool = False,
         only: Iterable[str] | None = None, cooldown_until: float = 0.0,
         memory: Callable[[], tuple[int, int]] = available_memory) -> Plan:
    """Decide what to end: each policy of POLICIES (or of `only`) in turn, then what is kept is listed.
    Nothing is signalled here."""
    p = _Planner(view, settings, Rules(settings, all_users, view.backend))
    wanted = set(only or POLICIES)
    for name in POLICIES:
        if name in wanted:
            _POLICIES[name](p, force=force, cooldown_until=cooldown_until, memory=memory)
    if "orphan" in wanted:
        for s in p.live:
            if s.detached:
                p.out.skips.append(Skip(s.pid, s.session_id, "orphan", sessions.DETACHED))
    if "stray" in wanted:
        _list_kept(p.out, view, p.mode, p.gone_with)
    return p.out


class _Planner:
    """What the policies share: the view, the never-end rules, the plan so far, and who is already taken."""

    def __init__(self, view: View, settings: Settings, rules: Rules) -> None:
        self.view, self.settings, self.rules = view, settings, rules
        self.out = Plan(view.backend)
        self.taken: set[int] = set()
        self.mode = settings.strays  # which strays are ended: collateral (default), all, none
        self.owned: dict[int, list[Stray]] = {}  # live session pid -> the strays it left
        for st in view.strays:
            if st.owner is not None:
                self.owned.setdefault(st.owner.pid, []).append(st)
        self.by_pid = {s.pid: s for s in view.sessions}
        self.gone_with: set[int] = set()  # strays that go with their session
        self.live = sorted(view.sessions, key=lambda x: x.pid)

    def take(self, s: Session, policy: str, detail: str, attached_matters: bool = False) -> bool:
        """Plan to end `s` with its whole tree (and, with strays = all, the jobs it left), unless a never-end
        rule holds for it or for any process of its tree (then say why)."""
        if s.pid in self.taken:
            return False
        rules, view, out = self.rules, self.view, self.out
        why = rules.veto(s, attached_matters)
        if why:
            out.skips.append(Skip(s.pid, s.session_id, policy, why))
            return False
        # The never-end rules hold for every process the plan would signal: a nested session that must be
        # kept keeps the whole tree (ending its parent gracefully would end it too: claude ends its tool
        # shells, and the nested session runs in one).
        for p in s.tree:
            nested = self.by_pid.get(p)
            why = rules.veto(nested, False) if nested is not None else ("matches protect" if p in rules.pids
                                                                        else None)
            if why:
                out.skips.append(Skip(p, nested.session_id if nested else None, policy,
                                      f"{why}; kept, and with it the tree of PID {s.pid}"))
                out.skips.append(Skip(s.pid, s.session_id, policy, f"its tree holds PID {p}, which is kept ({why})"))
                return False
        targets = [(s.pid, s.start, True)]
        rss = s.rss
        for p in s.tree:
            row = view.table.rows.get(p)
            if row is not None and not rules.mine(p) and not rules.setuid(p):
                targets.append((p, row.start, False))
                rss += row.rss if p not in s.own else 0  # nested sessions' trees are not in s.rss yet
        if self.mode == "all":  # the jobs it left go with it
            for st in self.owned.get(s.pid, []):
                if rules.veto_stray(st, view) in (None, "younger than min_age"):  # goes with its session, any age
                    targets += _stray_targets(st, view, rules)
                    rss += st.rss
                    self.gone_with.add(st.pid)
        out.actions.append(Action(policy, detail, session=s, targets=targets, rss=rss))
        self.taken.add(s.pid)
        return True


def _policy_dead(p: _Planner, **_: Any) -> None:
    """Registry entries whose process is gone are pruned; Claude's stale session files are reported."""
    p.out.pruned = list(p.view.dead)
    p.out.stale = list(p.view.stale)


def _policy_orphan(p: _Planner, **_: Any) -> None:
    for s in p.live:
        if s.orphan:
            p.take(s, "orphan", s.orphan_why)


def _policy_stray(p: _Planner, **_: Any) -> None:
    """Strays whose session has ended: the collateral ones, or all with strays = all (those of a live session go
    with it; the others are listed as kept)."""
    if p.mode == "none":
        return
    for st in p.view.strays:
        if st.owner is not None or (p.mode == "collateral" and st.how == stray_rules.KEPT):
            continue  # listed as kept at the end
        why = p.rules.veto_stray(st, p.view)
        if why:
            p.out.kept.append((st, why))
            continue
        marker = next(f"{m}={st.env[m][:12]}" for m in sessions.MARKERS if st.env.get(m))
        p.out.actions.append(Action("stray", f"{st.why}; its session has ended ({marker})", stray=st,
                                    targets=_stray_targets(st, p.view, p.rules), rss=st.rss))


def _policy_duplicate(p: _Planner, **_: Any) -> None:
    for s in p.live:
        if s.duplicate_of:
            # An attached copy is someone's terminal: kept unless reap_attached, as for idle.
            p.take(s, "duplicate", f"session {s.session_id} is also open in PID {s.duplicate_of}, which is kept: "
                                   f"{s.duplicate_why}", attached_matters=True)


def _policy_idle(p: _Planner, **_: Any) -> None:
    idle_after = p.settings.idle_after
    if idle_after <= 0:
        return
    for s in p.live:
        if s.is_idle and s.idle is not None and s.idle >= idle_after:
            source = "Claude's status" if s.idle_source == "status" else "CPU under idle_cpu"
            p.take(s, "idle", f"idle {human_duration(s.idle)} by {source} (idle_after {human_duration(idle_after)})",
                   attached_matters=True)


def _policy_over_age(p: _Planner, **_: Any) -> None:
    max_age = p.settings.max_age
    if max_age <= 0:
        return
    for s in p.live:
        if s.over_age:
            p.take(s, "over-age", f"running {human_duration(s.age)} (max_age {human_duration(max_age)})")


def _policy_over_cap(p: _Planner, **_: Any) -> None:
    """More live sessions than max_sessions: idle ones, longest idle first, down to the cap."""
    cap = p.settings.max_sessions
    remaining = [s for s in p.live if s.pid not in p.taken]
    excess = len(remaining) - cap
    for s in sorted((s for s in remaining if s.is_idle), key=_idle_order):
        if excess <= 0:
            break
        if p.take(s, "over-cap", f"{len(remaining)} sessions live, max_sessions {cap}; idle {human_duration(s.idle)}",
                  attached_matters=True):
            excess -= 1


def _policy_memory(p: _Planner, *, force: bool, cooldown_until: float, memory: Callable[[], tuple[int, int]],
                   **_: Any) -> None:
    """Available memory under memory_floor: idle sessions, largest tree first, until it is back above floor +
    margin (active and attached ones too with --force); then a cooldown before the next memory kill."""
    floor_setting = p.settings.memory_floor
    if not floor_setting:
        return
    out = p.out
    available, total = memory()
    floor = _bytes(floor_setting, total)
    target = floor + _bytes(p.settings.memory_margin, total)
    out.memory = {"available_bytes": available, "total_bytes": total, "floor_bytes": floor,
                  "target_bytes": target, "pressure": available < floor}
    if available >= floor:
        return
    if cooldown_until > p.view.awake:
        out.notes.append(f"memory under the floor, but cooling down for {cooldown_until - p.view.awake:.0f}s "
                         "after the last memory-pressure kill")
        return
    expected = available + out.freed
    pool = sorted((s for s in p.live if s.is_idle), key=lambda x: (-x.rss, x.pid))
    if force:
        pool += sorted((s for s in p.live if not s.is_idle), key=lambda x: (-x.rss, x.pid))
    for s in pool:
        if expected >= target:
            break
        detail = (f"available {human_bytes(available)} under memory_floor {human_bytes(floor)}; "
                  f"{'idle' if s.is_idle else 'active (--force)'} tree of {human_bytes(s.rss)}")
        if p.take(s, "memory", detail, attached_matters=not force):
            expected += out.actions[-1].rss
    if expected < target:
        out.notes.append(f"memory stays under floor + margin ({human_bytes(target)}): no more idle "
                         "sessions to end" + ("" if force else " (--force also ends active ones)"))


# The policies in their documented order (POLICIES): a session is taken by the first that picks it.
_POLICIES: dict[str, Callable[..., None]] = {
    "dead": _policy_dead, "orphan": _policy_orphan, "stray": _policy_stray, "duplicate": _policy_duplicate,
    "idle": _policy_idle, "over-age": _policy_over_age, "over-cap": _policy_over_cap, "memory": _policy_memory,
}


def _list_kept(out: Plan, view: View, mode: str, gone_with: set[int]) -> None:
    """Every stray this sweep leaves running, with why: `ps` lists them, `reap` reports them."""
    listed = {st.pid for st, _ in out.kept} | gone_with | {a.pid for a in out.actions if a.stray}
    how_to = "`claude-guard ps` lists it; `reap --strays all` ends it"
    for st in view.strays:
        if st.pid in listed:
            continue
        if mode == "none":
            why = f"strays = none; {st.why}"
        elif st.owner is not None:
            why = st.why + ("" if mode == "all" else f"; {how_to} with its session")
        else:
            why = f"{st.why}; {how_to}"
        out.kept.append((st, why))
    for st, why in out.kept:
        out.skips.append(Skip(st.pid, st.session_id, "stray", why))


class Sweep:
    """What one sweep did: its plan (actions with their outcomes), how many sessions it saw live, and why its
    records (registry, ledger) could not be updated, if they could not."""

    def __init__(self, plan: Plan, live: int, dry_run: bool, records_error: str | None = None) -> None:
        self.plan, self.live, self.dry_run, self.records_error = plan, live, dry_run, records_error

    @property
    def failed(self) -> bool:
        return self.records_error is not None or any(a.outcome == "failed" for a in self.plan.actions)


def sweep(settings: Settings, *, dry_run: bool = False, all_users: bool = False, force: bool = False,
          only: Iterable[str] | None = None, under: Iterable[str] | None = None,
          backend: Backend | None = None, choose: Callable[[View], Plan] | None = None,
          by: str = "claude-guard reap") -> Sweep:
    """One sweep: look, decide, act (unless `dry_run`), remember. Only one reaper acts at a time (the ledger's
    lock); a dry run reads and plans without it and writes nothing.

    `choose`: the plan comes from it instead of the policies (`claude-guard kill`: the sessions a person
    named); such a pass is not counted as a sweep (doctor's "last sweep" is the unattended reaper's)."""
    import contextlib

    from . import ledger
    from .errors import ExitCode, GuardError
    from .registry import LockTimeout, Registry

    folder = settings.registry_dir()

    def look(book: Book) -> tuple[View, Plan]:
        view = sessions.collect(settings, ledger=book, all_users=all_users, under=under, backend=backend)
        if choose is not None:
            return view, choose(view)
        return view, plan(view, settings, all_users=all_users, force=force, only=only,
                          cooldown_until=book["cooldown_until"])

    if dry_run:
        view, out = look(ledger.load(folder))
        return Sweep(out, len(view.sessions), dry_run)
    held = contextlib.ExitStack()
    try:
        held.enter_context(ledger.lock(folder, settings.grace + 10.0))
    except LockTimeout:
        raise GuardError("another reap is still running (its lock is held); this one was skipped",
                         ExitCode.FAILURE) from None
    error: str | None = None
    with held:
        book = ledger.load(folder)
        view, out = look(book)
        execute(out, settings, all_users=all_users, log=False, by=by)
        # Signals were sent: they go into the audit log (and the report) before anything that can still fail.
        # A frozen registry lock or a full disk must not hide what was ended.
        audit(out, pruned=False)
        try:
            ended = [a for a in out.actions if a.outcome == "ended"]
            if out.pruned or any(a.session and a.session.guarded for a in ended):
                out.pruned = prune(Registry(folder, settings.lock_timeout),
                                   [(a.pid, a.start) for a in ended if a.session])
            audit(out, actions=False)
            ledger.observe(book, view, settings)
            ledger.record(book, out.actions, view.now, settings.cooldown, sweep=choose is None)
            ledger.save(folder, book)
        except (GuardError, OSError) as e:
            out.pruned = []  # nothing was pruned
            error = (f"the sweep's records could not be updated ({e}); what was ended is reported here and in the "
                     "audit log, and the next sweep prunes the registry")
            out.notes.append(error)
    return Sweep(out, len(view.sessions), dry_run, error)


def by_hand(view: View, settings: Settings, chosen: Iterable[Session], *, all_users: bool = False,
            force: bool = False) -> Plan:
    """The plan of `claude-guard kill`: end `chosen`, sessions a person named, each with its whole tree. The
    never-end rules hold for every process of each tree (owner, the reaper's own session, set-user-id,
    protect unless `force`), but not the two made for unattended sweeps: min_age (a person who names a
    session means it now) and the attached terminal (they may well be ending the one they are looking at)."""
    hand = settings.replace("claude-guard kill", min_age=0.0, **({"protect": []} if force else {}))
    p = _Planner(view, hand, Rules(hand, all_users, view.backend))
    for s in chosen:
        p.take(s, KILL, f"asked for by hand (claude-guard kill {s.pid})")
    return p.out


def _idle_order(s: Session) -> tuple[float, int, int]:
    """Over-cap order: longest idle first, then sessions started around the guard, then the largest tree."""
    return (-(s.idle or 0.0), 1 if s.guarded else 0, -s.rss)


def _stray_targets(st: Stray, view: View, rules: Rules) -> list[tuple[int, str, bool]]:
    out = [(st.pid, st.start, False)]
    for p in st.tree:
        row = view.table.rows.get(p)
        if row is not None and not rules.mine(p) and rules.owner_ok(row.uid, row.user) and not rules.setuid(p):
            out.append((p, row.start, False))
    return out


# ----------------------------------------------------------------------------------------------------
# Signals


def _signal(pid: int, start: str, claude: bool, sig: int, rules: Rules) -> str:
    """Send `sig` (SIGTERM or _KILL) to that very process, checked by the backend right before (proc.Backend.signal:
    identity, owner, still Claude Code). Returns "sent", "gone", or why it was not sent."""
    if rules.mine(pid):
        return "refused: the reaper or one of its ancestors"
    return rules.backend.signal(pid, start, sig, owner_ok=rules.owner_ok, claude=claude, is_shim=resolve.is_shim)


def execute(out: Plan, settings: Settings, *, all_users: bool = False, log: bool = True,
            stop: Callable[[], bool] | None = None, by: str = "claude-guard reap") -> None:
    """End every planned action: TERM to all targets, KILL to survivors after `grace`. Right before, each
    session is told why, where it can be (`tell`); `by` names who ends it."""
    if not out.actions:
        return
    rules = Rules(settings, all_users, out.backend)
    alive = out.backend.alive
    grace = settings.grace
    for action in out.actions:
        if action.session and action.session_id and action.reason != "duplicate":
            # Not for a duplicate: its conversation stays open in the copy that is kept, so resuming it would
            # be refused (and would interleave the transcript).
            action.resume = resume_hint(action.session)
        if action.session:
            action.told = tell(action, by, out.backend)
    for action in out.actions:
        action.signals.append("TERM")
        for pid, start, claude in action.targets:
            result = _signal(pid, start, claude, signal.SIGTERM, rules)
            if result.startswith("refused"):
                action.errors.append(f"PID {pid}: {result}")
    _wait(out.actions, time.monotonic() + grace, alive)
    for action in out.actions:
        survivors = _alive(action, alive)
        if not survivors:
            continue
        action.signals.append("KILL")
        for pid, start, claude in survivors:
            if _signal(pid, start, claude, _KILL, rules) == "sent":
                action.killed.append(pid)
    _wait(out.actions, time.monotonic() + 5.0, alive)
    for action in out.actions:
        left = _alive(action, alive)
        if left:
            action.outcome = "failed"
            action.errors.append("still running: " + ", ".join(str(p) for p, _, _ in left))
        else:
            action.outcome = "ended"
    if log:
        audit(out)


def tell(action: Action, by: str, backend: Backend) -> str | None:
    """One line to the session about to be ended, where it reads (its terminal; an SDK host's stderr pipe):
    what ends it, why, and how to resume it. Returns where it went, or None."""
    s = action.session
    assert s is not None
    if action.reason == "duplicate":
        after = f"; the conversation stays open in PID {s.duplicate_of}"
    elif action.resume:
        after = f". Resume it with: {action.resume}"
    else:
        after = ""
    return backend.tell(s.row, f"claude-guard: {by} is ending this Claude session ({action.reason}: "
                               f"{action.detail}){after}")


def _alive(action: Action, alive: Callable[[int, str], bool]) -> list[tuple[int, str, bool]]:
    return [t for t in action.targets if alive(t[0], t[1])]


def _wait(actions: list[Action], deadline: float, alive: Callable[[int, str], bool]) -> None:
    while time.monotonic() < deadline and any(_alive(a, alive) for a in actions):
        time.sleep(0.05)


def resume_hint(s: Session) -> str | None:
    """`cd <cwd> && claude --resume <id>` when the conversation has a transcript (Claude resumes per folder)."""
    return resume_command(s.session_id, s.cwd, os.path.dirname(os.path.dirname(s.file.path)) if s.file else None)


def resume_command(session_id: str | None, cwd: str | None, base: str | None) -> str | None:
    """The command that resumes conversation `session_id` in `cwd`, when Claude's folder `base` (default: the
    user's) holds its transcript."""
    if not session_id:
        return None
    base = base or paths.claude_dir()
    import glob

    transcripts = os.path.join(glob.escape(os.path.join(base, "projects")), "*", f"{glob.escape(session_id)}.jsonl")
    if not glob.glob(transcripts):
        return None
    import shlex

    if os.name == "nt":
        # cmd.exe and PowerShell 7 both take a double-quoted word literally except for `"` (ends it), `%`
        # (cmd.exe expands it) and `$` and backquote (PowerShell expands them): a part holding one of those
        # cannot be quoted for both, so no hint is given rather than one that would run something else.
        # pushd changes the drive too (where `cd /d` fails in PowerShell); `&&` needs PowerShell 7 or cmd.exe.
        parts = [session_id, *([cwd] if cwd else [])]
        if any(c in part for part in parts for c in '"%$`'):
            return None
        command = f'claude --resume "{session_id}"'
        return f'pushd "{cwd}" && {command}' if cwd else command
    # Every part is quoted: the id comes from a file or a command line someone else may have written.
    command = f"claude --resume {shlex.quote(session_id)}"
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def audit(out: Plan, *, actions: bool = True, pruned: bool = True) -> None:
    """Append one JSON line per ended (or failed) action and per pruned entry to the audit log (`actions`,
    `pruned`: which of the two; the reap writes the actions the moment signals were sent, before anything
    that can fail, and the pruned entries once pruning is done)."""
    import socket

    folder = paths.log_dir()
    path = os.path.join(folder, AUDIT)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    base = {"time": stamp, "ts": round(time.time(), 3), "host": socket.gethostname(), "reaper_pid": os.getpid()}
    lines = []
    for a in out.actions if actions else ():
        lines.append({**base, "event": a.outcome, "pid": a.pid, "start": a.start, "session_id": a.session_id,
                      "reason": a.reason, "detail": a.detail, "freed_bytes": a.rss if a.outcome == "ended" else 0,
                      "processes": len(a.targets), "signals": a.signals, "killed": a.killed, "errors": a.errors,
                      "cwd": a.cwd, "resume": a.resume})
    for e in out.pruned if pruned else ():
        lines.append({**base, "event": "pruned", "pid": e.get("pid"), "start": e.get("start"),
                      "session_id": e.get("session_id"), "reason": "dead"})
    if not lines:
        return
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        files.append(path, "".join(jsonio.dumps(line) + "\n" for line in lines), _AUDIT_LIMIT)
    except OSError:
        pass  # the report on stdout still says what was done; a full disk must not stop the reaper


def prune(registry: Registry, ended: Iterable[tuple[int, str]] = ()) -> list[Entry]:
    """Drop entries whose process is gone (and those just ended) from the registry, under its lock. The
    registry's start tokens are always this system's backend's (the launch wrote them)."""
    gone = set(ended)
    with registry.locked():
        data = registry.load()
        keep: list[Entry] = []
        dropped: list[Entry] = []
        for entry in data["sessions"]:
            if (entry["pid"], entry["start"]) in gone or not procs.alive(entry["pid"], entry["start"]):
                dropped.append(entry)
            else:
                keep.append(entry)
        if dropped:
            data["sessions"] = keep
            registry.save(data)
    return dropped
