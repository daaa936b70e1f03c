"""Admission: the duplicate and cap rules of a session launch, judged under the registry lock, and the queue.

    Survey   what a launch reads before the lock (the process table, Claude's session files), only as the
             decision needs it
    Census   who holds what, judged under the lock from the registry's entries and the survey
    admit()  prune, duplicate rule (refuse or takeover), cap rule (refuse or wait in a FIFO), register

On the hot path of every session start (launch.run_guarded imports it only for a session: a pass-through
such as `claude --version` never loads it): standard library only, imported lazily where a branch is rare.
"""

from __future__ import annotations

import os
import sys
import time

from . import __version__, argv, environ, resolve
from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .launch import Plan
    from .proc import Backend
    from .records import Entry, RegistryData, Waiter
    from .registry import Registry
    from .settings import Settings


def _tty() -> str | None:
    if sys.platform == "win32":
        return None  # no tty names; a console is not a device file
    for fd in (0, 2, 1):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    return None


def _parent_name(ppid: int) -> str:
    from .proc import native

    proc = native().read(ppid)
    if proc is None or not proc.cmdline:
        return ""
    return os.path.basename(proc.cmdline[0])


class Survey:
    """What a launch reads before it takes the registry lock: the Claude sessions in the process table, and
    (for a session id) who holds it by Claude's own session files. Launches queue on the lock: a scan of every
    process on the machine inside it made 64 launches wait for 64 scans in turn. Under the lock only the
    registry's entries, which other launches change, are judged (Census), so the cap stays exact.

    Only what the decision needs is read: the table when unguarded sessions count towards the cap or a session
    id is to be checked for duplicates; the session files only for a session id."""

    def __init__(self, me: int, backend: Backend, table: bool = True) -> None:
        self.me = me
        self.backend = backend
        self.seen: dict[int, str] = {}  # pid -> start token of every candidate the scan read
        self.table: dict[int, tuple[str, argv.Call]] = {}  # the table's sessions: pid -> (start token, call)
        self._files: dict[str, list[tuple[int, str]]] = {}
        if table:
            self._scan()

    def _scan(self) -> None:
        from .proc import GONE_STATES, claude_args

        wrappers = self._wrapper_ancestors()
        for proc in self.backend.scan(os.getuid() if hasattr(os, "getuid") else None, b"claude"):
            if proc.state in GONE_STATES:
                continue
            self.seen[proc.pid] = proc.start
            if proc.pid == self.me or proc.pid in wrappers:
                continue
            args = claude_args(proc, resolve.is_shim)
            if args is None:
                continue
            call = argv.classify(args)
            if call.session:
                self.table[proc.pid] = (proc.start, call)

    def _wrapper_ancestors(self) -> set[int]:
        """Ancestors that are this launch itself: a `claude` script that ends up running us (a user's
        wrapper, `timeout 40 claude ...` is a different program and never matched anyway). A real Claude
        Code ancestor (a session whose Bash tool runs `claude`) is a session and stays counted."""
        from .proc import CLAUDE_NAMES, claude_args, program_name

        out: set[int] = set()
        for pid in self.backend.ancestors(self.me):
            proc = self.backend.read(pid)
            if proc is None:
                break
            if proc.exe and program_name(proc.exe) in CLAUDE_NAMES:
                break
            if claude_args(proc) is None:
                continue
            out.add(pid)
        return out

    def by_files(self, session_id: str) -> list[tuple[int, str]]:
        """(pid, start token) of the Claude processes whose ~/.claude/sessions/<PID>.json names `session_id`
        (processes started around the guard with `--continue`, a picker, or an SDK), each file checked to be
        its process's own as the sweep checks it (claudefiles). Read once per session id."""
        if session_id not in self._files:
            from . import claudefiles, paths
            from .proc import GONE_STATES, claude_args

            found: list[tuple[int, str]] = []
            for cf in claudefiles.read([paths.claude_sessions_dir()]):
                if cf.pid == self.me or session_id not in (cf.session_id, cf.name):
                    continue
                proc = self.backend.read(cf.pid)
                if proc is None or proc.state in GONE_STATES or not cf.matches(proc, self.backend):
                    continue
                if cf.pid in self.table or claude_args(proc, resolve.is_shim) is not None:
                    found.append((cf.pid, proc.start))
            self._files[session_id] = found
        return self._files[session_id]


