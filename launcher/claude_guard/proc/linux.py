"""The /proc backend (Linux): standard library only, so the `claude` shim can use it on every launch.

Files are read through bare descriptors: buffered `open` costs about twice as much per file, and the launch
side's pass visits every process on the machine. psutil's pass costs about 4 times procps `ps` over 500
processes, before its own import; this one about the same as `ps`.
"""

from __future__ import annotations

import os
import sys
import time

from . import GONE_STATES, INTERPRETERS, Backend, Proc, strip_deleted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

assert sys.platform.startswith("linux")  # also tells mypy to skip this module for other systems

# Process names (comm) that may be Claude Code: `claude` itself, or an interpreter running it as a script.
_COMMS = frozenset(n.encode() for n in INTERPRETERS)
_CHUNK = 1 << 16


def _read(path: str) -> bytes:
    """A whole /proc file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, _CHUNK)]
        while len(chunks[-1]) == _CHUNK:
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _readlink(path: str) -> str | None:
    try:
        return strip_deleted(os.readlink(path))
    except OSError:
        return None


def _split(raw: bytes) -> list[str]:
    args = [os.fsdecode(a) for a in raw.split(b"\0")]
    if args and args[-1] == "":
        args.pop()
    return args


def _stat(pid: int | str) -> tuple[bytes, list[bytes]] | None:
    """(comm, fields 3.. of /proc/PID/stat): the fields follow the parenthesised comm, which may hold
    spaces or parentheses. None when the process is gone or the line is short."""
    try:
        data = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    end = data.rfind(b")")
    if end <= 0:
        return None
    fields = data[end + 2 :].split()
    return (data[data.find(b"(") + 1 : end], fields) if len(fields) >= 20 else None


def _boot() -> float:
    """Boot time in epoch seconds, to turn start ticks into a creation time."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class _Row(Proc):
    """A row of the sweep's pass: its command line is read on first use."""

    __slots__ = ()

    def _read_cmdline(self) -> list[str]:
        try:
            return _split(_read(f"/proc/{self.pid}/cmdline"))
        except OSError:
            return []


