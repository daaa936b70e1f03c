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
    context <guard version> <HOME> <bytes of memory>
    key <name> <line, or -> <kind: s str, i int, f float, b bool (0/1)> <value>
    key <name> <line, or -> l <number of items> <item> ...    (a list of str)
    value <name> <source> <kind> <value> ...                  (as a key line, with the value's source)
The `key` lines are what TOML gave for each key of the file. The `value` lines, when present, are the settings
config.load made of exactly that file with no CLAUDE_GUARD_* setting variable and no command-line option: every
key, defaults included, with its source. `load` (cached_settings) returns those without loading config.py (its key
table and parsers cost a launch more than reading them); a default depends on the guard's version, on HOME (`~` in
paths) and on the machine's memory (max_sessions), so the `context` line must match too.
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
    from collections.abc import Mapping
    from typing import Any

    from .settings import Settings

    Keys = dict[str, tuple[Any, int | None]]

NAME = "config.cache"
VERSION = 3
HEADER = f"claude-guard config cache {VERSION}"
ENABLED = sys.platform.startswith("linux")


def identity(st: os.stat_result | None) -> list[int]:
    """What identifies the file besides its bytes; empty for no file at all."""
    return [] if st is None else [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


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


class Record:
    """A cache's content: the file it is of, what TOML gave for its keys, and (maybe) the settings made of it."""

    def __init__(self, path: str, ident: list[int], text: str, context: list[str], keys: Keys,
                 values: dict[str, tuple[Any, str]]) -> None:
        self.path, self.ident, self.text, self.context = path, ident, text, context
        self.keys, self.values = keys, values

    def of(self, path: str, st: os.stat_result | None, text: str) -> bool:
        return self.path == path and self.ident == identity(st) and self.text == text


def context() -> list[str]:
    """What the defaults depend on besides the file: the guard's version, HOME (`~`), the machine's memory."""
    from . import __version__

    memory = "?"
    if sys.platform != "win32":  # never enabled there; this also tells mypy so
        try:
            memory = str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return [__version__, os.environ.get("HOME", ""), memory]


def _load(folder: str) -> Record | None:
    """The cache in `folder`, when it is ours, private and well formed."""
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
    return decode(raw)


def lookup(folder: str, path: str, st: os.stat_result | None, text: str) -> Record | None:
    """The cache of the config file at `path` with stat `st` and content `text`, or None (a miss) for anything
    but a faithful cache of exactly that file."""
    record = _load(folder)
    return record if record is not None and record.of(path, st, text) else None


def load(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None, *,
         lenient: bool = False) -> Settings:
    """config.load(env, overrides, lenient=lenient, cache=True): from the cache when it holds exactly that
    (cached_settings), without loading config.py; else config.load itself, which also fills the cache."""
    from .settings import only_file

    env = os.environ if env is None else env
    if ENABLED and only_file(env, overrides):
        from . import paths
        from .settings import config_path

        found = cached_settings(paths.state_dir(), config_path(env))
        if found is not None:
            return found
    from . import config

    return config.load(env, overrides, lenient=lenient, cache=True)


def cached_settings(folder: str, path: str) -> Settings | None:
    """The settings config.load(cache=True) gives when only the file and the defaults go into them
    (settings.only_file, the caller's to check): those the cache made of this very file (same bytes, same
    identity; none: no file either) in the same context. None: ask config.load."""
    from .errors import GuardError
    from .settings import Settings

    record = _load(folder)
    if record is None or not record.values or record.path != path or record.context != context():
        return None
    try:
        found = read_config(path)
    except GuardError:  # the file cannot be read or decoded now: config.load says why
        return None
    text, st = found if found is not None else ("", None)
    if not record.of(path, st, text):
        return None
    return Settings({k: v for k, (v, _) in record.values.items()}, {k: src for k, (_, src) in record.values.items()})


def read_config(path: str) -> tuple[str, os.stat_result] | None:
    """The config file's text and stat (from the same open file), or None when there is none. GuardError when
    it cannot be read or is not UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _unreadable(path, e) from None
    try:
        st = os.fstat(fd)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise _unreadable(path, e) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8"), st
    except UnicodeDecodeError:
        from .errors import ExitCode, GuardError

        raise GuardError(f"config {path}: not UTF-8 text; save it as UTF-8", ExitCode.CONFIG) from None


def _unreadable(path: str, e: OSError) -> Exception:
    from .errors import ExitCode, GuardError

    return GuardError(f"cannot read config {path}: {e.strerror}; fix its permissions or set CLAUDE_GUARD_CONFIG to "
                      "another file", ExitCode.CONFIG)


def _fields(value: Any) -> list[str] | None:
    """A value's kind and fields, or None for a type the cache does not hold."""
    if type(value) is bool:
        return ["b", "1" if value else "0"]
    if type(value) is list:
        return ["l", str(len(value)), *(_esc(item) for item in value)] if all(type(i) is str for i in value) else None
    if type(value) is str:
        return ["s", _esc(value)]
    if type(value) in (int, float):
        return [{int: "i", float: "f"}[type(value)], repr(value)]
    return None


def encode(path: str, ident: list[int], text: str, keys: Keys, values: Settings | None = None) -> str:
    """The cache's text for a parse of the file at `path` (see the module's docstring), with the settings made of
    it when given."""
    lines = [HEADER, f"path\t{_esc(path)}", "identity\t" + " ".join(map(str, ident)), f"text\t{_esc(text)}",
             "context\t" + "\t".join(map(_esc, context()))]
    for key, (value, line) in keys.items():
        lines.append("\t".join(["key", _esc(key), "-" if line is None else str(line), *(_fields(value) or ())]))
    if values is not None:
        for key, value in values.values.items():
            lines.append("\t".join(["value", _esc(key), _esc(values.sources[key]), *(_fields(value) or ())]))
    return "\n".join(lines) + "\n"


def _value(f: list[str]) -> Any:
    """The value of a key or value line's fields from the kind on (ValueError for anything else)."""
    kind = f[0]
    if kind == "s" and len(f) == 2:
        return _unesc(f[1])
    if kind == "i" and len(f) == 2:
        return int(f[1])
    if kind == "f" and len(f) == 2:
        return float(f[1])
    if kind == "b" and len(f) == 2 and f[1] in ("0", "1"):
        return f[1] == "1"
    if kind == "l" and len(f) >= 2 and int(f[1]) == len(f) - 2:
        return [_unesc(item) for item in f[2:]]
    raise ValueError("not a cached value")


def decode(raw: bytes) -> Record | None:
    """The Record of a cache's bytes; None for anything that is not exactly that shape."""
    try:
        lines = raw.decode("ascii").split("\n")
        if len(lines) < 6 or lines[0] != HEADER or lines[-1] != "":
            return None
        fields = [line.split("\t") for line in lines[1:-1]]
        if [f[0] for f in fields[:4]] != ["path", "identity", "text", "context"] \
                or any(len(f) != 2 for f in fields[:3]) or len(fields[3]) != 4:
            return None
        path, text = _unesc(fields[0][1]), _unesc(fields[2][1])
        ident = [int(n) for n in fields[1][1].split(" ")] if fields[1][1] else []
        keys: Keys = {}
        values: dict[str, tuple[Any, str]] = {}
        for f in fields[4:]:
            if len(f) < 5 or f[0] not in ("key", "value"):
                return None
            name = _unesc(f[1])
            if f[0] == "key":
                line = None if f[2] == "-" else int(f[2])
                if (line is not None and line < 1) or name in keys or values:
                    return None  # a key line after a value line, or twice
                keys[name] = (_value(f[3:]), line)
            else:
                if name in values:
                    return None
                values[name] = (_value(f[3:]), _unesc(f[2]))
        return Record(path, ident, text, [_unesc(c) for c in fields[3][1:]], keys, values)
    except (ValueError, UnicodeError):
        return None


def _esc(text: str) -> str:
    return _codecs.unicode_escape_encode(text)[0].decode("ascii")


def _unesc(field: str) -> str:
    if "\\" not in field:
        return field  # ASCII (the whole cache decoded as such) with no escape: already the text
    return _codecs.unicode_escape_decode(field.encode("ascii"))[0]


def store(folder: str, path: str, st: os.stat_result | None, text: str, keys: Keys,
          values: Settings | None = None) -> None:
    """Cache a successful parse (and the settings made of it, when given); silently nothing when the folder is
    unsafe or cannot be written."""
    if sys.platform == "win32" or not ENABLED or not all(_value_ok(value) for value, _ in keys.values()):
        return
    if values is not None and not all(_fields(v) is not None for v in values.values.values()):
        values = None
    payload = encode(path, identity(st), text, keys, values)
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
