"""Finding the real `claude`, never our own shim.

The shim is installed as `claude` ahead of the real one on PATH, so a plain PATH lookup would find
itself and recurse. Candidates are skipped when they are the running shim (same file) or carry the shim
marker, which covers two shim folders on PATH and a shim reached through a symlink.
"""

from __future__ import annotations

import os
import sys

from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

WINDOWS = sys.platform == "win32"

# Written into every shim by `claude-guard install`; how the tool tells its own file from a foreign one.
MARKER = b"claude-guard-shim-id: 6f1e0c2a-8d3b-4c55-9a70-claude-guard"

# Where `claude-guard install` moves a foreign `claude` it replaces; found here in the shim's own folder.
BACKUP_SUFFIX = ".pre-claude-guard"

_shim_cache: dict[str, bool] = {}


def forget(path: str) -> None:
    """Drop a cached verdict (after install or uninstall rewrote the file)."""
    _shim_cache.pop(path, None)
    _shim_cache.pop(os.path.realpath(path), None)


def is_shim(path: str) -> bool:
    """True when `path` is a claude-guard shim (by its marker), following symlinks."""
    cached = _shim_cache.get(path)
    if cached is not None:
        return cached
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    cached = _shim_cache.get(real)
    if cached is not None:
        return cached
    try:
        with open(real, "rb") as f:
            head = f.read(4096)
        found = MARKER in head
        if not found and head[:2] == b"MZ":  # Windows launcher .exe: the script is zipped at its end
            with open(real, "rb") as f:
                f.seek(max(0, os.path.getsize(real) - 65536))
                tail = f.read()
            found = MARKER in tail or b"claude_guard.shim" in tail
    except (OSError, ValueError):
        found = False
    _shim_cache[real] = _shim_cache[path] = found
    return found


def _same(a: str, b: str | None) -> bool:
    if not b:
        return False
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def find_real_claude(explicit: str, path_env: str | None, self_path: str | None, *, windows: bool = WINDOWS,
                     pathext: str | None = None, sep: str = os.pathsep) -> str:
    """The real claude: `explicit` (config real_claude / CLAUDE_GUARD_REAL_CLAUDE), else the first
    executable `claude` on PATH that is not a shim of ours. Raises GuardError(127) when there is none.

    With Windows semantics PATH is searched as Windows does (`on_path`); `pathext` defaults to $PATHEXT."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise GuardError(f"real_claude {explicit} is not an executable file; fix real_claude / "
                             "CLAUDE_GUARD_REAL_CLAUDE, or unset it to search PATH", ExitCode.NOT_FOUND)
        if _same(explicit, self_path) or is_shim(explicit):
            raise GuardError(f"real_claude {explicit} is a claude-guard shim, not Claude Code; point it at the "
                             "real claude", ExitCode.NOT_FOUND)
        return explicit
    searched = 0
    for candidate in on_path(path_env, windows=windows, pathext=pathext, sep=sep):
        searched += 1
        if _same(candidate, self_path) or is_shim(candidate):
            # The claude that stood here before install is the one this PATH position meant.
            backup = candidate + BACKUP_SUFFIX
            if os.path.isfile(backup) and os.access(backup, os.X_OK) and not is_shim(backup):
                return backup
            continue
        return candidate
    shims = f" ({searched} claude-guard shim(s) skipped)" if searched else ""
    raise GuardError(f"the real claude was not found on PATH{shims}; install Claude Code "
                     "(npm install -g @anthropic-ai/claude-code) or set CLAUDE_GUARD_REAL_CLAUDE=/path/to/claude",
                     ExitCode.NOT_FOUND)


def on_path(path_env: str | None, *, windows: bool = WINDOWS, pathext: str | None = None,
            sep: str = os.pathsep) -> Iterator[str]:
    """Every executable `claude` on PATH, in PATH order: the one PATH walk (doctor asks for the first).

    Windows: `claude` + each PATHEXT extension in each folder (claude.exe, claude.cmd, ...), never the
    extensionless sh script npm also writes there, nor the current folder or relative entries."""
    if windows:
        from .win import pathext as winpath

        pathext = os.environ.get("PATHEXT", "") if pathext is None else pathext
        yield from winpath.matches("claude", path_env or "", pathext, sep=sep)
        return
    for folder in (path_env or os.defpath).split(sep):
        candidate = os.path.join(folder or ".", "claude")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            yield candidate


def first_on_path(path_env: str | None, pathext: str = "") -> str | None:
    """The claude a shell would start, shim or not; Windows finds claude.exe, claude.cmd, ... with PATHEXT,
    as the console does."""
    return next(on_path(path_env, pathext=pathext), None)
