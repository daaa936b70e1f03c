"""The config file as last parsed, kept so the `claude` shim need not import a TOML parser on every start.

`import tomllib` (with `re`, `string`, `enum`, `typing`, `datetime`) costs a launch more than a bare interpreter
start: about the whole budget of a pass-through like `claude --version`. The first launch after the file
changes parses it in full and writes what TOML gave for each key, with the line it was on, to
`config.cache` in the state folder; the next launches read that back and run every value through the same
`KEYS[key].parse` as a full parse would.

The cache is lines of tab-separated fields, each text field escaped with the `unicode_escape` codec of the
built-in `_codecs` module, so no tab, newline or non-ASCII character is left raw:
    claude-guard config cache <VERSION>
    path <path>
    identity <dev> <ino> <size> <mtime_ns> <ctime_ns>
    text <the file's text>
    key <name> <line, or -> <kind: s str, i int, f float, b bool (0/1)> <value>
    key <name> <line, or -> l <number of items> <item> ...    (a list of str)
not JSON: the C JSON module is a shared library whose loading costs a pass-through (`claude --version`)
as much as the rest of its settings, while `_codecs` is in the interpreter already.

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

import _codecs
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "config.cache"
VERSION = 2
HEADER = f"claude-guard config cache {VERSION}"
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
    except OSError:
        return None
    found = decode(raw)
    if found is None or found[0] != path or found[1] != identity(st) or found[2] != text:
        return None
    return found[3]


def encode(path: str, ident: list[int], text: str, keys: dict[str, tuple[Any, int | None]]) -> str:
    """The cache's text for a parse of the file at `path` (see the module's docstring)."""
    lines = [HEADER, f"path\t{_esc(path)}", "identity\t" + " ".join(map(str, ident)), f"text\t{_esc(text)}"]
    for key, (value, line) in keys.items():
        where = "-" if line is None else str(line)
        if type(value) is bool:
            kind, fields = "b", ["1" if value else "0"]
        elif type(value) is list:
            kind, fields = "l", [str(len(value)), *(_esc(item) for item in value)]
        else:
            kind, fields = {str: "s", int: "i", float: "f"}[type(value)], [_esc(value) if type(value) is str
                                                                            else repr(value)]
        lines.append("\t".join(["key", _esc(key), where, kind, *fields]))
    return "\n".join(lines) + "\n"


def decode(raw: bytes) -> tuple[str, list[int], str, dict[str, tuple[Any, int | None]]] | None:
    """(path, identity, text, keys) of a cache's bytes; None for anything that is not exactly that shape."""
    try:
        lines = raw.decode("ascii").split("\n")
        if len(lines) < 5 or lines[0] != HEADER or lines[-1] != "":
            return None
        fields = [line.split("\t") for line in lines[1:-1]]
        if [f[0] for f in fields[:3]] != ["path", "identity", "text"] or any(len(f) != 2 for f in fields[:3]):
            return None
        path, text = _unesc(fields[0][1]), _unesc(fields[2][1])
        ident = [int(n) for n in fields[1][1].split(" ")]
        keys: dict[str, tuple[Any, int | None]] = {}
        for f in fields[3:]:
            if len(f) < 5 or f[0] != "key" or (f[3] != "l" and len(f) != 5):
                return None
            key, where, kind = _unesc(f[1]), f[2], f[3]
            line = None if where == "-" else int(where)
            if (line is not None and line < 1) or key in keys:
                return None
            value: Any
            if kind == "s":
                value = _unesc(f[4])
            elif kind == "i":
                value = int(f[4])
            elif kind == "f":
                value = float(f[4])
            elif kind == "b" and f[4] in ("0", "1"):
                value = f[4] == "1"
            elif kind == "l" and int(f[4]) == len(f) - 5:
                value = [_unesc(item) for item in f[5:]]
            else:
                return None
            keys[key] = (value, line)
    except (ValueError, UnicodeError):
        return None
    return path, ident, text, keys


def _esc(text: str) -> str:
    return _codecs.unicode_escape_encode(text)[0].decode("ascii")


def _unesc(field: str) -> str:
    return _codecs.unicode_escape_decode(field.encode("ascii"))[0]


def store(folder: str, path: str, st: os.stat_result, text: str, keys: dict[str, tuple[Any, int | None]]) -> None:
    """Cache a successful parse; silently nothing when the folder is unsafe or cannot be written."""
    if sys.platform == "win32" or not ENABLED or not all(_value_ok(value) for value, _ in keys.values()):
        return
    payload = encode(path, identity(st), text, keys)
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
