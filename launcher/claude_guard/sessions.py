"""One view of every Claude Code session of the user: registry, process table and Claude's own files.

Sources, merged per process (identity is always pid + start token):
- the process table, read in one pass: every process of the user (or of everyone, for root), from which
  the Claude Code processes are picked by their executable (`procs.claude_args`), their process trees are
  built from parent links, and tree memory and CPU are summed;
- the guard's registry: which sessions were started through the guard, their cookie, parent and tty;
- Claude's own `~/.claude/sessions/<PID>.json`: session id, cwd, status (busy, shell, idle, waiting) and
  since when, trusted only when its `procStart` equals the process's start token (else it is stale);
- the sweep's ledger (ledger.py): CPU samples and the parent each process had when first seen.

On Linux the pass reads /proc directly; elsewhere it is one psutil `process_iter` pass. (psutil's pass
costs about 4 times procps `ps` over 500 processes, before its own import; /proc read here costs about
the same as `ps`.) Both produce the same `Process` rows, except for the start token: clock ticks since boot
from /proc, the creation time in epoch seconds from psutil (procs.start_token gives the same per system).

Windows differs in three ways (`WINDOWS`): owners are account names, not uids; there is no controlling
terminal, so an interactive session counts as attached to its console (see `terminal`); and a process keeps
the PID of its dead parent, which may since name a newer, unrelated process, so a parent link counts only
when the parent is not younger than the child (see `Table` and `parent_gone`).

States (one per session, the first that applies, in this order):
  orphan     its parent is gone (reparented) and it has no live terminal
  duplicate  another live process holds the same session id and started earlier
  over-age   older than `max_age` (only when max_age is set)
  idle       Claude says idle or waiting; without a status, CPU stayed under `idle_cpu` over `cpu_window`
  unguarded  started around the guard (not in the registry), otherwise fine
  active     anything else
"""

from __future__ import annotations

import os
import sys
import time

from . import argv, clock, environ, jsonio, paths, procs, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any

LINUX = procs.LINUX
# Read the process table straight from /proc (Linux), else through psutil. Everything that later checks an
# identity (the reaper's re-check before a signal, its polls for exit) follows this switch too, because the
# start tokens of the two differ. Tests set it to False on Linux to run the other systems' code for real.
PROC = LINUX
# Windows semantics (module docstring): owners by account name, consoles instead of terminals, stale parent
# PIDs. Tests set it on Linux (with PROC False), where psutil gives account names too.
WINDOWS = sys.platform == "win32"
STATES = ("orphan", "duplicate", "over-age", "idle", "unguarded", "active")
IDLE_STATUSES = frozenset({"idle", "waiting"})  # Claude's own statuses that mean "nothing running"
# Markers a session's descendants carry in their environment (the guard's cookie, and Claude's own).
MARKERS = (environ.COOKIE, "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID")
# Parents that a process is handed to when its own parent dies (init, and the usual subreapers).
ADOPTERS = frozenset({"systemd", "init", "launchd", "tini", "dumb-init", "catatonit"})

if sys.platform.startswith("linux"):
    _TICK = float(os.sysconf("SC_CLK_TCK"))
    _PAGE = os.sysconf("SC_PAGE_SIZE")
else:  # never read: the /proc pass runs on Linux only
    _TICK, _PAGE = 100.0, 4096
# Process names (comm) of interpreters that may run Claude Code as a script (node cli.js, a test's
# `python3 claude`); `claude` itself (native, or a script run by its #!) is matched by name.
_INTERPRETERS = frozenset(n.encode() for n in ("node", "nodejs", "bun", "deno", "python", "sh", "bash", "dash", "zsh",
                                               "ksh", "fish", "perl", "ruby"))


