"""Reading the `.cmd` files npm's cmd-shim writes, to start their target without cmd.exe.

npm installs Claude Code on Windows as `claude.cmd`, a small batch file of a fixed shape. Starting it means
cmd.exe, which re-parses every argument (BatBadBut). Instead the file is read, matched line by line against
the shapes cmd-shim has written (versions 2, 3.0.3 to 4.0, 4.1 to 8, and 9; native and node-script targets), `%dp0%` /
`%~dp0` is replaced by the shim's folder, and the target is started directly. Anything else (an edited
shim, extra lines, environment assignments from a `#!/usr/bin/env -S VAR=x node` line, a `%` in the target)
gives None, and the caller falls back or refuses.

A node-script shim runs `node.exe` beside the shim if there is one, else `node` from PATH with `.JS` taken
out of PATHEXT, as the shim does. Unlike cmd.exe the current folder is not searched (see pathext).
"""

from __future__ import annotations

import os

from claude_guard.win.pathext import DEFAULT_PATHEXT, PROGRAM_EXTENSIONS, extension, find_file, parse_pathext, which

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_SHIM_BYTES = 64 * 1024  # a real shim is under 1 KiB; anything this big is not one

# cmd-shim's shapes, one line an entry, CRLF-joined. {T}: the target relative to the shim, with backslashes;
# {A}: arguments from the script's #! line (trimmed, often empty).
_HEAD_4 = ["@ECHO off", "GOTO start", ":find_dp0", "SET dp0=%~dp0", "EXIT /b", ":start", "SETLOCAL", "CALL :find_dp0"]
_HEAD_3 = ["@ECHO off", "SETLOCAL", "CALL :find_dp0"]
_FOOT_3 = ["ENDLOCAL", "EXIT /b %errorlevel%", ":find_dp0", "SET dp0=%~dp0", "EXIT /b"]
_IF_NODE = ['IF EXIST "%dp0%\\node.exe" (', '  SET "_prog=%dp0%\\node.exe"', ") ELSE (", '  SET "_prog=node"']
_PATHEXT = "SET PATHEXT=%PATHEXT:;.JS;=;%"
_END_LOCAL = "endLocal & goto #_undefined_# 2>NUL || title %COMSPEC% & "
_RUN_NODE = '"%_prog%" {A} "%dp0%\\{T}" %*'
_RUN_NATIVE = '"%dp0%\\{T}"   %*'

_LAYOUTS: list[tuple[str, str, list[str]]] = [
    ("cmd-shim 4.1-9", "native", [*_HEAD_4, _RUN_NATIVE]),
    (
        "cmd-shim 9",
        "node",
        [*_HEAD_4, "", *_IF_NODE, ")", "", _END_LOCAL + "set PATHEXT=%PATHEXT:;.JS;=;% & " + _RUN_NODE],
    ),
    ("cmd-shim 4.1-8", "node", [*_HEAD_4, "", *_IF_NODE, "  " + _PATHEXT, ")", "", _END_LOCAL + _RUN_NODE]),
    ("cmd-shim 3.0.3-4.0", "native", [*_HEAD_3, _RUN_NATIVE, *_FOOT_3]),
    ("cmd-shim 3.0.3-4.0", "node", [*_HEAD_3, "", *_IF_NODE, "  " + _PATHEXT, ")", "", _RUN_NODE, *_FOOT_3]),
    ("cmd-shim 2", "native", ['@"%~dp0\\{T}"   %*']),
    (
        "cmd-shim 2",
        "node",
        [
            "@SETLOCAL",
            "",
            '@IF EXIST "%~dp0\\node.exe" (',
            '  @SET "_prog=%~dp0\\node.exe"',
            ") ELSE (",
            '  @SET "_prog=node"',
            "  @" + _PATHEXT,
            ")",
            "",
            '"%_prog%" {A} "%~dp0\\{T}" %*',
            "@ENDLOCAL",
        ],
    ),
]
# Not taken: cmd-shim 1 (no SETLOCAL around PATHEXT, last line without CRLF) and 3.0.0 (`CALL find_dp0`,
# which never worked); no npm that can install Claude Code wrote them.

# A target may not hold `"` (it would end the quoted path), `%` (cmd.exe would expand it) or control characters.
_NOT_IN_FIELD = frozenset('"%' + "".join(map(chr, range(32))))
# #! arguments are taken only when each is a plain token that cmd.exe and the C runtime leave unchanged.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=.,:/+@-")
# Characters no Windows file name holds (`:` also keeps out drive letters and NTFS streams).
_NOT_IN_NAME = frozenset('<>:"/|?*' + "".join(map(chr, range(32))))