class Census:
    """Who holds what, judged under the lock: the registry's live entries, and the sessions a Survey (read
    before the lock; by default one taken here) saw in the table that are still the processes it saw."""

    def __init__(self, data: RegistryData, me: int, backend: Backend | None = None,
                 survey: Survey | None = None, roomy: bool = False) -> None:
        if backend is None:
            from .proc import native

            backend = native()
        self.me = me
        self.backend = backend
        self.survey = survey = survey or Survey(me, backend)
        self.live: list[Entry] = []
        self.dead = 0
        for entry in data["sessions"]:
            if entry["pid"] == me:
                continue  # our own earlier record (a re-admission after takeover)
            if roomy:
                # Fewer processes than the cap (admit): no count can reach it, so an entry is kept while its PID
                # exists at all (a reused PID keeps a dead entry until a launch near the cap or a sweep checks
                # it) and none is read.
                if backend.exists(entry["pid"]):
                    self.live.append(entry)
                else:
                    self.dead += 1
                continue
            # The scan vouches for an entry it saw with the same start; any other (registered since the scan, a
            # command line that no longer says claude, a pid reused since) is asked directly.
            if survey.seen.get(entry["pid"]) == entry["start"] or backend.alive(entry["pid"], entry["start"]):
                self.live.append(entry)
            else:
                self.dead += 1
        self._guarded = {e["pid"] for e in self.live}
        # A session of the table that ended since the scan no longer counts.
        self.table: dict[int, argv.Call] = {pid: call for pid, (start, call) in survey.table.items()
                                            if pid in self._guarded or backend.alive(pid, start)}

    def pids(self, unguarded: bool = True) -> set[int]:
        """Live sessions: the registry's, and (unless `unguarded` is off) those started around the guard."""
        return self._guarded | set(self.table) if unguarded else set(self._guarded)

    def holders(self, session_id: str) -> list[int]:
        """Live Claude processes holding `session_id`: by registry, by command line, and by Claude's own
        session files (Survey.by_files)."""
        found = {e["pid"] for e in self.live if e.get("session_id") == session_id}
        found |= {pid for pid, call in self.table.items() if call.session_id == session_id}
        found.update(pid for pid, start in self.survey.by_files(session_id)
                     if pid in found or pid in self.table or self.backend.alive(pid, start))
        return sorted(found)


def _fewer_processes_than(cap: int, backend: Backend) -> bool:
    """Fewer processes on the machine than `cap`: the system's cheap upper bound first, the exact count only
    when that bound is not below the cap."""
    bound = backend.population()
    if bound is not None and bound < cap:
        return True
    present = backend.pids()
    return present is not None and len(present) < cap


def _continued(plan: Plan) -> str | None:
    """The session `claude --continue` will open here (None: a new one, or none to continue)."""
    from . import claudefiles, paths, transcripts
    from .proc import native

    background = frozenset(
        cf.session_id for cf in claudefiles.read([paths.claude_sessions_dir()])
        if cf.session_id and cf.kind and cf.kind != "interactive" and native().alive(cf.pid, cf.proc_start))
    interactive = plan.call.kind in ("interactive", "background")  # Claude's entrypoint "cli", not an SDK's
    return transcripts.continued_session(paths.claude_dir(), _cwd(), interactive=interactive,
                                         background_held=background)


def _running(census: Census, cap: int, unguarded: bool) -> str:
    """"N of M Claude sessions ... running (PIDs a, b, ...)": the first 8 PIDs, oldest PID first."""
    pids = sorted(census.pids(unguarded))
    shown = ", ".join(map(str, pids[:8])) + (", ..." if len(pids) > 8 else "")
    return f"{len(pids)} of {cap} Claude sessions already running (PIDs {shown})"


def _refuse_cap(census: Census, cap: int, waited: float | None, unguarded: bool) -> GuardError:
    after = f" after waiting {_rounded(waited)}" if waited is not None else ""
    return GuardError(
        f"refused: {_running(census, cap, unguarded)}{after}; "
        "see `claude-guard ps`, end one or run `claude-guard reap`, or raise max_sessions",
        ExitCode.REFUSED)


def _rounded(seconds: float) -> str:
    """A wait as a person reads it: `0.4s`, `3s`, `5m`, not `3.0604s`."""
    if seconds < 1:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    from .output import human_duration

    return human_duration(seconds)


def _announce_wait(census: Census, cap: int, ahead: int, timeout: float, unguarded: bool) -> None:
    """On a terminal, one line when a launch starts to wait at the cap: for what, how long, how to stop.
    Never off a terminal: an SDK host reads claude's stderr (and a script would only log noise)."""
    try:
        if not os.isatty(2):
            return
    except OSError:
        return
    from .output import message

    queue = f"; {ahead} launch{'es' if ahead != 1 else ''} wait{'s' if ahead == 1 else ''} ahead" if ahead else ""
    message(f"waiting for a session slot: {_running(census, cap, unguarded)}{queue}; up to {_rounded(timeout)} "
            "(wait_timeout). Ctrl-C stops waiting; `claude-guard ps` shows them")


