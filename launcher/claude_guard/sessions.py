"""One view of every Claude Code session of the user: registry, process table and Claude's own files.

Sources, merged per process (identity is always pid + start token):
- the process table, read in one pass: every process of the user (or of everyone, for root), from which
  the Claude Code processes are picked by their executable (`proc.claude_args`), their process trees are
  built from parent links, and tree memory and CPU are summed;
- the guard's registry: which sessions were started through the guard, their cookie, parent and tty;
- Claude's own `~/.claude/sessions/<PID>.json`: session id, cwd, status (busy, shell, idle, waiting) and
  since when, trusted only when its `procStart` equals the process's start token (else it is stale);
- the sweep's ledger (ledger.py): CPU samples and the parent each process had when first seen.

The pass goes through one process backend (proc.native(), or one a test passes): /proc on Linux, psutil
elsewhere. Windows' differences (account names, consoles, parent PIDs that outlive their process) are
properties of the backend (proc/portable.py), asked through `backend.windows` and its methods.

States (one per session, the first that applies, in this order):
  orphan     its parent is gone (reparented) and it has no live terminal
  duplicate  another live process of the same user holds the same session id and is the copy in use
  over-age   older than `max_age` (only when max_age is set)
  idle       Claude says idle or waiting; without a status, CPU stayed under `idle_cpu` over `cpu_window`
  unguarded  started around the guard (not in the registry), otherwise fine
  active     anything else
"""

from __future__ import annotations

import os
import sys
import time

from . import argv, claudefiles, clock, environ, multiplexers, paths, proc, resolve
from . import strays as stray_rules
from .claudefiles import ClaudeFile
from .proc import GONE_STATES, Backend, Proc, same_user

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .records import Book, Entry, RegistryData, Sample, StraySeen
    from .settings import Settings

STATES = ("orphan", "duplicate", "over-age", "idle", "unguarded", "active")
IDLE_STATUSES = frozenset({"idle", "waiting"})  # Claude's own statuses that mean "nothing running"
BUSY_STATUSES = frozenset({"busy", "shell"})  # ... and that mean "working right now"
# Markers a session's descendants carry in their environment (the guard's cookie, and Claude's own).
MARKERS = (environ.COOKIE, "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID")
# What the sweep reads of a process's environment: the markers, and where its Claude keeps its files.
WANTED_ENV = (*MARKERS, "CLAUDE_CONFIG_DIR")
# What `ps --json` notes for a detached session (docs/sweep.md, "Detached at launch").
DETACHED = ("detached: its parent was PID 1 from its launch (its launcher had exited, or a service started it); "
            "nothing it depended on went away, so it is not an orphan")


class Table:
    """The process table of one pass: rows by pid, and children by parent."""

    def __init__(self, rows: dict[int, Proc], backend: Backend | None = None) -> None:
        self.rows = rows
        self.children: dict[int, list[int]] = {}
        windows = (backend or proc.native()).windows
        for row in rows.values():
            if windows:
                parent = rows.get(row.ppid)
                if parent is not None and parent.created > row.created:
                    continue  # its parent died and the PID now names a newer process: not its child
            self.children.setdefault(row.ppid, []).append(row.pid)

    def descendants(self, pid: int, stop: Iterable[int] = ()) -> list[int]:
        """Every descendant of `pid` (not `pid` itself), parents before children; subtrees rooted at a pid
        in `stop` are left out."""
        stop = set(stop)
        out: list[int] = []
        todo = list(self.children.get(pid, ()))
        while todo:
            child = todo.pop()
            if child in stop or child == pid:
                continue
            out.append(child)
            todo.extend(self.children.get(child, ()))
        return out


def scan(uid: int | None, user: str | None = None, backend: Backend | None = None) -> Table:
    """One pass over the process table: the processes of `uid` (with Windows semantics: of account `user`),
    or of every user when that is None."""
    backend = backend or proc.native()
    return Table({row.pid: row for row in backend.table(uid, user)}, backend)


