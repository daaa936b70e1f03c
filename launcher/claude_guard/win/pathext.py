"""Finding a program the way Windows does: a PATH walk with PATHEXT, names normalised as Win32 opens them.

Pure functions of the strings given and the file system, so the rules can be tested on any OS: the PATH
separator is a parameter and extensions are matched without regard to case even where the file system cares.

Differences from cmd.exe, on purpose: the current folder is never searched and relative PATH entries are
skipped (both let whoever controls the working folder plant a `claude.cmd`; Windows itself stops searching
the current folder under NoDefaultCurrentDirectoryInExePath).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DEFAULT_PATHEXT = ".COM;.EXE;.BAT;.CMD"
PROGRAM_EXTENSIONS = frozenset({".exe", ".com"})  # CreateProcess starts these itself
BATCH_EXTENSIONS = frozenset({".cmd", ".bat"})  # CreateProcess hands these to cmd.exe /c


def windows_name(path: str) -> str:
    """`path` with trailing dots and spaces cut from its last part, as Win32 does when opening a file.

    So `claude.cmd. ` names `claude.cmd` and is a batch file (CVE-2024-43402).
    """
    head, sep, tail = _split_last(path)
    stripped = tail.rstrip(". ")
    if not stripped:
        # `.`, `..` and names of only dots and spaces are left alone; they are folders, not programs.
        return path
    return head + sep + stripped


def extension(path: str) -> str:
    """The lower-case extension Windows sees in `path` (after windows_name), or "" when there is none.

    A `:` in the last part (an NTFS stream such as `claude.cmd::$DATA`) gives "", so that such a name
    is never taken for a program or a batch file.
    """
    tail = _split_last(windows_name(path))[2]
    if ":" in tail:
        return ""
    dot = tail.rfind(".")
    return tail[dot:].lower() if dot > 0 else ""


def parse_pathext(pathext: str) -> list[str]:
    """PATHEXT as a list of lower-case extensions in order, without duplicates; the default when empty."""
    out: list[str] = []
    for part in pathext.split(";"):
        ext = part.strip().lower()
        if ext.startswith(".") and len(ext) > 1 and ext not in out:
            out.append(ext)
    return out or parse_pathext(DEFAULT_PATHEXT)


def which(name: str, path: str, pathext: str, skip: Callable[[str], bool], *, sep: str = ";") -> str | None:
    """The file Windows would start for `name`, searching `path` (entries split on `sep`) with `pathext`:
    the first of `matches` unless `skip(candidate)` is true (our own shim), in which case the search goes on.
    Returns the path as found on disk, or None.
    """
    return next((found for found in matches(name, path, pathext, sep=sep) if not skip(found)), None)


def matches(name: str, path: str, pathext: str, *, sep: str = ";") -> Iterator[str]:
    """Every file Windows could start for `name`, in the order it tries them: for each PATH entry in order,
    `name` itself when it already ends in a PATHEXT extension, then `name` + each PATHEXT extension in order.
    A `name` with a folder part is looked up there only. Paths are as found on disk."""
    name = windows_name(name)
    exts = parse_pathext(pathext)
    bare = name.replace("/", "\\").rsplit("\\", 1)[-1]
    if not bare or ":" in bare or bare in (".", ".."):
        return
    candidates = ([bare.lower()] if extension(bare) in exts else []) + [bare.lower() + ext for ext in exts]
    if bare != name:
        folders = [name[: len(name) - len(bare)]]
    else:
        folders = [entry for entry in (_unquote(part) for part in path.split(sep)) if entry]
    for folder in folders:
        if not os.path.isabs(folder):
            continue
        found = _listing(folder)
        for candidate in candidates:
            actual = found.get(candidate)
            if actual is not None:
                yield actual


def find_file(folder: str, name: str) -> str | None:
    """The regular file in `folder` that Windows would open for `name` (case-insensitive), or None."""
    return _listing(folder).get(windows_name(name).lower())


def _listing(folder: str) -> dict[str, str]:
    """Regular files in `folder` by lower-case Windows name (first one wins), as full paths."""
    files: dict[str, str] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if not entry.is_file():
                        continue
                except OSError:
                    continue
                files.setdefault(windows_name(entry.name).lower(), os.path.join(folder, entry.name))
    except OSError:
        # A PATH entry that is missing, not a folder, or unreadable is skipped, as Windows does.
        return {}
    return files


def _unquote(entry: str) -> str:
    # cmd.exe accepts PATH entries wrapped in quotes (needed for a `;` inside a folder name).
    entry = entry.strip()
    if len(entry) >= 2 and entry[0] == '"' and entry[-1] == '"':
        return entry[1:-1]
    return entry


def _split_last(path: str) -> tuple[str, str, str]:
    cut = max(path.rfind("\\"), path.rfind("/"))
    if cut < 0:
        return "", "", path
    return path[:cut], path[cut], path[cut + 1 :]
