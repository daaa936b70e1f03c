"""The config file as last parsed, kept so the `claude` shim need not import a TOML parser on every start.

`import tomllib` (with `re`, `string`, `enum`, `typing`, `datetime`) costs a launch more than a bare interpreter
start: about the whole budget of a pass-through like `claude --version`. The first launch after the file
changes parses it in full and writes what TOML gave for each key, with the line it was on, to
`config.cache` in the state folder; the next launches read that back with the C JSON scanner the hot path
already uses, and run every value through the same `KEYS[key].parse` as a full parse would.

A hit needs the file's identity (device, inode, size, mtime_ns, ctime_ns) and its exact bytes (a same-size
edit inside one timestamp tick changes no stat field) to equal what was cached. Anything else is a miss and
a full parse: so a bad file always gets its file:line:key error, and is never cached. The cache is only ever
a copy of what parsing the same bytes gave: a cache that is unreadable, malformed, of another shape or
version, a symlink, not ours, writable by others, or in a folder that is, is ignored (never an error, never
a different setting). It is written atomically (a private temp file, then rename), and only into a state
folder that is safe as the registry requires it (ours, not writable by others, not a symlink), made 0700 as
the registry makes it when missing.

Linux only: elsewhere finding the state folder costs platformdirs, more than the parse it would save.
"""

from __future__ import annotations

import os
import stat
import sys

from . import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "config.cache"
VERSION = 1
ENABLED = sys.platform.startswith("linux")


def identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _trusted(st: os.stat_result, folder: bool) -> bool:
    """Ours, not writable by anyone else, and of the right kind (lstat: a symlink is neither kind)."""
    if sys.platform == "win32":  # never enabled there (no owner to check); this also tells mypy so
        return False
    kind = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
    return kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _value_ok(value: object) -> bool:
    """The TOML value types the settings accept (anything else was never written by us)."""
    if type(value) in (str, int, float, bool):
        return True
    return type(value) is list and all(type(item) is str for item in value)


def lookup(folder: str, path: str, st: os.stat_result, text: str) -> dict[str, tuple[Any, int | None]] | None:
    """{key: (TOML value, line)} cached for the config file at `path` with stat `st` and content `text`, or None
    (a miss) for anything but a faithful cache of exactly that file."""
    if sys.platform == "win32" or not ENABLED:
        return None
    try:
        if not _trusted(os.lstat(folder), folder=True):
            return None
        fd = os.open(os.path.join(folder, NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not _trusted(os.fstat(fd), folder=False):
                return None
            raw = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        data = jsonio.loads(raw.decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if (type(data) is not dict or data.get("version") != VERSION or data.get("path") != path
            or data.get("identity") != identity(st) or data.get("text") != text or type(data.get("keys")) is not dict):
        return None
    out: dict[str, tuple[Any, int | None]] = {}
    for key, item in data["keys"].items():
        if type(item) is not list or len(item) != 2 or not _value_ok(item[0]):
            return None
        line = item[1]
        if line is not None and (type(line) is not int or line < 1):
            return None
        out[key] = (item[0], line)
    return out


def store(folder: str, path: str, st: os.stat_result, text: str, keys: dict[str, tuple[Any, int | None]]) -> None:
    """Cache a successful parse; silently nothing when the folder is unsafe or cannot be written."""
    if sys.platform == "win32" or not ENABLED or not all(_value_ok(value) for value, _ in keys.values()):
        return
    payload = jsonio.dumps({"version": VERSION, "path": path, "identity": identity(st), "text": text,
                            "keys": {key: [value, line] for key, (value, line) in keys.items()}})
    try:
        try:
            st_folder = os.lstat(folder)
        except FileNotFoundError:  # made as the registry makes it (registry.ensure_dir)
            os.makedirs(os.path.dirname(folder), mode=0o755, exist_ok=True)
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
            st_folder = os.lstat(folder)
        if not _trusted(st_folder, folder=True):
            return  # unsafe: the registry will say so; the cache just stays away
        from . import files, registry

        target = os.path.join(folder, NAME)
        # Not durable: a cache lost in a crash is a parse on the next launch.
        files.atomic_write(target, payload.encode("ascii"), durable=False)
        registry.remove_stale_temps(target)  # a writer killed before its rename (this runs only on a miss)
    except OSError:
        return
