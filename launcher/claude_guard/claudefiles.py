"""Claude Code's own live-session files, `~/.claude/sessions/<PID>.json`: one reader, one test of whether a
file was written by a given process. Used by the launch (duplicate `--resume` holders) and by the sweep.

A file is trusted only when it was written by that very process, not by an earlier one with the same pid:
Claude records `procStart` (on Linux the /proc start ticks, the /proc backend's own token) and `startedAt`
(epoch milliseconds). Where the backend's tokens are not ticks (psutil), the start time Claude recorded
must match the process's creation time instead.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .proc import Backend, Proc


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

    def matches(self, proc: Proc, backend: Backend) -> bool:
        """Written by this very process (not by an earlier one with the same pid)."""
        if self.pid != proc.pid:
            return False
        if self.proc_start and backend.ticks:
            return self.proc_start == proc.start
        # Elsewhere the token formats differ: the start time Claude recorded must match the process's.
        return self.started_at is not None and abs(self.started_at - proc.created) < 5


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(value: object) -> float | None:
    return float(value) / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read(folders: Iterable[str]) -> list[ClaudeFile]:
    """Every session file that parses, in the given `sessions` folders."""
    from . import jsonio

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
                # A bare descriptor: buffered open() costs about twice as much per file, and `ps` reads one
                # file per session.
                fd = os.open(path, os.O_RDONLY)
                try:
                    raw = os.read(fd, 1 << 20)
                finally:
                    os.close(fd)
                data = jsonio.loads(raw.decode("utf-8"))
                if isinstance(data, dict):
                    out.append(ClaudeFile(path, data))
            except (OSError, ValueError, UnicodeDecodeError, TypeError):
                continue
    return out