class Linux(Backend):
    name = "proc"
    ticks = True

    def __init__(self) -> None:
        self._tick = float(os.sysconf("SC_CLK_TCK"))
        self._page = os.sysconf("SC_PAGE_SIZE")

    def start_token(self, pid: int) -> str | None:
        st = _stat(pid)
        return st[1][19].decode() if st else None

    def alive(self, pid: int, start: str | None) -> bool:
        if not pid or pid <= 0 or not start:
            return False
        st = _stat(pid)
        return st is not None and st[1][19].decode() == start and st[1][0].decode() not in GONE_STATES

    def pids(self) -> set[int] | None:
        return {int(name) for name in os.listdir("/proc") if name.isdigit()}

    def population(self) -> int | None:
        # The 4th field of /proc/loadavg, "running/total", counts every thread the kernel has (zombies until
        # they are reaped, every PID namespace's): never fewer than the processes /proc lists, and one small
        # read where listing /proc reads every entry. Inside a container it counts the host's, often more than
        # a cap: then the caller lists /proc (pids) for the exact number.
        try:
            with open("/proc/loadavg", "rb") as f:
                return int(f.read(256).split()[3].split(b"/")[1])
        except (OSError, IndexError, ValueError):
            return super().population()

    def exists(self, pid: int) -> bool:
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)  # signal 0: nothing is sent, only whether the PID exists is checked
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process
        return True

    def ppid(self, pid: int) -> int | None:
        st = _stat(pid)
        return int(st[1][1]) if st else None

    def read(self, pid: int) -> Proc | None:
        st = _stat(pid)
        if st is None:
            return None
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            raw = _read(f"/proc/{pid}/cmdline")
        except OSError:
            return None
        return self._make(pid, st, uid, raw, _boot())

    def _make(self, pid: int, st: tuple[bytes, list[bytes]], uid: int, raw: bytes, boot: float) -> Proc:
        comm, fields = st
        start = fields[19].decode()
        return Proc(pid, int(fields[1]), fields[0].decode(), start, uid, int(fields[4]), _split(raw),
                    _readlink(f"/proc/{pid}/exe"), comm=comm.decode("utf-8", "replace"),
                    created=boot + int(start) / self._tick)

    def scan(self, uid: int | None, needle: bytes = b"") -> Iterator[Proc]:
        # This loop visits every process on the machine on every `claude` launch, and a command line can be
        # megabytes (anyone's: 150 of another user's, 1.5 MB each, made root's launch 15 times slower). So the
        # owner is checked before anything is read: for an ordinary user by a stat of the folder (most
        # processes are someone else's, and a stat is cheaper than an open), for root by an fstat of the
        # opened file, which the read needed anyway.
        rdonly = os.O_RDONLY
        owner_first = uid is not None and uid != 0
        boot = _boot()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            if owner_first:
                try:
                    if os.stat(f"/proc/{name}").st_uid != uid:
                        continue
                except OSError:
                    continue
            try:
                fd = os.open(f"/proc/{name}/cmdline", rdonly)
            except OSError:
                continue
            try:
                st_uid = os.fstat(fd).st_uid
                if uid is not None and st_uid != uid:
                    continue
                raw = os.read(fd, _CHUNK)
                if needle and needle not in raw:
                    continue
                while len(raw) % _CHUNK == 0 and raw:  # a long command line: read the rest
                    more = os.read(fd, _CHUNK)
                    if not more:
                        break
                    raw += more
            except OSError:
                continue
            finally:
                os.close(fd)
            st = _stat(name)
            if st is not None:
                yield self._make(int(name), st, st_uid, raw, boot)

    def table(self, uid: int | None, user: str | None = None) -> Iterator[Proc]:
        boot = _boot()
        tick, page = self._tick, self._page
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
            if b"claude" in comm or comm.rstrip(b"0123456789.") in _COMMS:
                try:
                    raw = _read(base + "/cmdline")
                except OSError:
                    continue
                cmdline = _split(raw)
                if b"claude" in raw or b"claude" in comm:
                    exe = _readlink(base + "/exe")
            start = fields[19].decode()
            yield _Row(int(name), int(fields[1]), fields[0].decode(), start, owner, int(fields[4]), cmdline, exe,
                       comm=comm.decode("utf-8", "replace"), rss=int(fields[21]) * page,
                       cpu=(int(fields[11]) + int(fields[12])) / tick, created=boot + int(start) / tick)

    def environment(self, pid: int, wanted: Iterable[str]) -> dict[str, str] | None:
        try:
            raw = _read(f"/proc/{pid}/environ")
        except OSError:
            return None
        names = set(wanted)
        if not any(n.encode() in raw for n in names):
            return {}
        out = {}
        for item in raw.split(b"\0"):
            name, _, value = item.partition(b"=")
            text = name.decode("ascii", "replace")
            if text in names:
                out[text] = os.fsdecode(value)
        return out

    def cwd(self, pid: int) -> str | None:
        return _readlink(f"/proc/{pid}/cwd")

    def session(self, pid: int) -> tuple[int, int] | None:
        st = _stat(pid)
        return (int(st[1][2]), int(st[1][3])) if st else None

    def _status(self, pid: int, field: bytes) -> list[bytes] | None:
        try:
            for line in _read(f"/proc/{pid}/status").splitlines():
                if line.startswith(field):
                    return line.split()[1:]
        except OSError:
            pass
        return None

    def ids(self, pid: int) -> tuple[int, int, int] | None:
        found = self._status(pid, b"Uid:")
        return (int(found[0]), int(found[1]), int(found[2])) if found and len(found) >= 3 else None

    def ignores_hangup(self, pid: int) -> bool | None:
        found = self._status(pid, b"SigIgn:")
        return bool(int(found[0], 16) & 1) if found else None  # bit 0: signal 1, SIGHUP

    def listening(self, pids: Iterable[int]) -> dict[int, list[int]]:
        # /proc/net/tcp{,6}: sockets of this network namespace, in state 0A (LISTEN), by inode; a process's
        # descriptors name the inodes of its sockets (readable for the user's own processes, or by root).
        pids = list(pids)
        if not pids:
            return {}
        ports: dict[str, int] = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = _read(table).splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if len(cols) > 9 and cols[3] == b"0A":
                    ports[cols[9].decode()] = int(cols[1].rsplit(b":", 1)[1], 16)
        out: dict[int, list[int]] = {}
        for pid in pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            found = set()
            for fd in fds:
                target = _readlink(f"/proc/{pid}/fd/{fd}") or ""
                if target.startswith("socket:[") and target[8:-1] in ports:
                    found.add(ports[target[8:-1]])
            if found:
                out[pid] = sorted(found)
        return out

    def terminal(self, proc: Proc, kind: str | None = None) -> tuple[str | None, bool]:
        # Not looking at stdio first saves three readlinks per session without a terminal on the `ps` path.
        if not proc.tty_nr:
            return None, False
        for fd in (0, 1, 2):
            target = _readlink(f"/proc/{proc.pid}/fd/{fd}")
            if target and target.startswith(("/dev/pts/", "/dev/tty", "/dev/console")):
                return target, True
        return f"tty({os.major(proc.tty_nr)},{os.minor(proc.tty_nr)})", True

    def tell(self, proc: Proc, line: str) -> str | None:
        """Only a terminal the kernel names as the process's controlling terminal (its device number is the
        process's tty_nr: no file someone else chose) and that belongs to the process's owner (root's sweep
        never writes to another user's terminal); with no controlling terminal, only a pipe on its stderr
        (an SDK host's), opened through /proc while the process is still the one the sweep checked."""
        import stat

        # Text from files and command lines (ids, names, folders) must not carry escape sequences to a terminal.
        line = "".join(c if c.isprintable() else "?" for c in line)
        if proc.tty_nr:
            path, _ = self.terminal(proc)
            data = f"\r\n{line}\r\n".encode("utf-8", "replace")
            expect = stat.S_ISCHR
        else:
            path = f"/proc/{proc.pid}/fd/2"
            if not (_readlink(path) or "").startswith("pipe:["):
                return None
            data = f"{line}\n".encode("utf-8", "replace")
            expect = stat.S_ISFIFO
        if not path or not path.startswith(("/dev/", "/proc/")):
            return None  # "tty(M,N)": no device node found for it
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not expect(st.st_mode) or (proc.tty_nr and st.st_rdev != proc.tty_nr) \
                    or (proc.uid >= 0 and st.st_uid != proc.uid) or self.start_token(proc.pid) != proc.start:
                return None
            os.write(fd, data)
        except OSError:
            return None  # a full pipe (nobody reads it) or a terminal gone meanwhile: the signal still follows
        finally:
            os.close(fd)
        return "its terminal" if proc.tty_nr else "its stderr"

    def signal(self, pid: int, start: str, sig: int, *, owner_ok: Callable[[int, str | None], bool] | None = None,
               claude: bool = False, is_shim: Callable[[str], bool] | None = None) -> str:
        """Checked through /proc, sent through a pidfd opened before the check, so a pid reused between check
        and signal is never hit (kill(2) right after the check on kernels without pidfds)."""
        import signal

        pidfd = -1
        if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                return "gone"
            except OSError:
                pidfd = -1  # an old kernel: fall back to kill(2) right after the check
        try:
            row = self.read(pid)
            if row is None or row.start != start or row.state in GONE_STATES:
                return "gone"
            why = self._refusal(row, owner_ok, claude, is_shim)
            if why:
                return why
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
            return "sent"
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            return "refused: permission denied"
        finally:
            if pidfd >= 0:
                os.close(pidfd)
