"""What to hand CreateProcess to start the real claude on Windows: an application path and a command line.

- `.exe` / `.com`: started directly, with C-runtime quoting.
- `.cmd` / `.bat` written by npm's cmd-shim: read, and its target (claude.exe, or node.exe and the script)
  started directly, so cmd.exe never sees the arguments.
- Any other batch file: refused by default (on_unknown_batch="refuse", the config key `unknown_batch`); with
  "escape", run through `cmd.exe /e:ON /v:OFF /d /c` with Rust's escaping (see win.cmdline for what that
  does and does not cover).

A name ending in dots or spaces is judged by what Windows would open: `claude.cmd. ` is a batch file.
"""

from __future__ import annotations

import sys

from claude_guard.errors import ExitCode, GuardError
from claude_guard.win.cmdline import build_batch_command_line, build_command_line, cmd_exe_path
from claude_guard.win.cmdshim import parse_cmd_shim
from claude_guard.win.pathext import BATCH_EXTENSIONS, PROGRAM_EXTENSIONS, extension, windows_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ON_UNKNOWN_BATCH = ("refuse", "escape")


def plan(
    real_path: str,
    args: list[str],
    *,
    environ: Mapping[str, str],
    on_unknown_batch: str = "refuse",
    pathsep: str = ";",
) -> tuple[str, str]:
    """(application, command line) that start `real_path` with `args` (claude's arguments, without argv[0]).

    `environ` gives PATH and PATHEXT (to find node for a node-script shim) and SystemRoot (for cmd.exe off
    Windows, where the tests run); `pathsep` splits PATH. Raises GuardError: exit 75 for an argument or file
    that cannot be passed or started safely, exit 78 for an unknown on_unknown_batch value.
    """
    if on_unknown_batch not in ON_UNKNOWN_BATCH:
        raise GuardError(
            f"on_unknown_batch must be one of {', '.join(ON_UNKNOWN_BATCH)}, not {on_unknown_batch!r}",
            ExitCode.CONFIG,
        )
    for index, arg in enumerate(args, start=1):
        # Checked here so the message counts arguments as the user wrote them, whatever a shim puts first.
        if "\0" in arg:
            raise GuardError(
                f"argument {index} contains a NUL character, which no Windows program can receive; remove it",
                ExitCode.REFUSED,
            )
    program = windows_name(real_path)
    kind = extension(real_path)
    if kind in PROGRAM_EXTENSIONS:
        return program, build_command_line([program, *args])
    if kind not in BATCH_EXTENSIONS:
        raise GuardError(
            f"cannot start {real_path}: Windows starts only .exe and .com programs, and claude-guard reads"
            " npm's claude.cmd; point claude-guard at claude.exe or claude.cmd",
            ExitCode.REFUSED,
        )
    target = parse_cmd_shim(real_path, environ=environ, pathsep=pathsep)
    if target is not None:
        return target.program, build_command_line([target.program, *target.args, *args])
    if on_unknown_batch == "escape":
        root = system_root(environ)
        return cmd_exe_path(root), build_batch_command_line(program, args, root)
    raise GuardError(
        f"refusing to run {real_path} through cmd.exe: it is not an npm cmd-shim claude-guard can read (or its"
        " target is missing), and cmd.exe would re-parse every argument; install claude.exe (the native"
        ' installer), reinstall with npm, or set unknown_batch = "escape" in the config to allow escaped'
        " batch launches",
        ExitCode.REFUSED,
    )


def system_root(environ: Mapping[str, str]) -> str:
    """The Windows folder: from Windows itself when running there, else SystemRoot (default C:\\Windows)."""
    if sys.platform == "win32":
        import ctypes  # only on this rare path

        buffer = ctypes.create_unicode_buffer(260)
        length = ctypes.windll.kernel32.GetSystemWindowsDirectoryW(buffer, len(buffer))
        if 0 < length < len(buffer):
            return buffer.value
    for key, value in environ.items():
        if key.upper() == "SYSTEMROOT" and value:
            return value
    return "C:\\Windows"