class Session:
    """One live Claude Code process and the facts the sweep judges it by."""

    def __init__(self, row: Proc, call: argv.Call) -> None:
        self.row = row
        self.pid = row.pid
        self.start = row.start
        self.call = call
        self.kind = call.kind
        self.session_id: str | None = call.session_id
        self.name: str | None = None
        self.entry: Entry | None = None  # the registry entry, when guarded
        self.file: ClaudeFile | None = None
        self.status: str | None = None
        self.age: float | None = None
        self.idle: float | None = None  # awake seconds idle; None: unknown
        self.idle_source: str | None = None  # "status" or "cpu"
        self.is_idle = False
        self.cpu_percent: float | None = None
        self.tree: list[int] = []  # descendants, nested sessions included (all are ended with it)
        self.own: list[int] = []  # the tree without nested sessions' trees (what its memory counts)
        self.rss = 0
        self.cpu = 0.0
        self.cwd: str | None = None
        self.terminal: str | None = None
        self.attached = False
        self.no_client: str | None = None  # "tmux"/"screen": its terminal is a multiplexer's no client is attached to
        self.parent_name: str | None = None
        self.orphan = False
        self.orphan_why = ""
        self.detached = False  # launched with parent 1 (see _judge_orphan): not an orphan
        self.duplicate_of: int | None = None  # the copy of the same session that is kept
        self.duplicate_why = ""
        self.over_age = False
        self.cookie: str | None = None
        self.state = "active"

    @property
    def guarded(self) -> bool:
        return self.entry is not None

    def json(self) -> dict[str, Any]:
        """The object `ps --json` prints (schema in docs/sweep.md; keys are only ever added)."""
        return {
            "type": "session",
            "pid": self.pid,
            "start": self.start,
            "session_id": self.session_id,
            "name": self.name,
            "state": self.state,
            "guarded": self.guarded,
            "kind": self.kind,
            "status": self.status,
            "age_s": _round(self.age),
            "idle_s": _round(self.idle),
            "idle_source": self.idle_source,
            "cpu_percent": _round(self.cpu_percent, 2),
            "rss_bytes": self.rss,
            "processes": 1 + len(self.own),
            "cwd": self.cwd,
            "terminal": self.terminal,
            "attached": self.attached,
            "no_client": self.no_client,
            "parent_pid": self.row.ppid,
            "parent": self.parent_name,
            "orphan": self.orphan,
            "duplicate_of": self.duplicate_of,
            "uid": self.row.uid,
            "argv": self.row.cmdline,
            "detached": self.detached,
            "note": DETACHED if self.detached else None,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Stray:
    """A process outside every live session's tree that carries a session's markers: a Bash-tool command in
    its own process group, or a grandchild reparented to init. `owner` is the live session it came from,
    or None when that session is gone (then it is an orphaned descendant of a dead session). `how` is
    "collateral" or "kept" (strays.py), `why` says from what."""

    def __init__(self, row: Proc, env: dict[str, str]) -> None:
        self.row = row
        self.pid = row.pid
        self.start = row.start
        self.env = env
        self.owner: Session | None = None
        self.tree: list[int] = []
        self.rss = row.rss
        self.how = stray_rules.KEPT
        self.why = ""
        self.holds: list[int] = []  # live sessions in its tree (a tmux server holding one): never ended
        self.age: float | None = None
        self.cwd: str | None = None
        self.ports: list[int] = []  # TCP ports its group listens on (filled by `ps`)
        self.resume: str | None = None  # `claude --resume <id>` (filled by `ps`)

    @property
    def session_id(self) -> str | None:
        return self.env.get("CLAUDE_CODE_SESSION_ID") or (self.owner.session_id if self.owner else None)

    @property
    def pids(self) -> list[int]:
        return [self.pid, *self.tree]

    @property
    def end(self) -> str:
        """How its user ends it by hand."""
        return stray_rules.end_hint(self.pids)

    def json(self) -> dict[str, Any]:
        """A stray's object in `ps --json` and `reap --json`'s `kept_strays` (docs/sweep.md)."""
        return {"type": "stray", "pid": self.pid, "start": self.start, "session_id": self.session_id,
                "owner_pid": self.owner.pid if self.owner else None, "rss_bytes": self.rss,
                "processes": 1 + len(self.tree), "argv": self.row.cmdline, "state": self.how, "how": self.how,
                "why": self.why, "age_s": _round(self.age), "cwd": self.cwd, "uid": self.row.uid,
                "pids": self.pids, "ports": self.ports, "resume": self.resume,
                "end": self.end}


class Waiting:
    """A launch queued for a session slot (on_cap = wait), as `ps` lists it: `position` 1 is admitted next."""

    def __init__(self, pid: int, start: str, since: float, position: int, now: float) -> None:
        self.pid = pid
        self.start = start
        self.since = since  # epoch seconds
        self.position = position
        self.waited = max(0.0, now - since)

    def json(self) -> dict[str, Any]:
        """A waiter's object in `ps --json` (docs/sweep.md)."""
        return {"type": "waiter", "pid": self.pid, "start": self.start, "since": self.since,
                "waited_s": _round(self.waited), "position": self.position}


class View:
    """Everything one pass found."""

    def __init__(self, table: Table, sessions: list[Session], strays: list[Stray], dead: list[Entry],
                 stale: list[ClaudeFile], now: float, awake: float, backend: Backend | None = None) -> None:
        self.backend = backend or proc.native()  # the one that read `table`: its start tokens are in every row
        self.table = table
        self.sessions = sessions
        self.strays = strays
        self.dead = dead  # registry entries whose process is gone
        self.stale = stale  # Claude session files whose process is gone
        self.now = now
        self.awake = awake
        self.waiters: list[Waiting] = []  # launches queued at the cap, in the order they are admitted

    def by_state(self) -> dict[str, list[Session]]:
        out: dict[str, list[Session]] = {state: [] for state in STATES}
        for s in self.sessions:
            out[s.state].append(s)
        return out


def collect(settings: Settings, *, registry: RegistryData | None = None, ledger: Book | None = None,
            all_users: bool = False, strays: bool = True, now: float | None = None,
            under: Iterable[str] | None = None, backend: Backend | None = None) -> View:
    """Build the view. `registry` is the registry's content (None: read it), `ledger` the sweep state.

    `under`: folders; when given, the view holds only the sessions (and strays) whose working folder is in
    one of them, as if no other existed (`reap --under DIR` cleans up one project; tests use it to stay
    away from processes they did not start). `backend`: the process backend (default: this system's).
    """
    backend = backend or proc.native()
    now = time.time() if now is None else now
    awake = clock.awake()
    me, my_name = backend.whoami()
    table = scan(None if all_users else me, None if all_users else my_name, backend)
    data = _read_registry(settings) if registry is None else registry
    sleep: list[list[float]] = list(ledger["sleep"]) if ledger else []
    seen: Mapping[str, Sample] = ledger["procs"] if ledger else {}

    sessions = _claude_processes(table, backend)
    dead = _match_registry(data, sessions, table, backend)
    stale = _match_files(sessions, table, me, backend)
    left = stale  # every file left behind, before --under narrows what is reported
    nested = {s.pid for s in sessions}
    offset = clock.asleep_total()
    asked: dict[str, dict[str, int] | None] = {}  # what each tmux server said in this pass (multiplexers.py)
    for s in sessions:
        sample = seen.get(f"{s.pid}:{s.start}")
        parent, stale_parent = _describe(s, table, nested, now, backend)
        _judge_orphan(s, parent, sample, stale_parent, table=table, backend=backend)
        if s.attached and settings.multiplexer_detached:
            # A tmux or screen session nobody is attached to holds its terminal, but no person is at it: detached
            # for the idle and duplicate rules (an orphan is still judged by its terminal, above).
            s.no_client = multiplexers.unattended(s.row, table.rows, backend, asked)
            s.attached = s.no_client is None
        _judge_idle(s, settings, sample, sleep, offset, now, awake)
        s.over_age = bool(settings.max_age) and s.age is not None and s.age >= settings.max_age

    every = sessions
    scope: list[str] = []
    if under is not None:
        scope = [os.path.realpath(os.path.expanduser(d)) for d in under]
        sessions = [s for s in sessions if within(s.cwd, scope)]
        stale = [f for f in stale if not f.cwd or within(f.cwd, scope)]  # another project's leftovers: not here
    _judge_duplicates(sessions, backend)
    for s in sessions:
        s.state = ("orphan" if s.orphan else "duplicate" if s.duplicate_of else "over-age" if s.over_age
                   else "idle" if s.is_idle else "unguarded" if not s.guarded else "active")

    known = {e.get("cookie") for e in data["sessions"]} - {None, ""}
    lost = _strays(table, every, backend, me if not all_users else None, my_name if not all_users else None,
                   known=known, seen=ledger["strays"] if ledger else {}, now=now, left=left) if strays else []
    if under is not None:
        lost = [st for st in lost if within(st.cwd, scope)]
    view = View(table, sessions, lost, dead, stale, now, awake, backend)
    view.waiters = _waiters(data, backend, scope if under is not None else None, now)
    return view


def _waiters(data: RegistryData, backend: Backend, scope: list[str] | None, now: float) -> list[Waiting]:
    """The launches holding a place in the queue, by the launch's own rule (admission.queued: a live guard process
    of this user renewing its place); numbered in queue order before --under narrows them."""
    if not data["waiters"]:
        return []  # the usual case: the launch side's rules need not even be loaded
    from .admission import queued

    mono = time.monotonic()
    live = [w for w in data["waiters"] if queued(w, mono)]
    out = [Waiting(w["pid"], w["start"], float(w.get("since") or now), n, now) for n, w in enumerate(live, 1)]
    return out if scope is None else [w for w in out if within(backend.cwd(w.pid), scope)]


def _claude_processes(table: Table, backend: Backend) -> list[Session]:
    """Stage 1: the Claude Code processes of the table that are sessions (not a `--version` call)."""
    out: list[Session] = []
    for row in table.rows.values():
        if row.state in GONE_STATES or not row.cmdline_read \
                or "claude" not in " ".join(row.cmdline) + (row.exe or "") + row.comm:
            continue
        args = proc.claude_args(row, resolve.is_shim)
        if args is None or (backend.windows and _our_launcher(row)):
            continue
        call = argv.classify(args)
        if call.session:
            out.append(Session(row, call))
    return out


def _match_registry(data: RegistryData, sessions: list[Session], table: Table, backend: Backend) -> list[Entry]:
    """Stage 2: each session's registry entry (it is guarded), and the entries whose process is gone."""
    by_pid = {s.pid: s for s in sessions}
    dead: list[Entry] = []
    for entry in data["sessions"]:
        held = table.rows.get(entry.get("pid", 0))
        if held is not None and held.start == entry.get("start") and held.state not in GONE_STATES:
            if held.pid in by_pid:
                by_pid[held.pid].entry = entry
        elif held is None and entry.get("pid") and backend.alive(entry["pid"], entry.get("start")):
            continue  # another user's process (a scan of one uid): not ours to judge
        else:
            dead.append(entry)
    for s in sessions:
        # Only the guard's own record names a session's cookie: one in its environment may be inherited from
        # the guarded session it was started in (a claude run by a Bash tool), and is that session's.
        s.cookie = s.entry.get("cookie") if s.entry else None
    return dead


def _match_files(sessions: list[Session], table: Table, me: int | None, backend: Backend) -> list[ClaudeFile]:
    """Stage 3: each session's own Claude session file; returns the files whose process is gone."""
    by_pid = {s.pid: s for s in sessions}
    stale: list[ClaudeFile] = []

    def match(folders: list[str]) -> None:
        for found in claudefiles.read(folders):
            writer = table.rows.get(found.pid)
            if writer is not None and not found.belongs_to(writer):
                continue  # planted by someone else (a user's folder naming another user's process): no file
            if writer is None or writer.state in GONE_STATES or not found.matches(writer, backend):
                stale.append(found)  # its process is gone (killed before it could remove the file)
            elif found.pid in by_pid:
                by_pid[found.pid].file = found

    default = paths.claude_sessions_dir()
    match([default])
    # A session with no file there may run with another CLAUDE_CONFIG_DIR, or belong to another user.
    others: list[str] = []
    for s in sessions:
        if s.file is None:
            env = backend.environment(s.pid, WANTED_ENV) or {}
            if env.get("CLAUDE_CONFIG_DIR"):
                others.append(os.path.join(env["CLAUDE_CONFIG_DIR"], "sessions"))
            elif me is not None and s.row.uid != me:
                home = _home(s.row.uid)
                if home:
                    others.append(os.path.join(home, ".claude", "sessions"))
    match([f for f in dict.fromkeys(others) if os.path.realpath(f) != os.path.realpath(default)])
    return stale


def _describe(s: Session, table: Table, nested: set[int], now: float, backend: Backend) -> tuple[Proc | None, bool]:
    """Stage 4: a session's tree, memory, CPU, age, what its file says, folder, terminal and parent. Returns
    (parent, stale): its parent's row, and whether its parent PID no longer names its parent (Windows)."""
    row = s.row
    s.tree = table.descendants(s.pid)
    s.own = table.descendants(s.pid, stop=nested)
    s.rss = row.rss + sum(table.rows[p].rss for p in s.own)
    s.cpu = row.cpu + sum(table.rows[p].cpu for p in s.own)
    s.age = max(0.0, now - row.created) if row.created else None
    entry, cf = s.entry, s.file
    if cf is not None:
        s.session_id = cf.session_id or s.session_id
        s.name, s.status = cf.name, cf.status
        if cf.entrypoint == "sdk-cli" and s.kind == "interactive":
            s.kind = "print"
    s.session_id = s.session_id or (entry.get("session_id") if entry else None)
    s.cwd = (cf.cwd if cf else None) or (entry.get("cwd") if entry else None) or backend.cwd(s.pid)
    s.terminal, s.attached = backend.terminal(row, s.kind)
    parent = table.rows.get(row.ppid)
    stale_parent = backend.parent_gone(row, table.rows)
    if stale_parent:
        parent = None
    s.parent_name = parent.comm if parent else None
    return parent, stale_parent


def _judge_duplicates(sessions: list[Session], backend: Backend) -> None:
    """Stage 5: of the live processes of one user on one session id, the copy in use is kept and every
    other is a duplicate of it.

    Only processes of one owner are compared: session ids are readable by anyone in /proc/<pid>/cmdline,
    so another user's process naming your session says nothing about yours. The copy kept is the one a
    person is using, never the older by age alone: attached to a live terminal first, then the most recently
    active (Claude's status says busy now, else the latest of its status change and its transcript's last
    write), and only when nothing tells them apart the newer, as the launch's takeover keeps the newest.
    """
    holders: dict[tuple[object, str], list[Session]] = {}
    for s in sessions:
        if s.session_id:
            owner: object = (s.row.user or "").casefold() if backend.windows else s.row.uid
            holders.setdefault((owner, s.session_id), []).append(s)
    for group in holders.values():
        if len(group) < 2:
            continue
        ranked = sorted(group, key=_in_use, reverse=True)
        keep = ranked[0]
        for s in ranked[1:]:
            s.duplicate_of = keep.pid
            if keep.attached and not s.attached:
                s.duplicate_why = f"attached to {keep.terminal}; this copy has no live terminal"
            elif _in_use(keep)[1] > _in_use(s)[1]:
                s.duplicate_why = "active more recently (Claude's status and transcript)"
            else:
                s.duplicate_why = "the newer copy (nothing else tells them apart; takeover keeps the newest too)"


def _in_use(s: Session) -> tuple[bool, float, float, int]:
    """How much a copy of a session is in use, for `_judge_duplicates` (greater: more)."""
    if s.status in BUSY_STATUSES:
        active = float("inf")
    else:
        status_at = (s.file.status_at if s.file else None) or 0.0
        active = max(status_at, _transcript_written(s))
    return (s.attached, active, s.row.created, s.pid)


def _transcript_written(s: Session) -> float:
    """When this copy's transcript was last written (Claude keeps one per folder and session id:
    `<claude dir>/projects/<cwd, every character outside [A-Za-z0-9] as '-'>/<id>.jsonl`); 0 when unknown."""
    if not s.cwd or not s.session_id:
        return 0.0
    folder = "".join(c if c.isascii() and c.isalnum() else "-" for c in s.cwd)
    if len(folder) > 200:
        return 0.0  # Claude shortens such names with a hash of its own
    base = os.path.dirname(os.path.dirname(s.file.path)) if s.file else paths.claude_dir()
    try:
        return os.stat(os.path.join(base, "projects", folder, s.session_id + ".jsonl")).st_mtime
    except (OSError, ValueError):
        return 0.0


def within(folder: str | None, scope: Iterable[str]) -> bool:
    """`folder` is one of `scope` or inside one of them."""
    if not folder:
        return False
    # normcase: Windows compares paths without case (elsewhere it changes nothing).
    folder = os.path.normcase(os.path.realpath(folder))
    return any(folder == d or folder.startswith(d.rstrip(os.sep) + os.sep) for d in map(os.path.normcase, scope))


def current(all_users: bool = False, what: str = "this command",
            under: Iterable[str] | None = None) -> tuple[Settings, Book, View]:
    """(settings, ledger, view) for the read-only commands (ps, metrics): nothing is written."""
    from . import configcache, ledger
    from .commands import all_users_allowed

    all_users_allowed(all_users, f"{what} covers your own sessions")
    settings = configcache.load()  # the settings the config cache made of the file, as the shim takes them
    book = ledger.load(settings.registry_dir())
    return settings, book, collect(settings, ledger=book, all_users=all_users, under=under)


def _home(uid: int) -> str | None:
    """Another user's home folder (root's --all-users view), None when unknown."""
    if sys.platform == "win32":
        return None  # no uids; another account's profile is not ours to read anyway
    import pwd

    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def _our_launcher(row: Proc) -> bool:
    """Windows: our own shim is an executable named claude.exe (pip's launcher, which starts the guard and
    waits for it), so proc.claude_args takes it for the native claude; its marker tells it apart."""
    return bool(row.exe) and os.path.basename(row.exe or "").lower() in proc.CLAUDE_NAMES \
        and resolve.is_shim(row.exe or "")


def _read_registry(settings: Settings) -> RegistryData:
    """The registry as it is now, read without writing anything (no lock needed: it is replaced by rename),
    with the launch side's checks: a symlinked, foreign-owned or world-writable registry is refused."""
    from .registry import Registry

    return Registry(settings.registry_dir()).peek()


def _judge_orphan(s: Session, parent: Proc | None, seen: Sample | None, stale_parent: bool = False, *,
                  table: Table | None = None, backend: Backend | None = None) -> None:
    """Orphan: the parent it was started by is gone (it was adopted), and no live terminal holds it.
    `stale_parent`: its parent PID no longer names its parent (Windows, see Portable.parent_gone).

    Adoption is judged by evidence that the parent changed, never by the parent's name: tini, systemd
    (`systemd-run --user`) or a container's init may well have started a session themselves. Evidence:
    the parent recorded at launch (registry) or seen by an earlier sweep (ledger) is not its parent now; its
    parent started after it (no process is older than its child: this one took it over); or it was born in
    a session whose leader has exited and that is neither its own nor its parent's (a child starts in its
    parent's session unless it makes its own, so it has another parent now: the shell of a closed terminal
    or a service that died left it behind).
    """
    row = s.row
    why = ""
    expected = (s.entry.get("guard_pid") or s.entry.get("ppid")) if s.entry else None
    if isinstance(expected, int) and expected > 1 and row.ppid != expected:
        why = f"its parent (PID {expected}) is gone"
    elif seen and isinstance(seen.get("ppid"), int) and seen["ppid"] > 1 and seen["ppid"] != row.ppid:
        why = f"its parent (PID {seen['ppid']}) is gone"
    elif stale_parent:
        why = f"its parent (PID {row.ppid}) is gone"
    elif expected is None and parent is not None and parent.created > row.created:
        why = f"adopted by PID {row.ppid} ({parent.comm}), which started after it"
    elif expected is None and table is not None and backend is not None:
        leader = _lost_session(row, table, backend)
        if leader:
            name = parent.comm if parent is not None else "?"
            why = f"adopted by PID {row.ppid} ({name}): the session it was started in (led by PID {leader}) has " \
                  "lost its leader"
    if not why and row.ppid == 1:
        # Launched with parent 1 (registered so), or first seen there with no evidence of an earlier parent:
        # the same rule guarded or not. Nothing it depended on went away (docs/sweep.md, "Detached at launch").
        s.detached = True
        return
    if why and s.attached:
        s.orphan_why = why + f", but attached to live terminal {s.terminal}"
        return
    if why:
        s.orphan = True
        s.orphan_why = why + ", no live terminal"


def _lost_session(row: Proc, table: Table, backend: Backend) -> int:
    """The leader's PID of the session `row` was born in, when that session is neither its own nor its
    parent's and its leader has exited; else 0. (POSIX only: Windows has no sessions.)"""
    if backend.windows or not hasattr(os, "getsid") or row.ppid <= 0:
        return 0  # PID 0: started from outside this PID namespace (`docker exec`), never an adoption
    try:
        sid = os.getsid(row.pid)
        parent_sid = os.getsid(row.ppid)
    except OSError:
        return 0  # gone, or not ours to ask: no evidence
    if sid <= 0 or sid in (row.pid, parent_sid):
        return 0
    leader = table.rows.get(sid)
    if leader is not None:
        return sid if leader.created > row.created else 0  # a newer process has the leader's PID now
    # Not in the table (another user's, or gone): gone too when that PID now names a newer process.
    newer = backend.read(sid)
    return sid if newer is None or newer.created > row.created else 0


def _judge_idle(s: Session, settings: Settings, seen: Sample | None, sleep: list[list[float]],
                offset: float, now: float, awake: float) -> None:
    """Idle by Claude's own status where it has one, else by CPU under `idle_cpu` over `cpu_window`."""
    if seen and isinstance(seen.get("ref"), list) and awake > seen["ref"][0] + 1:
        s.cpu_percent = max(0.0, (s.cpu - seen["ref"][1]) / (awake - seen["ref"][0]) * 100.0)
    elif s.age:
        s.cpu_percent = s.cpu / s.age * 100.0  # lifetime average until the sweep has a sample
    if s.status:
        s.idle_source = "status"
        s.is_idle = s.status in IDLE_STATUSES
        at = s.file.status_at if s.file else None
        s.idle = clock.idle_for(sleep, at, now, offset) if s.is_idle and at else (None if s.is_idle else 0.0)
        return
    if not seen or not isinstance(seen.get("ref"), list):
        return  # no sample yet: idle time unknown, so never judged idle
    quiet = seen.get("quiet")
    window = settings.cpu_window
    used = s.cpu - float(seen["ref"][1])
    if used > settings.idle_cpu / 100.0 * window:
        s.idle_source, s.idle = "cpu", 0.0  # busy within the current window already
    elif isinstance(quiet, (int, float)):
        s.idle_source, s.is_idle, s.idle = "cpu", True, max(0.0, awake - quiet)
    elif seen.get("judged"):
        s.idle_source, s.idle = "cpu", 0.0


def _strays(table: Table, sessions: list[Session], backend: Backend, uid: int | None,
            user: str | None = None, *, known: set[str] | None = None, seen: Mapping[str, StraySeen] | None = None,
            now: float | None = None, left: list[ClaudeFile] | None = None) -> list[Stray]:
    """Processes outside every live session's tree that carry a session's markers, grouped by the topmost
    one of each chain (its descendants go with it), each with the live session it came from, if any, and
    judged collateral or kept (strays.py). `known`: every cookie the registry holds (live or dead); `seen`:
    the ledger's record of strays from earlier sweeps; `left`: Claude's session files whose process is gone
    (a claude that died without cleaning up leaves its file behind)."""
    in_tree: set[int] = set()
    for s in sessions:
        in_tree.add(s.pid)
        in_tree.update(s.tree)
    marked: dict[int, Stray] = {}
    for row in table.rows.values():
        if row.pid in in_tree or row.pid <= 1 or row.state in GONE_STATES or (uid is not None and row.uid != uid) \
                or (user is not None and not same_user(row.user, user)):
            continue
        env = backend.environment(row.pid, WANTED_ENV)
        if env and any(env.get(name) for name in MARKERS):
            marked[row.pid] = Stray(row, env)
    covered: set[int] = set()
    for stray in marked.values():
        stray.tree = table.descendants(stray.pid)
        covered.update(stray.tree)
    by_cookie = {s.cookie: s for s in sessions if s.cookie}  # an empty cookie matches nothing
    by_pid = {s.pid: s for s in sessions}
    by_id: dict[str, list[Session]] = {}
    for s in sessions:
        if s.session_id:
            by_id.setdefault(s.session_id, []).append(s)
    out = []
    for stray in marked.values():
        if stray.pid in covered:
            continue
        stray.rss = stray.row.rss + sum(table.rows[p].rss for p in stray.tree if p in table.rows)
        stray.owner = _owner(stray, by_cookie, by_pid, by_id, known or set(), backend)
        stray.holds = [p for p in stray.tree if p in by_pid]
        stray.cwd = backend.cwd(stray.pid)
        if now is not None and stray.row.created:
            stray.age = max(0.0, now - stray.row.created)
        if stray.owner is not None:
            stray.how, stray.why = stray_rules.KEPT, (f"left its session's tree while the session (PID "
                                                      f"{stray.owner.pid}) was alive; that session still runs")
        else:
            stray.how, stray.why = stray_rules.judge(stray.row, stray.env, backend, table.rows,
                                                     (seen or {}).get(f"{stray.pid}:{stray.start}"),
                                                     _crashed(stray, left or [], table, backend))
        out.append(stray)
    return out


def _crashed(stray: Stray, left: list[ClaudeFile], table: Table, backend: Backend) -> bool:
    """The claude a stray came from died without cleaning up: its own session file is still there (Claude
    removes it on every normal exit). The file is found by the stray's CLAUDE_PID, else by its session id, in
    the folders already read, or in the stray's own CLAUDE_CONFIG_DIR; it must be older than the stray."""
    files = list(left)
    folder = stray.env.get("CLAUDE_CONFIG_DIR")
    if folder:
        for found in claudefiles.read([os.path.join(folder, "sessions")]):
            writer = table.rows.get(found.pid)
            if writer is None or writer.state in GONE_STATES or not found.matches(writer, backend):
                files.append(found)
    pid, sid = stray.env.get("CLAUDE_PID", ""), stray.env.get("CLAUDE_CODE_SESSION_ID")
    born = stray.row.created + 1.0
    return any((f.pid == int(pid) if pid.isdigit() else bool(sid) and f.session_id == sid)
               and (f.started_at is None or f.started_at <= born) for f in files)


def _owner(stray: Stray, by_cookie: Mapping[str, Session], by_pid: Mapping[int, Session],
           by_id: Mapping[str, list[Session]], known: set[str], backend: Backend | None = None) -> Session | None:
    """The live session a stray descends from. A descendant is never older than its ancestor, which rules
    out a reused CLAUDE_PID. When the cookie or CLAUDE_PID names a session that is gone, the session id
    is not consulted: a later process resuming the same conversation is not its ancestor. A cookie this
    registry never held (another user's under root's --all-users, another state folder) names nothing
    either way: then the session id does, else the process group: one of claude's helpers stays in claude's
    group, and a live session leading that group is the one it came from (kernel evidence, unplantable)."""
    born = stray.row.created + 1.0  # start times are rounded to clock ticks
    env = stray.env
    cookie, pid = env.get(environ.COOKIE, ""), env.get("CLAUDE_PID", "")
    owner = by_cookie.get(cookie) if cookie else None
    if owner is None and pid.isdigit():
        owner = by_pid.get(int(pid))
    if owner is not None:
        if owner.row.created > born or owner.row.uid != stray.row.uid:
            return None  # a reused CLAUDE_PID, or a marker planted in another user's process
        return owner
    if pid.isdigit() or cookie in known:
        return None  # the session it names is gone
    holders = [s for s in by_id.get(env.get("CLAUDE_CODE_SESSION_ID", ""), []) if s.row.created <= born]
    holders = [s for s in holders if s.row.uid == stray.row.uid]
    if len(holders) == 1:
        return holders[0]
    group = backend.session(stray.pid) if backend is not None and not holders else None
    leader = by_pid.get(group[0]) if group else None
    if leader is not None and leader.row.created <= born and leader.row.uid == stray.row.uid:
        return leader
    return None