class Process:
    """One row of the process table."""

    __slots__ = ("_cmdline", "comm", "cpu", "created", "exe", "pid", "ppid", "rss", "start", "state", "tty",
                 "tty_nr", "uid", "user")

    def __init__(self, pid: int, ppid: int, uid: int, start: str, state: str, comm: str, cmdline: list[str] | None,
                 exe: str | None, tty_nr: int, rss: int, cpu: float, created: float, user: str | None = None,
                 tty: str | None = None) -> None:
        self.pid = pid
        self.ppid = ppid
        self.uid = uid
        self.start = start  # the start token (procs.start_token)
        self.state = state  # one letter; Z is a zombie
        self.comm = comm
        self._cmdline = cmdline  # None: not read yet (see `cmdline`)
        self.exe = exe
        self.tty_nr = tty_nr  # controlling terminal; 0: none
        self.rss = rss  # bytes
        self.cpu = cpu  # user + system seconds
        self.created = created  # epoch seconds
        self.user = user  # account name: read on Windows only, where uid is -1
        self.tty = tty  # the terminal's name when psutil gave it (/proc gives only tty_nr)

    @property
    def cmdline(self) -> list[str]:
        if self._cmdline is None:
            try:
                self._cmdline = _split(_read(f"/proc/{self.pid}/cmdline")) if PROC else []
            except OSError:
                self._cmdline = []
        return self._cmdline

    def as_proc(self) -> procs.Proc:
        return procs.Proc(self.pid, self.ppid, self.state, self.start, self.uid, self.tty_nr, self.cmdline,
                          self.exe)


class Table:
    """The process table of one pass: rows by pid, and children by parent."""

    def __init__(self, rows: dict[int, Process]) -> None:
        self.rows = rows
        self.children: dict[int, list[int]] = {}
        windows = WINDOWS
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


def scan(uid: int | None, user: str | None = None) -> Table:
    """One pass over the process table: the processes of `uid` (with WINDOWS: of account `user`), or of every
    user when that is None."""
    return Table(dict((row.pid, row) for row in (_scan_linux(uid) if PROC else _scan_psutil(uid, user))))


def whoami() -> tuple[int | None, str | None]:
    """(uid, account name) of this process; the name only with WINDOWS (it costs a psutil import), the uid
    only where there are uids."""
    if WINDOWS:
        import psutil

        return None, psutil.Process().username()
    return (os.getuid() if hasattr(os, "getuid") else None), None