def _refuse_duplicate(session_id: str, holders: list[int], continues: bool = False) -> GuardError:
    what = "--continue would reopen this folder's latest session, " if continues else ""
    return GuardError(
        f"refused: {what}session {session_id} is already open in PID {holders[0]}; resuming it twice would "
        f"interleave its transcript. Close that session (or `kill {holders[0]}`), use --fork-session for a "
        "copy, or set on_duplicate = \"takeover\"", ExitCode.REFUSED)


def _entry(plan: Plan, pid: int, start: str, cookie: str) -> Entry:
    ppid = os.getppid()
    return {
        "pid": pid,
        "start": start,
        "session_id": plan.call.session_id,
        "kind": plan.call.kind,
        "argv": _summary(plan.args),
        "program": plan.program,
        "cwd": _cwd(),
        "tty": _tty(),
        "ppid": ppid,
        "parent": _parent_name(ppid),
        "started_at": time.time(),
        "cookie": cookie,
        "guard": __version__,
    }


# What an entry keeps of claude's arguments: a record for people and `doctor`, not something the guard acts on,
# and the registry is read and written whole by every launch, so its size must not follow the arguments'
# (a prompt given as an argument can be 128 KiB, and there may be many).
_ARGS_KEPT = 32
_ARG_CHARS = 200


def _summary(args: list[str]) -> list[str]:
    out = [a if len(a) <= _ARG_CHARS else f"{a[:_ARG_CHARS]}...[{len(a) - _ARG_CHARS} more characters]"
           for a in args[:_ARGS_KEPT]]
    if len(args) > _ARGS_KEPT:
        out.append(f"...[{len(args) - _ARGS_KEPT} more arguments]")
    return out


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


def takeover(pids: list[int], grace: float, backend: Backend | None = None, session_id: str | None = None) -> None:
    """End the holders of a session gracefully: TERM, then KILL after `grace`, each signal checked as the
    reaper's are (proc.Backend.signal: same process, still Claude Code; a pidfd where there is one). Each is
    told first, on its terminal, that the session goes on in this launch (no resume hint: it is resumed here)."""
    import signal

    if backend is None:
        from .proc import native

        backend = native()
    targets = [(pid, start) for pid in pids for start in (backend.start_token(pid),) if start]
    line = (f"claude-guard: session {session_id or ''} was opened again in PID {os.getpid()} (on_duplicate = "
            "takeover): ending this copy; the conversation goes on there")
    for pid, start in targets:
        row = backend.read(pid)
        if row is not None and row.start == start:
            backend.tell(row, line)
    for pid, start in targets:
        backend.signal(pid, start, signal.SIGTERM, claude=True, is_shim=resolve.is_shim)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(backend.alive(p, s) for p, s in targets):
        time.sleep(0.05)
    # Windows has no SIGKILL: the backend's kill there is TerminateProcess, as its TERM is.
    kill: int = getattr(signal, "SIGKILL", signal.SIGTERM)
    for pid, start in targets:
        if backend.alive(pid, start):
            backend.signal(pid, start, kill, claude=True, is_shim=resolve.is_shim)


