"""Processes: identity (pid + start time), liveness, and which processes are Claude Code.

On Linux this reads /proc directly: the launch path runs on every `claude` start, and importing psutil
costs several times a bare interpreter start. Other systems go through psutil. The sweep side uses psutil
for memory and CPU, but takes identity from `start_token` here so both sides agree on it.

Identity is (pid, start token), never the pid alone: a pid is reused after its process dies. On Linux
the token is field 22 of /proc/PID/stat (start time in clock ticks since boot), the same value Claude Code
writes as `procStart` in ~/.claude/sessions/<PID>.json.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

LINUX = sys.platform.startswith("linux")

# Basenames of the real CLI's executable: the native build (npm links it as bin/claude.exe) and the
# node entry of older npm releases.
CLAUDE_NAMES = frozenset({"claude", "claude.exe"})
_NODE_ENTRIES = ("cli.js", "cli.mjs")
# Interpreters whose first script argument is the program they run (a `#!` script runs as
# `interpreter script args`). A `bash -c '...'` wrapper has `-c` there, so it never matches.
_INTERPRETERS = frozenset({"node", "nodejs", "bun", "deno", "sh", "bash", "dash", "zsh", "ksh", "fish", "perl",
                           "ruby"})


class Proc:
    """One process as the launch and sweep sides see it."""

    __slots__ = ("cmdline", "exe", "pid", "ppid", "start", "state", "tty_nr", "uid")

    def __init__(self, pid: int, ppid: int, state: str, start: str, uid: int, tty_nr: int,
                 cmdline: list[str], exe: str | None) -> None:
        self.pid = pid
        self.ppid = ppid
        self.state = state  # one letter, as in /proc/PID/stat (Z: zombie)
        self.start = start
        self.uid = uid
        self.tty_nr = tty_nr  # 0: no controlling terminal
        self.cmdline = cmdline
        self.exe = exe

    def __repr__(self) -> str:
        return f"Proc(pid={self.pid}, ppid={self.ppid}, state={self.state!r}, cmdline={self.cmdline!r})"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the parenthesised comm, which may hold spaces or parens)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    end = data.rfind(b")")
    return data[end + 2 :].decode("ascii", "replace").split() if end > 0 else None


def start_token(pid: int) -> str | None:
    """The start time that, with the pid, identifies a process; None if it is gone."""
    if LINUX:
        fields = _stat_fields(pid)
        return fields[19] if fields and len(fields) > 19 else None
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except (psutil.Error, OSError):
        return None


def alive(pid: int, start: str | None) -> bool:
    """True while that very process runs: same start token, and not a zombie awaiting its parent."""
    if not pid or pid <= 0 or not start:
        return False
    if LINUX:
        fields = _stat_fields(pid)
        return fields is not None and len(fields) > 19 and fields[19] == start and fields[0] not in ("Z", "X")
    import psutil

    try:
        p = psutil.Process(pid)
        return f"{p.create_time():.3f}" == start and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def read(pid: int) -> Proc | None:
    """One process, or None when it is gone or unreadable."""
    if not LINUX:
        return next(_psutil_iter([pid]), None)
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20:
        return None
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return _make(pid, fields, uid, raw)


def _make(pid: int, fields: list[str], uid: int, raw_cmdline: bytes) -> Proc:
    cmdline = [os.fsdecode(a) for a in raw_cmdline.split(b"\0")]
    if cmdline and cmdline[-1] == "":
        cmdline.pop()
    exe: str | None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = None
    if exe and exe.endswith(" (deleted)"):  # the binary was replaced by an update while running
        exe = exe[: -len(" (deleted)")]
    return Proc(pid, int(fields[1]), fields[0], fields[19], uid, int(fields[4]), cmdline, exe)


def scan(uid: int | None, needle: bytes = b"") -> Iterator[Proc]:
    """Every process of `uid` (None: every user) whose command line contains `needle`, in one pass.

    Processes that vanish mid-scan are skipped, never reported as errors.
    """
    if not LINUX:
        yield from (p for p in _psutil_iter(None) if (uid is None or p.uid == uid)
                    and needle.decode() in "\0".join(p.cmdline))
        return
    # Raw os.open/os.read and the needle test before any stat: this loop visits every process on the
    # machine on every `claude` launch, and the io layers of open() cost more than the system calls.
    rdonly = os.O_RDONLY
    # For an ordinary user most processes are someone else's: a stat of the folder is cheaper than reading
    # their command lines. For root every process is its own, so the stat would only add cost.
    owner_first = uid is not None and uid != 0
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
            raw = os.read(fd, 1 << 16)
            if needle and needle not in raw:
                continue
            while len(raw) % (1 << 16) == 0 and raw:  # a long command line: read the rest
                more = os.read(fd, 1 << 16)
                if not more:
                    break
                raw += more
            st_uid = os.fstat(fd).st_uid
        except OSError:
            continue
        finally:
            os.close(fd)
        if uid is not None and st_uid != uid:
            continue
        pid = int(name)
        fields = _stat_fields(pid)
        if fields and len(fields) >= 20:
            yield _make(pid, fields, st_uid, raw)


def _psutil_iter(pids: list[int] | None) -> Iterator[Proc]:
    import psutil

    attrs = ["pid", "ppid", "status", "create_time", "uids", "terminal", "cmdline", "exe"]
    procs = (psutil.Process(p) for p in pids) if pids is not None else psutil.process_iter()
    try:
        for p in procs:
            try:
                info = p.as_dict(attrs)
            except (psutil.Error, OSError):
                continue
            state = "Z" if info["status"] == psutil.STATUS_ZOMBIE else "S"
            uids = info.get("uids")
            yield Proc(info["pid"], info["ppid"] or 0, state, f"{info['create_time']:.3f}",
                       uids.real if uids else -1, 1 if info.get("terminal") else 0,
                       list(info.get("cmdline") or []), info.get("exe") or None)
    except psutil.NoSuchProcess:
        return


def claude_args(proc: Proc, is_shim: object = None) -> list[str] | None:
    """If `proc` runs Claude Code, the arguments it was given; else None.

    Matches the executable, not the name: the native binary by its file name, a script (node `cli.js`, or
    a `claude` script such as a test stand-in) by the script its interpreter runs. A wrapper whose command
    line merely mentions claude (`timeout 40 claude ...`, `bash -c "claude ..."`) is not Claude Code, and
    neither is a claude-guard shim still deciding whether to launch (`is_shim(path)` says which files are
    ours).
    """
    if proc.state in ("Z", "X") or not proc.cmdline:
        return None
    exe_name = os.path.basename(proc.exe) if proc.exe else os.path.basename(proc.cmdline[0])
    if exe_name in CLAUDE_NAMES:
        return proc.cmdline[1:]
    base = exe_name.rstrip("0123456789.")  # python3.11, node20, ...
    if base not in _INTERPRETERS and base != "python":
        return None
    for i in range(1, len(proc.cmdline)):
        script = proc.cmdline[i]
        if script.startswith("-"):
            if base in ("sh", "bash", "dash", "zsh", "ksh", "fish") and script == "-c":
                return None
            continue
        name = os.path.basename(script)
        if name in CLAUDE_NAMES:
            if callable(is_shim) and is_shim(script):
                return None
            return proc.cmdline[i + 1 :]
        if name in _NODE_ENTRIES and "claude-code" in script:
            return proc.cmdline[i + 1 :]
        return None
    return None


def ancestors(pid: int) -> list[int]:
    """Parent, grandparent, ... up to (not including) pid 1 / 0."""
    out: list[int] = []
    seen = {pid}
    while True:
        proc_ppid = _ppid(pid)
        if proc_ppid is None or proc_ppid <= 1 or proc_ppid in seen:
            return out
        out.append(proc_ppid)
        seen.add(proc_ppid)
        pid = proc_ppid


def _ppid(pid: int) -> int | None:
    if LINUX:
        fields = _stat_fields(pid)
        return int(fields[1]) if fields and len(fields) > 1 else None
    import psutil

    try:
        return int(psutil.Process(pid).ppid())
    except (psutil.Error, OSError):
        return None