def same_user(a: str | None, b: str | None) -> bool:
    """Windows account names compare without case (`DOMAIN\\user`)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def _scan_linux(uid: int | None) -> Iterator[Process]:
    if not sys.platform.startswith("linux"):
        raise OSError("/proc is read on Linux only")
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        base = "/proc/" + name
        try:
            owner = os.stat(base).st_uid
            if uid is not None and owner != uid:
                continue
            stat = _read(base + "/stat")
        except OSError:
            continue
        end = stat.rfind(b")")
        fields = stat[end + 2 :].split()
        if len(fields) < 22 or fields[1] == b"2" or name == "2":
            continue  # kernel threads (children of kthreadd) are never sessions
        comm = stat[stat.find(b"(") + 1 : end]
        cmdline: list[str] | None = None
        exe: str | None = None
        # Only a process whose name says claude or an interpreter can be Claude Code: the command line and
        # executable of the others are read later, and only if needed (a stray's argv).
        if b"claude" in comm or comm.rstrip(b"0123456789.") in _INTERPRETERS:
            try:
                raw = _read(base + "/cmdline")
            except OSError:
                continue
            cmdline = _split(raw)
            if b"claude" in raw or b"claude" in comm:
                exe = _readlink(base + "/exe")
        start = fields[19].decode()
        yield Process(int(name), int(fields[1]), owner, start, fields[0].decode(), comm.decode("utf-8", "replace"),
                      cmdline, exe, int(fields[4]), int(fields[21]) * _PAGE,
                      (int(fields[11]) + int(fields[12])) / _TICK, boot + int(start) / _TICK)


def _split(raw: bytes) -> list[str]:
    args = [os.fsdecode(a) for a in raw.split(b"\0")]
    if args and args[-1] == "":
        args.pop()
    return args


def _read(path: str) -> bytes:
    """A whole /proc file through bare descriptors (buffered `open` costs twice as much per file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _readlink(path: str) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return target[: -len(" (deleted)")] if target.endswith(" (deleted)") else target


def _scan_psutil(uid: int | None, user: str | None = None) -> Iterator[Process]:
    import psutil

    windows = WINDOWS
    # Windows has no uids and no terminals: psutil has neither method there, and asking for one in attrs is
    # a ValueError. Owners are compared first, so nothing more is read of other users' processes.
    first = ["pid", "ppid", "name", "create_time", "status", "username" if windows else "uids"]
    rest = ["exe", "cmdline", "memory_info", "cpu_times"] + ([] if windows else ["terminal"])
    for p in psutil.process_iter(first):
        info = p.info
        created = info.get("create_time")
        if not created:
            continue
        name: str | None = None
        if windows:
            owner = -1
            name = info.get("username")
            if user is not None and not same_user(name, user):
                continue
        else:
            uids = info.get("uids")
            owner = uids.real if uids else -1
            if uid is not None and owner != uid:
                continue
        try:
            more = p.as_dict(rest)
        except psutil.NoSuchProcess:
            continue  # ended since the first read
        mem, cpu, tty = more.get("memory_info"), more.get("cpu_times"), more.get("terminal")
        yield Process(info["pid"], info.get("ppid") or 0, owner, token(created),
                      "Z" if info.get("status") == psutil.STATUS_ZOMBIE else "S", info.get("name") or "",
                      list(more.get("cmdline") or []), more.get("exe") or None, 1 if tty else 0,
                      mem.rss if mem else 0, (cpu.user + cpu.system) if cpu else 0.0, created, name, tty or None)


def token(create_time: float) -> str:
    """The start token of a process read through psutil: procs.start_token's, off Linux."""
    return f"{create_time:.3f}"


def environment(pid: int) -> dict[str, str] | None:
    """The markers (and CLAUDE_CONFIG_DIR) in a process's environment; None when unreadable.

    Only the names the sweep needs are kept: the rest of a process's environment (tokens, keys) is never
    held or printed.
    """
    wanted = (*MARKERS, "CLAUDE_CONFIG_DIR")
    if PROC:
        try:
            raw = _read(f"/proc/{pid}/environ")
        except OSError:
            return None
        if b"CLAUDE" not in raw:
            return {}
        out = {}
        for item in raw.split(b"\0"):
            name, _, value = item.partition(b"=")
            text = name.decode("ascii", "replace")
            if text in wanted:
                out[text] = os.fsdecode(value)
        return out
    import psutil

    try:
        env = psutil.Process(pid).environ()
    except (psutil.Error, OSError):
        return None
    return {k: v for k, v in env.items() if k in wanted}


def terminal(pid: int, tty_nr: int, name: str | None = None, kind: str | None = None) -> tuple[str | None, bool]:
    """(terminal, live): the process's controlling terminal, if it still has one.

    The kernel takes the controlling terminal away from the whole session when the terminal hangs up (its
    window or master side closed, or the shell that led the session died), so a process that still has one
    is still in someone's terminal. Stdio on a pty without a controlling terminal (a host that set the pty
    up by hand) does not count: nothing hangs it up when its user leaves. (Not looking at stdio also saves
    three readlinks per session on the `ps` path.)

    Windows has no controlling terminal, and whether another process has a console cannot be read from
    outside it. An interactive claude needs a console (its TUI does not start without one) and Windows ends
    every process of a console when its window closes, so a live interactive session is taken to be in an
    open console ("console", live); print, SDK and background sessions are taken to have none.
    """
    if WINDOWS:
        return ("console", True) if kind == "interactive" else (None, False)
    if not tty_nr:
        return None, False
    if PROC and sys.platform.startswith("linux"):
        for fd in (0, 1, 2):
            target = _readlink(f"/proc/{pid}/fd/{fd}")
            if target and target.startswith(("/dev/pts/", "/dev/tty", "/dev/console")):
                return target, True
        return f"tty({os.major(tty_nr)},{os.minor(tty_nr)})", True
    return name or "tty", True


def cwd_of(pid: int) -> str | None:
    """A process's working folder, None when unreadable."""
    if PROC:
        return _readlink(f"/proc/{pid}/cwd")
    import psutil

    try:
        return psutil.Process(pid).cwd() or None
    except (psutil.Error, OSError):
        return None


def parent_gone(row: Process, table: Table) -> bool:
    """Windows: the parent PID a process carries no longer names its parent. Windows never reparents: the
    PID stays after the parent dies, and may since have been given to a newer process. (psutil's parent()
    makes the same test.) Elsewhere a dead parent is replaced by an adopter, which `_judge_orphan` sees."""
    parent = table.rows.get(row.ppid)
    if parent is not None:
        return parent.created > row.created
    if row.ppid <= 0:
        return False  # the system's own processes
    import psutil

    try:
        return psutil.Process(row.ppid).create_time() > row.created
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False  # alive, but not ours to read: it is there


class ClaudeFile:
    """One `~/.claude/sessions/<PID>.json`, as Claude Code writes it."""

    __slots__ = ("cwd", "entrypoint", "kind", "name", "path", "pid", "proc_start", "session_id", "started_at",
                 "status", "status_at")

    def __init__(self, path: str, data: Mapping[str, Any]) -> None:
        self.path = path
        self.pid = int(data.get("pid") or os.path.basename(path).split(".")[0])
        self.proc_start = str(data.get("procStart") or "")
        self.session_id = _text(data.get("sessionId"))
        self.name = _text(data.get("name"))
        self.cwd = _text(data.get("cwd"))
        self.kind = _text(data.get("kind"))
        self.entrypoint = _text(data.get("entrypoint"))
        self.status = _text(data.get("status"))
        self.status_at = _ms(data.get("statusUpdatedAt"))
        self.started_at = _ms(data.get("startedAt"))

    def matches(self, row: Process) -> bool:
        """Written by this very process (not by an earlier one with the same pid)."""
        if self.pid != row.pid:
            return False
        if self.proc_start and PROC:
            return self.proc_start == row.start
        # Elsewhere the token formats differ: the start time Claude recorded must match the process's.
        return self.started_at is not None and abs(self.started_at - row.created) < 5


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(value: object) -> float | None:
    return float(value) / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def claude_files(folders: Iterable[str]) -> list[ClaudeFile]:
    """Every session file that parses, in the given `sessions` folders."""
    out: list[ClaudeFile] = []
    for folder in dict.fromkeys(folders):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.endswith(".json") or not name[:-5].isdigit():
                continue
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    data = jsonio.loads(f.read(1 << 20).decode("utf-8"))
                if isinstance(data, dict):
                    out.append(ClaudeFile(path, data))
            except (OSError, ValueError, UnicodeDecodeError, TypeError):
                continue
    return out


class Session:
    """One live Claude Code process and the facts the sweep judges it by."""

    def __init__(self, row: Process, call: argv.Call) -> None:
        self.row = row
        self.pid = row.pid
        self.start = row.start
        self.call = call
        self.kind = call.kind
        self.session_id: str | None = call.session_id
        self.name: str | None = None
        self.entry: dict[str, Any] | None = None  # the registry entry, when guarded
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
        self.parent_name: str | None = None
        self.orphan = False
        self.orphan_why = ""
        self.duplicate_of: int | None = None
        self.over_age = False
        self.cookie: str | None = None
        self.state = "active"

    @property
    def guarded(self) -> bool:
        return self.entry is not None

    def json(self) -> dict[str, Any]:
        """The object `ps --json` prints (schema in docs/sweep.md; keys are only ever added)."""
        return {
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
            "parent_pid": self.row.ppid,
            "parent": self.parent_name,
            "orphan": self.orphan,
            "duplicate_of": self.duplicate_of,
            "uid": self.row.uid,
            "argv": self.row.cmdline,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Stray:
    """A process outside every live session's tree that carries a session's markers: a Bash-tool command in
    its own process group, or a grandchild reparented to init. `owner` is the live session it came from,
    or None when that session is gone (then it is an orphaned descendant of a dead session)."""

    def __init__(self, row: Process, env: dict[str, str]) -> None:
        self.row = row
        self.pid = row.pid
        self.start = row.start
        self.env = env
        self.owner: Session | None = None
        self.tree: list[int] = []
        self.rss = row.rss

    @property
    def session_id(self) -> str | None:
        return self.env.get("CLAUDE_CODE_SESSION_ID") or (self.owner.session_id if self.owner else None)

    def json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "session_id": self.session_id,
                "owner_pid": self.owner.pid if self.owner else None, "rss_bytes": self.rss,
                "processes": 1 + len(self.tree), "argv": self.row.cmdline}


class View:
    """Everything one pass found."""

    def __init__(self, table: Table, sessions: list[Session], strays: list[Stray], dead: list[dict[str, Any]],
                 stale: list[ClaudeFile], now: float, awake: float) -> None:
        self.table = table
        self.sessions = sessions
        self.strays = strays
        self.dead = dead  # registry entries whose process is gone
        self.stale = stale  # Claude session files whose process is gone
        self.now = now
        self.awake = awake

    def by_state(self) -> dict[str, list[Session]]:
        out: dict[str, list[Session]] = {state: [] for state in STATES}
        for s in self.sessions:
            out[s.state].append(s)
        return out


def collect(settings: Any, *, registry: Mapping[str, Any] | None = None, ledger: Mapping[str, Any] | None = None,
            all_users: bool = False, strays: bool = True, now: float | None = None,
            under: Iterable[str] | None = None) -> View:
    """Build the view. `registry` is the registry's content (None: read it), `ledger` the sweep state.

    `under`: folders; when given, the view holds only the sessions (and strays) whose working folder is in
    one of them, as if no other existed (`reap --under DIR` cleans up one project; tests use it to stay
    away from processes they did not start).
    """
    now = time.time() if now is None else now
    awake = clock.awake()
    me, my_name = whoami()
    table = scan(None if all_users else me, None if all_users else my_name)
    data = _read_registry(settings) if registry is None else registry
    book = ledger or {}
    sleep: list[list[float]] = list(book.get("sleep") or [])
    offset = clock.asleep_total()
    seen: Mapping[str, Any] = book.get("procs") or {}

    sessions: list[Session] = []
    for row in table.rows.values():
        if row.state in ("Z", "X") or (row._cmdline is None and PROC) \
                or "claude" not in " ".join(row.cmdline) + (row.exe or "") + row.comm:
            continue
        args = procs.claude_args(row.as_proc(), resolve.is_shim)
        if args is None or (WINDOWS and _our_launcher(row)):
            continue
        call = argv.classify(args)
        if call.session:
            sessions.append(Session(row, call))
    by_pid = {s.pid: s for s in sessions}

    dead: list[dict[str, Any]] = []
    for entry in data.get("sessions", []):
        held = table.rows.get(entry.get("pid", 0))
        if held is not None and held.start == entry.get("start") and held.state not in ("Z", "X"):
            if held.pid in by_pid:
                by_pid[held.pid].entry = entry
        elif held is None and entry.get("pid") and procs.alive(entry["pid"], entry.get("start")):
            continue  # another user's process (a scan of one uid): not ours to judge
        else:
            dead.append(entry)

    for s in sessions:
        # Only the guard's own record names a session's cookie: one in its environment may be inherited from
        # the guarded session it was started in (a claude run by a Bash tool), and is that session's.
        s.cookie = (s.entry or {}).get("cookie")
    stale: list[ClaudeFile] = []

    def match(folders: list[str]) -> None:
        for found in claude_files(folders):
            writer = table.rows.get(found.pid)
            if writer is None or writer.state in ("Z", "X") or not found.matches(writer):
                stale.append(found)  # its process is gone (killed before it could remove the file)
            elif found.pid in by_pid:
                by_pid[found.pid].file = found

    default = paths.claude_sessions_dir()
    match([default])
    # A session with no file there may run with another CLAUDE_CONFIG_DIR, or belong to another user.
    others: list[str] = []
    for s in sessions:
        if s.file is None:
            env = environment(s.pid) or {}
            if env.get("CLAUDE_CONFIG_DIR"):
                others.append(os.path.join(env["CLAUDE_CONFIG_DIR"], "sessions"))
            elif me is not None and s.row.uid != me:
                home = _home(s.row.uid)
                if home:
                    others.append(os.path.join(home, ".claude", "sessions"))
    match([f for f in dict.fromkeys(others) if os.path.realpath(f) != os.path.realpath(default)])

    nested = set(by_pid)
    for s in sessions:
        row = s.row
        s.tree = table.descendants(s.pid)
        s.own = table.descendants(s.pid, stop=nested)
        s.rss = row.rss + sum(table.rows[p].rss for p in s.own)
        s.cpu = row.cpu + sum(table.rows[p].cpu for p in s.own)
        s.age = max(0.0, now - row.created) if row.created else None
        entry, cf = s.entry or {}, s.file
        if cf is not None:
            s.session_id = cf.session_id or s.session_id
            s.name, s.status = cf.name, cf.status
            if cf.entrypoint == "sdk-cli" and s.kind == "interactive":
                s.kind = "print"
        s.session_id = s.session_id or entry.get("session_id")
        s.cwd = (cf.cwd if cf else None) or entry.get("cwd") or cwd_of(s.pid)
        s.terminal, s.attached = terminal(s.pid, row.tty_nr, row.tty, s.kind)
        parent = table.rows.get(row.ppid)
        stale_parent = WINDOWS and parent_gone(row, table)
        if stale_parent:
            parent = None
        s.parent_name = parent.comm if parent else None
        _judge_orphan(s, parent, seen.get(f"{s.pid}:{s.start}"), stale_parent)
        _judge_idle(s, settings, seen.get(f"{s.pid}:{s.start}"), sleep, offset, now, awake)
        max_age = float(settings.max_age or 0)
        s.over_age = bool(max_age) and s.age is not None and s.age >= max_age

    every = sessions
    if under is not None:
        scope = [os.path.realpath(os.path.expanduser(d)) for d in under]
        sessions = [s for s in sessions if within(s.cwd, scope)]

    holders: dict[str, list[Session]] = {}
    for s in sessions:
        if s.session_id:
            holders.setdefault(s.session_id, []).append(s)
    for group in holders.values():
        if len(group) > 1:
            group.sort(key=lambda x: (x.row.created, x.pid))
            for later in group[1:]:
                later.duplicate_of = group[0].pid

    for s in sessions:
        s.state = ("orphan" if s.orphan else "duplicate" if s.duplicate_of else "over-age" if s.over_age
                   else "idle" if s.is_idle else "unguarded" if not s.guarded else "active")

    lost = _strays(table, every, me if not all_users else None, my_name if not all_users else None) if strays else []
    if under is not None:
        lost = [st for st in lost if within(cwd_of(st.pid), scope)]
    return View(table, sessions, lost, dead, stale, now, awake)


def within(folder: str | None, scope: Iterable[str]) -> bool:
    """`folder` is one of `scope` or inside one of them."""
    if not folder:
        return False
    # normcase: Windows compares paths without case (elsewhere it changes nothing).
    folder = os.path.normcase(os.path.realpath(folder))
    return any(folder == d or folder.startswith(d.rstrip(os.sep) + os.sep) for d in map(os.path.normcase, scope))


def current(all_users: bool = False, what: str = "this command",
            under: Iterable[str] | None = None) -> tuple[Any, dict[str, Any], View]:
    """(settings, ledger, view) for the read-only commands (ps, metrics): nothing is written."""
    from . import config, ledger
    from .errors import ExitCode, GuardError

    if all_users and hasattr(os, "geteuid") and os.geteuid() != 0:
        raise GuardError(f"--all-users needs root; without it, {what} covers your own sessions", ExitCode.USAGE)
    settings = config.load()
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


def _our_launcher(row: Process) -> bool:
    """Windows: our own shim is an executable named claude.exe (pip's launcher, which starts the guard and
    waits for it), so procs.claude_args takes it for the native claude; its marker tells it apart."""
    return bool(row.exe) and os.path.basename(row.exe or "").lower() in procs.CLAUDE_NAMES \
        and resolve.is_shim(row.exe or "")


def _read_registry(settings: Any) -> Mapping[str, Any]:
    """The registry as it is now, read without writing anything (no lock needed: it is replaced by rename),
    with the launch side's checks: a symlinked, foreign-owned or world-writable registry is refused."""
    from .registry import Registry

    return Registry(settings.registry_dir()).peek()


def _judge_orphan(s: Session, parent: Process | None, seen: Mapping[str, Any] | None,
                  stale_parent: bool = False) -> None:
    """Orphan: the parent it was started by is gone, and no live terminal holds it. `stale_parent`: its
    parent PID no longer names its parent (Windows, see `parent_gone`)."""
    row = s.row
    why = ""
    expected = (s.entry or {}).get("guard_pid") or (s.entry or {}).get("ppid")
    if isinstance(expected, int) and expected > 1 and row.ppid != expected:
        why = f"its parent (PID {expected}) is gone"
    elif seen and isinstance(seen.get("ppid"), int) and seen["ppid"] > 1 and seen["ppid"] != row.ppid:
        why = f"its parent (PID {seen['ppid']}) is gone"
    elif row.ppid <= 1 and expected != row.ppid:
        why = "reparented to init"
    elif parent is not None and parent.comm in ADOPTERS and expected != row.ppid:
        why = f"reparented to {parent.comm} (PID {row.ppid})"
    elif stale_parent:
        why = f"its parent (PID {row.ppid}) is gone"
    if why and s.attached:
        s.orphan_why = why + f", but attached to live terminal {s.terminal}"
        return
    if why:
        s.orphan = True
        s.orphan_why = why + ", no live terminal"


def _judge_idle(s: Session, settings: Any, seen: Mapping[str, Any] | None, sleep: list[list[float]],
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
    window = float(settings.cpu_window)
    used = s.cpu - float(seen["ref"][1])
    if used > float(settings.idle_cpu) / 100.0 * window:
        s.idle_source, s.idle = "cpu", 0.0  # busy within the current window already
    elif isinstance(quiet, (int, float)):
        s.idle_source, s.is_idle, s.idle = "cpu", True, max(0.0, awake - quiet)
    elif seen.get("judged"):
        s.idle_source, s.idle = "cpu", 0.0


def observe(view: View, book: dict[str, Any], settings: Any) -> None:
    """Fold this pass into the ledger: CPU windows, first-seen parents, the sleep offset."""
    clock.record(book["sleep"], view.now)
    old: dict[str, Any] = book["procs"]
    new: dict[str, Any] = {}
    window = float(settings.cpu_window)
    threshold = float(settings.idle_cpu) / 100.0
    for s in view.sessions:
        k = f"{s.pid}:{s.start}"
        rec = old.get(k)
        if not isinstance(rec, dict) or not isinstance(rec.get("ref"), list):
            rec = {"ref": [view.awake, s.cpu], "quiet": None, "judged": False, "ppid": s.row.ppid}
        else:
            t0, c0 = float(rec["ref"][0]), float(rec["ref"][1])
            elapsed, used = view.awake - t0, s.cpu - c0
            if used > threshold * window:
                rec.update(ref=[view.awake, s.cpu], quiet=None, judged=True)
            elif elapsed >= window:
                if used / elapsed <= threshold:
                    rec["quiet"] = rec.get("quiet") if rec.get("quiet") is not None else t0
                else:
                    rec["quiet"] = None
                rec.update(ref=[view.awake, s.cpu], judged=True)
        new[k] = rec
    book["procs"] = new


def _strays(table: Table, sessions: list[Session], uid: int | None, user: str | None = None) -> list[Stray]:
    """Processes outside every live session's tree that carry a session's markers, grouped by the topmost
    one of each chain (its descendants go with it), each with the live session it came from, if any."""
    in_tree: set[int] = set()
    for s in sessions:
        in_tree.add(s.pid)
        in_tree.update(s.tree)
    marked: dict[int, Stray] = {}
    for row in table.rows.values():
        if row.pid in in_tree or row.pid <= 1 or row.state in ("Z", "X") or (uid is not None and row.uid != uid) \
                or (user is not None and not same_user(row.user, user)):
            continue
        env = environment(row.pid)
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
        stray.owner = _owner(stray, by_cookie, by_pid, by_id)
        out.append(stray)
    return out


def _owner(stray: Stray, by_cookie: Mapping[str, Session], by_pid: Mapping[int, Session],
           by_id: Mapping[str, list[Session]]) -> Session | None:
    """The live session a stray descends from. A descendant is never older than its ancestor, which rules
    out a reused CLAUDE_PID. When the cookie or CLAUDE_PID names a session that is gone, the session id
    is not consulted: a later process resuming the same conversation is not its ancestor."""
    born = stray.row.created + 1.0  # start times are rounded to clock ticks
    env = stray.env
    if env.get(environ.COOKIE) or env.get("CLAUDE_PID"):
        owner = by_cookie.get(env.get(environ.COOKIE, ""))
        pid = env.get("CLAUDE_PID", "")
        if owner is None and pid.isdigit():
            owner = by_pid.get(int(pid))
        if owner is None or owner.row.created > born or owner.row.uid != stray.row.uid:
            return None  # a reused CLAUDE_PID, or a marker planted in another user's process
        return owner
    holders = [s for s in by_id.get(env.get("CLAUDE_CODE_SESSION_ID", ""), []) if s.row.created <= born]
    holders = [s for s in holders if s.row.uid == stray.row.uid]
    return holders[0] if len(holders) == 1 else None