class Target:
    """What a shim runs: `program` (an existing .exe or .com) with `args` before the caller's arguments."""

    __slots__ = ("args", "layout", "program")

    def __init__(self, program: str, args: tuple[str, ...], layout: str) -> None:
        self.program = program
        self.args = args
        self.layout = layout  # e.g. "cmd-shim 9 node", for messages and tests

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and (self.program, self.args, self.layout) == (
            other.program,
            other.args,
            other.layout,
        )

    def __hash__(self) -> int:
        return hash((self.program, self.args, self.layout))

    def __repr__(self) -> str:
        return f"Target({self.program!r}, {self.args!r}, {self.layout!r})"


def _match(text: str, template: list[str]) -> dict[str, str] | None:
    """The {T} and {A} fields if `text` is exactly `template` (CRLF after every line), else None.

    Plain string comparison, not regular expressions: `re` would cost the launch a few milliseconds to import.
    """
    lines = text.split("\r\n")
    if len(lines) != len(template) + 1 or lines[-1] != "":
        return None
    fields: dict[str, str] = {}
    for line, pattern in zip(lines[:-1], template, strict=True):
        if "{" not in pattern:
            if line != pattern:
                return None
            continue
        found = _match_line(line, pattern)
        if found is None:
            return None
        fields.update(found)
    return fields


def _match_line(line: str, pattern: str) -> dict[str, str] | None:
    # Patterns are `P0 {T} P2` or `P0 {A} P1 {T} P2`; fields may not hold `"`, so P1 (which starts with a
    # quote) is found unambiguously at the first quote after P0.
    head, _, rest = pattern.partition("{")
    tail = pattern[pattern.rindex("}") + 1 :]
    if not (line.startswith(head) and line.endswith(tail)) or len(line) < len(head) + len(tail):
        return None
    middle = line[len(head) : len(line) - len(tail)]
    fields: dict[str, str] = {}
    if rest.startswith("A}"):
        between = rest[2 : rest.index("{")]
        args, sep, middle = middle.partition(between)
        if not sep:
            return None
        fields["args"] = args
    fields["target"] = middle
    if not fields["target"] or any(c in _NOT_IN_FIELD for value in fields.values() for c in value):
        return None
    return fields


def parse_cmd_shim(path: str, *, environ: Mapping[str, str] | None = None, pathsep: str = ";") -> Target | None:
    """The program and fixed arguments the cmd-shim file `path` would run, or None if it is not one.

    `environ` (default os.environ) gives PATH and PATHEXT for finding `node` when there is no node.exe
    beside the shim; `pathsep` splits PATH. The target must exist.
    """
    text = _read_small(path)
    if text is None:
        return None
    found = _identify(text)
    if found is None:
        return None
    layout, kind, fields = found
    folder = os.path.dirname(os.path.abspath(path))
    target = _resolve(folder, fields["target"])
    if target is None or not os.path.isfile(target):
        return None
    if kind == "native":
        if extension(target) not in PROGRAM_EXTENSIONS:
            # Any other file would be opened by its association, through the shell.
            return None
        return Target(target, (), layout)
    node_args = fields["args"].split()
    if not all(arg and set(arg) <= _PLAIN for arg in node_args):
        return None
    node = _find_node(folder, os.environ if environ is None else environ, pathsep)
    if node is None:
        return None
    return Target(node, (*node_args, target), layout)


def _identify(text: str) -> tuple[str, str, dict[str, str]] | None:
    """(layout name, "native" or "node", fields) of the first layout `text` is exactly, or None."""
    for version, kind, template in _LAYOUTS:
        fields = _match(text, template)
        if fields is not None:
            return f"{version} {kind}", kind, fields
    return None


def _read_small(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SHIM_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_SHIM_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _resolve(folder: str, relative: str) -> str | None:
    """`folder` joined with cmd-shim's backslash-separated relative path, or None for a doubtful part."""
    parts = relative.split("\\")
    for part in parts:
        if part in (".", ".."):
            continue
        # Empty parts, drive letters, streams, wildcards, and names Win32 would trim are not cmd-shim's.
        if not part or any(c in _NOT_IN_NAME for c in part) or part[-1] in ". ":
            return None
    return os.path.normpath(os.path.join(folder, *parts))


def _find_node(folder: str, environ: Mapping[str, str], pathsep: str) -> str | None:
    beside = find_file(folder, "node.exe")
    if beside is not None:
        return beside
    # The shim takes .JS out of PATHEXT so that `node` cannot resolve to a node.js file run by WSH.
    exts = [ext for ext in parse_pathext(_getenv(environ, "PATHEXT") or DEFAULT_PATHEXT) if ext != ".js"]
    found = which("node", _getenv(environ, "PATH") or "", ";".join(exts), lambda _: False, sep=pathsep)
    if found is None or extension(found) not in PROGRAM_EXTENSIONS:
        # A node.cmd (some version managers) would need cmd.exe again.
        return None
    return found


def _getenv(environ: Mapping[str, str], name: str) -> str | None:
    """Look `name` up as Windows does, without regard to case (a copied environ is a plain dict)."""
    if name in environ:
        return environ[name]
    upper = name.upper()
    for key, value in environ.items():
        if key.upper() == upper:
            return value
    return None
