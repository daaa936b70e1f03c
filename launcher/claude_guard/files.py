"""Writing the tool's own files: whole files replaced atomically, and logs appended and rotated.

On the `claude` hot path (the registry and guard.log): standard library only.
"""

from __future__ import annotations

import os

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows only: bytes as given, no LF -> CRLF, no stop at Ctrl-Z


def atomic_write(path: str, data: bytes, *, mode: int = 0o600, tmp: str | None = None) -> None:
    """Replace `path` with `data`: a temp file (`tmp`, default `<path>.tmp-<pid>`) of `mode` written, fsynced and
    renamed over it, then the folder fsynced, so a writer killed at any moment leaves either the old or the new
    file, never half of one. Every file the tool replaces goes through here. Raises OSError (the temp file
    removed)."""
    tmp = tmp or f"{path}.tmp-{os.getpid()}"
    try:
        # O_BINARY: Windows' C runtime opens in text mode by default and would write every LF as CRLF (the
        # shim .exe that install copies would no longer start).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _BINARY, mode)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # exactly `mode`, whatever the umask (a metrics file others read)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):
        try:
            dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # durability of the rename is best effort; the content is already safe


def append(path: str, text: str, limit: int) -> None:
    """Append `text` to a log, first moving it to `<path>.1` (one old file kept) when it has grown past `limit`
    bytes. The file is closed before the rename: Windows refuses to rename a file that is open. Raises OSError."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | _BINARY
    fd = os.open(path, flags, 0o600)
    try:
        if os.fstat(fd).st_size > limit:
            os.close(fd)
            fd = -1
            try:
                os.replace(path, path + ".1")
            except OSError:
                pass  # held open elsewhere (a reader on Windows): the line still goes in, rotation waits
            fd = os.open(path, flags, 0o600)
        os.write(fd, text.encode("utf-8", "backslashreplace"))
    finally:
        if fd >= 0:
            os.close(fd)