def admit(plan: Plan, settings: Settings, registry: Registry, pid: int | None = None) -> Entry:
    """Apply the duplicate and cap rules under the lock and register `pid` (default: this process).

    Raises GuardError(REFUSED) when a rule says no. With on_cap = wait, waits in arrival order (a FIFO of
    waiters kept in the registry) up to wait_timeout.
    """
    from .proc import native

    backend = native()
    me = os.getpid()
    pid = pid or me
    my_start = backend.start_token(me) or ""
    cookie = plan.env.get(environ.COOKIE) or os.urandom(16).hex()
    plan.env[environ.COOKIE] = cookie
    sid = plan.call.session_id
    if not sid and plan.call.continues:
        sid = plan.call.session_id = _continued(plan)
    cap = settings.max_sessions
    wait = settings.on_cap == "wait"
    unguarded = settings.count_unguarded
    began = time.monotonic()
    deadline = began + settings.wait_timeout
    delay = 0.05
    took_over = False
    announced = False
    while True:
        # Read before the lock what other launches need not wait for (Survey); judge under it only the
        # registry's entries. Without unguarded counting and without a session id, no table is read at all.
        # Nor with fewer processes on the machine than the cap: every session, guarded or not, and every waiter
        # is a process, so no count can reach the cap, and reading each one would decide nothing.
        roomy = not sid and _fewer_processes_than(cap, backend)
        survey = Survey(me, backend, table=bool(sid) or (unguarded and not roomy))
        if sid:
            survey.by_files(sid)
        with registry.locked():
            data = registry.load()
            census = Census(data, me, backend, survey, roomy)
            now = time.monotonic()
            mine = next((w for w in data["waiters"] if w["pid"] == me), None)
            # The queue: this launch's own place, and every other waiter that is still a live guard process
            # of this user renewing its place (a stopped or frozen one, or a forged record, keeps nothing).
            queue = [w for w in data["waiters"] if w is mine or (w["pid"] != me and queued(w, now))]
            if sid:
                holders = census.holders(sid)
                if holders and settings.on_duplicate == "takeover" and not took_over:
                    registry.log(f"takeover of session {sid}: ending PIDs {holders}")
                    takeover(holders, settings.grace, backend, sid)
                    took_over = True
                    continue
                if holders:
                    registry.log(f"refused duplicate session {sid} held by PIDs {holders}")
                    raise _refuse_duplicate(sid, holders, plan.call.continues)
            running = len(census.pids(unguarded))
            # Waiters are ahead only of other waiters: under on_cap = refuse a launch asks for a slot now, and
            # nobody queued makes it wait (or refuses it).
            ahead = (len(queue) if mine is None else queue.index(mine)) if wait else 0
            others = [w for w in queue if w is not mine]
            if running + ahead < cap:
                entry = _entry(plan, pid, my_start if pid == me else backend.start_token(pid) or "", cookie)
                data["sessions"] = [*census.live, entry]
                data["waiters"] = others
                registry.save(data)
                registry.log(f"admitted pid={pid} kind={plan.call.kind} session={sid} running={running + 1}/{cap}"
                             + (f" waited={time.monotonic() - began:.1f}s" if mine is not None else ""))
                return entry
            if not wait or now >= deadline:
                if mine is not None:
                    data["sessions"], data["waiters"] = census.live, others
                    registry.save(data)
                registry.log(f"refused at cap {running}/{cap}")
                raise _refuse_cap(census, cap, now - began if wait else None, unguarded)
            if mine is None:  # first time here, or dropped while it could not renew: to the back of the queue
                data["sessions"] = census.live
                data["waiters"] = [*others, {"pid": me, "start": my_start, "since": time.time(), "renewed": now}]
                registry.save(data)
                if not announced:
                    _announce_wait(census, cap, len(others), settings.wait_timeout, unguarded)
                    announced = True
            elif now - mine.get("renewed", 0.0) >= _RENEW:
                mine["renewed"] = now
                data["sessions"], data["waiters"] = census.live, queue
                registry.save(data)
        try:
            time.sleep(delay)
        except KeyboardInterrupt:  # the user stopped waiting: give up the place in the queue at once
            _leave_queue(registry, me)
            raise
        delay = min(delay * 1.5, 0.5)


def _leave_queue(registry: Registry, me: int) -> None:
    try:
        with registry.locked():
            data = registry.load()
            data["waiters"] = [w for w in data["waiters"] if w["pid"] != me]
            registry.save(data)
    except (GuardError, OSError):
        pass  # the place lapses by itself once this process is gone (queued)


# A waiter renews its place in the queue (`renewed`, on the system-wide monotonic clock) every _RENEW seconds
# while it polls; one that has not for _STALE seconds (stopped with Ctrl-Z, frozen, gone) loses its place.
_RENEW = 1.0
_STALE = 10.0


def queued(w: Waiter, now: float) -> bool:
    """A waiter record still holds a place: renewed lately, by that very process, which is a guard's launch
    of this user (a record naming any other process, however alive, counts for nothing)."""
    renewed = w.get("renewed")
    if not isinstance(renewed, (int, float)) or not 0 <= now - renewed < _STALE:
        return False
    from .proc import native

    if not native().alive(w["pid"], w["start"]):
        return False
    proc = native().read(w["pid"])
    if proc is None or (hasattr(os, "getuid") and proc.uid >= 0 and proc.uid != os.getuid()):
        return False
    # The guard runs as `python -IS <shim>`, `claude-guard[-shim] ...` or `python -m claude_guard ...`.
    return any(os.path.basename(arg).lower().startswith("claude-guard") or arg == "claude_guard"
               or (os.path.isabs(arg) and resolve.is_shim(arg)) for arg in proc.cmdline[:4])


def update_pid(registry: Registry, old_pid: int, new_pid: int) -> None:
    """Point an entry at the process that really is claude (the runner's child, where exec is impossible)."""
    from .proc import native

    with registry.locked():
        data = registry.load()
        for entry in data["sessions"]:
            if entry["pid"] == old_pid:
                entry["pid"] = new_pid
                entry["start"] = native().start_token(new_pid) or ""
                entry["guard_pid"] = old_pid
        registry.save(data)
