"""Claude Code's own live-session files, `~/.claude/sessions/<PID>.json`: one reader, one test of whether a
file was written by a given process. Used by the launch (duplicate `--resume` holders) and by the sweep.

A file is trusted only when it was written by that very process, not by an earlier one with the same pid:
Claude records `procStart` (on Linux the /proc start ticks, the /proc backend's own token) and `startedAt`
(epoch milliseconds). Where the backend's tokens are not ticks (psutil), the start time Claude recorded
must match the process's creation time instead.

Under a root sweep these files are read from folders other users chose (their home, their
CLAUDE_CONFIG_DIR), so every file is treated as hostile: a file counts only for a process of the user who
owns both the file and its folder (anyone can read a PID's start time in /proc and write a file naming it);
it is opened without following a symlink and without blocking (a FIFO would hang the reader), must be a
regular file of at most MAX_BYTES, and anything that does not parse (deep nesting included) is no file.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .proc import Backend, Proc


class ClaudeFile:
    """One `~/.claude/sessions/<PID>.json`, as Claude Code writes it."""

    __slots__ = ("cwd", "entrypoint", "folder_uid", "kind", "name", "path", "pid", "proc_start", "session_id",
                 "started_at", "status", "status_at", "uid")

    def __init__(self, path: str, data: Mapping[str, Any], uid: int = -1, folder_uid: int = -1) -> None:
        self.path = path
        self.pid = int(os.path.basename(path).split(".")[0])
        if data.get("pid") is not None and data.get("pid") != self.pid:
            raise ValueError("the file names another process than its file name")
        self.uid = uid  # the file's owner (-1: not known, Windows)
        self.folder_uid = folder_uid  # its folder's owner
        self.proc_start = str(data.get("procStart") or "")
        self.session_id = _text(data.get("sessionId"))
        self.name = _text(data.get("name"))
        self.cwd = _text(data.get("cwd"))
        self.kind = _text(data.get("kind"))
        self.entrypoint = _text(data.get("entrypoint"))
        self.status = _text(data.get("status"))
        self.status_at = _ms(data.get("statusUpdatedAt"))
        self.started_at = _ms(data.get("startedAt"))

    def belongs_to(self, proc: Proc) -> bool:
        """The file and its folder are owned by the process's owner (where there are uids; on Windows the
        profile folder's ACL keeps other accounts out)."""
        return proc.uid < 0 or self.uid < 0 or (self.uid == proc.uid and self.folder_uid == proc.uid)

    def matches(self, proc: Proc, backend: Backend) -> bool:
        """Written by this very process (not by an earlier one with the same pid), as its owner."""
        if self.pid != proc.pid or not self.belongs_to(proc):
            return False
        if self.proc_start and backend.ticks:
            return self.proc_start == proc.start
        # Elsewhere the token formats differ: the start time Claude recorded must match the process's.
        return self.started_at is not None and abs(self.started_at - proc.created) < 5


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(value: object) -> float | None:
    return float(value) / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


MAX_BYTES = 64 << 10  # Claude's own files are well under 1 KiB
# Open flags of a file someone else may have planted: no symlink (O_NOFOLLOW), no wait for a FIFO's writer
# (O_NONBLOCK), and no descriptor left to a program we start (O_CLOEXEC). Windows has none of the three.
_OPEN = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


def read(folders: Iterable[str]) -> list[ClaudeFile]:
    """Every session file in the given `sessions` folders that is a regular file of bounded size and parses.
    Each carries its own and its folder's owner for `belongs_to`."""
    out: list[ClaudeFile] = []
    for folder in dict.fromkeys(folders):
        try:
            names = os.listdir(folder)
            folder_uid = os.stat(folder).st_uid if os.name == "posix" else -1
        except OSError:
            continue
        for name in names:
            if not name.endswith(".json") or not name[:-5].isdigit():
                continue
            found = _read_one(os.path.join(folder, name), folder_uid)
            if found is not None:
                out.append(found)
    return out


def _read_one(path: str, folder_uid: int) -> ClaudeFile | None:
    from . import jsonio

    try:
        fd = os.open(path, _OPEN)
    except OSError:
        return None  # gone, a symlink (ELOOP), unreadable
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None  # a FIFO, a device, a folder, or far too big to be Claude's
        raw = os.read(fd, MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return None
        data = jsonio.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            return None
        return ClaudeFile(path, data, st.st_uid if os.name == "posix" else -1, folder_uid)
    except (OSError, ValueError, TypeError):
        # Anything that does not parse is no file: bad UTF-8, bad JSON (nesting deep enough to exhaust the
        # parser's recursion included: jsonio says ValueError), a field of the wrong type.
        return None
    finally:
        os.close(fd)
