"""The psutil backend: macOS and Windows (and Linux, where tests run it to prove the other systems' code).

Start tokens are psutil's creation time in epoch seconds (`token`). With `windows` set it applies Windows'
rules, which psutil alone does not hide:
- owners are account names, not uids (`user`; psutil gives account names on Linux too);
- there is no controlling terminal, and whether another process has a console cannot be read from outside
  it. An interactive claude needs a console (its TUI does not start without one) and Windows ends every
  process of a console when its window closes, so a live interactive session is taken to be in an open
  console; print, SDK and background sessions to have none;
- a process keeps the PID of its dead parent, which may since name a newer, unrelated process, so a parent
  link counts only when the parent is not younger than the child (`parent_gone`).
- there is no SIGTERM: psutil's terminate() and kill() are both TerminateProcess.
"""

from __future__ import annotations

import sys

import psutil

from . import Backend, Proc, same_user

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


def token(create_time: float) -> str:
    """The start token of a process read through psutil."""
    return f"{create_time:.3f}"


class Portable(Backend):
    name = "psutil"

    def __init__(self, windows: bool = False) -> None:
        self.windows = windows

    def start_token(self, pid: int) -> str | None:
        try:
            return token(psutil.Process(pid).create_time())
        except (psutil.Error, OSError):
            return None

    def alive(self, pid: int, start: str | None) -> bool:
        if not pid or pid <= 0 or not start:
            return False
        try:
            p = psutil.Process(pid)
            return token(p.create_time()) == start and p.status() != psutil.STATUS_ZOMBIE
        except (psutil.Error, OSError):
            return False

    def pids(self) -> set[int] | None:
        try:
            return set(psutil.pids())
        except (psutil.Error, OSError):
            return None

    def ppid(self, pid: int) -> int | None:
        try:
            return int(psutil.Process(pid).ppid())
        except (psutil.Error, OSError):
            return None

    def read(self, pid: int) -> Proc | None:
        return next(self._iter([pid]), None)

    def scan(self, uid: int | None, needle: bytes = b"") -> Iterator[Proc]:
        text = needle.decode()
        for p in self._iter(None):
            if (uid is None or p.uid == uid) and text in "\0".join(p.cmdline):
                yield p

    def _iter(self, pids: list[int] | None) -> Iterator[Proc]:
        # Windows has neither uids nor terminals: psutil refuses (ValueError) to be asked for them there.
        posix = ["uids", "terminal"] if not (self.windows or sys.platform == "win32") else []
        attrs = ["pid", "ppid", "status", "create_time", "cmdline", "exe", "name", *posix]
        procs = (psutil.Process(p) for p in pids) if pids is not None else psutil.process_iter()
        try:
            for p in procs:
                try:
                    info = p.as_dict(attrs)
                except (psutil.Error, OSError):
                    continue
                state = "Z" if info["status"] == psutil.STATUS_ZOMBIE else "S"
                uids = info.get("uids")
                created = info.get("create_time") or 0.0
                yield Proc(info["pid"], info["ppid"] or 0, state, token(created), uids.real if uids else -1,
                           1 if info.get("terminal") else 0, list(info.get("cmdline") or []), info.get("exe") or None,
                           comm=info.get("name") or "", created=created, tty=info.get("terminal") or None)
        except psutil.NoSuchProcess:
            return

    def table(self, uid: int | None, user: str | None = None) -> Iterator[Proc]:
        windows = self.windows
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
            yield Proc(info["pid"], info.get("ppid") or 0, "Z" if info.get("status") == psutil.STATUS_ZOMBIE else "S",
                       token(created), owner, 1 if tty else 0, list(more.get("cmdline") or []),
                       more.get("exe") or None, comm=info.get("name") or "", rss=mem.rss if mem else 0,
                       cpu=(cpu.user + cpu.system) if cpu else 0.0, created=created, user=name, tty=tty or None)

    def environment(self, pid: int, wanted: Iterable[str]) -> dict[str, str] | None:
        try:
            env = psutil.Process(pid).environ()
        except (psutil.Error, OSError):
            return None
        names = set(wanted)
        return {k: v for k, v in env.items() if k in names}

    def cwd(self, pid: int) -> str | None:
        try:
            return psutil.Process(pid).cwd() or None
        except (psutil.Error, OSError):
            return None

    def ids(self, pid: int) -> tuple[int, int, int] | None:
        if sys.platform == "win32" or self.windows:  # no uids
            return None
        try:
            found = psutil.Process(pid).uids()
        except (psutil.Error, OSError):
            return None
        return found.real, found.effective, found.saved

    def listening(self, pids: Iterable[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for pid in pids:
            try:
                one = psutil.Process(pid)
                read = getattr(one, "net_connections", None) or one.connections  # psutil < 6: connections()
                conns = read(kind="inet")
            except (psutil.Error, OSError):
                continue  # macOS: only root reads other processes' sockets
            ports = sorted({c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr})
            if ports:
                out[pid] = ports
        return out

    def terminal(self, proc: Proc, kind: str | None = None) -> tuple[str | None, bool]:
        if self.windows:
            return ("console", True) if kind == "interactive" else (None, False)
        return super().terminal(proc, kind)

    def whoami(self) -> tuple[int | None, str | None]:
        if self.windows:
            return None, psutil.Process().username()
        return super().whoami()

    def owner(self, proc: Proc) -> str:
        return (proc.user or "another account") if self.windows else super().owner(proc)

    def parent_gone(self, proc: Proc, rows: dict[int, Proc]) -> bool:
        """Windows never reparents: the PID stays after the parent dies, and may since have been given to a
        newer process. (psutil's parent() makes the same test.)"""
        if not self.windows:
            return False
        parent = rows.get(proc.ppid)
        if parent is not None:
            return parent.created > proc.created
        if proc.ppid <= 0:
            return False  # the system's own processes
        try:
            return psutil.Process(proc.ppid).create_time() > proc.created
        except psutil.NoSuchProcess:
            return True
        except (psutil.Error, OSError):
            return False  # alive, but not ours to read: it is there

    def signal(self, pid: int, start: str, sig: int, *, owner_ok: Callable[[int, str | None], bool] | None = None,
               claude: bool = False, is_shim: Callable[[str], bool] | None = None) -> str:
        """psutil.Process records the creation time when made, and its terminate() and kill() refuse
        (NoSuchProcess) when the PID names another process by then; the start token is compared first. That
        leaves a window of microseconds in which a PID reused at that very moment could be hit."""
        import signal

        try:
            p = psutil.Process(pid)
            with p.oneshot():
                if token(p.create_time()) != start or p.status() == psutil.STATUS_ZOMBIE:
                    return "gone"
                if sys.platform == "win32" or self.windows:  # the platform test tells mypy uids() is POSIX-only
                    uid, user = -1, p.username()
                else:
                    uid, user = p.uids().real, None
                row = Proc(pid, p.ppid(), "S", start, uid, 0, None, None, user=user)
                if owner_ok is not None and not owner_ok(uid, user):
                    return f"refused: now owned by {self.owner(row)}"
                if claude:
                    row = Proc(pid, row.ppid, "S", start, uid, 0, p.cmdline(), p.exe() or None, user=user)
                why = self._refusal(row, None, claude, is_shim)  # still Claude Code; not set-user-id
                if why:
                    return why
            if sig == signal.SIGTERM:
                p.terminate()  # SIGTERM; Windows: TerminateProcess
            else:
                p.kill()  # SIGKILL; Windows: TerminateProcess
            return "sent"
        except psutil.NoSuchProcess:  # ZombieProcess included
            return "gone"
        except psutil.AccessDenied:
            return "refused: permission denied"


