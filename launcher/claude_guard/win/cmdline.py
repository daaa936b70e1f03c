"""Command lines for CreateProcess: C-runtime quoting for programs, and cmd.exe's line for batch files.

Windows passes a program one string, and the program's C runtime splits it into argv. Two rules are in use:
the post-2008 one (ucrt, msvcr90 and later) and the older one (msvcrt.dll, CommandLineToArgvW), which differ
only in what `""` inside a quoted argument means. `build_command_line` never writes `""` inside a quoted
argument (a quote is always `\\"`), so both rules give back the same argv.

A batch file cannot be started without cmd.exe, which parses the whole line again (`&`, `|`, `<`, `>`,
`%VAR%`). `build_batch_command_line` follows Rust's std::process rules (the fix for CVE-2024-24576), the
strictest published: every argument that is not plainly safe is quoted, `"` is doubled, and each `%` becomes
`%%cd:~,%`, which cmd.exe reads as a `%` followed by an empty substring of %CD%, so no `%VAR%` can form.
Its arguments round-trip only for a program that uses the post-2008 rule: to cmd.exe a `\\"` would end the
quoted stretch, so a quote inside an argument has to be `""` there, which the older rule reads differently.
"""

from __future__ import annotations

from claude_guard.errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# CreateProcess takes at most 32,767 UTF-16 units counting the terminating NUL.
MAX_COMMAND_LINE = 32_766
# cmd.exe rejects a command string longer than this (counted here over the whole line, to be safe).
MAX_BATCH_COMMAND_LINE = 8_191

# The C runtime splits arguments at space and tab only; newline and vertical tab are quoted as well because
# other parsers (and humans reading a log) treat them as separators.
_DIRECT_SPECIAL = frozenset(' \t\n\v"')
_DIRECT_QUOTE = frozenset(" \t\n\v")
# Rust's list of ASCII characters that cmd.exe leaves alone outside quotes; every other ASCII character
# forces quotes.
_BATCH_UNQUOTED = frozenset("#$*+-./:?@\\_")
_PERCENT_BREAK = "%%cd:~,"  # written before each `%`: with /e:ON `%cd:~,%` expands to nothing


def utf16_length(text: str) -> int:
    """Length as Windows counts it: UTF-16 units, so a character outside the BMP counts twice."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def quote_arg(arg: str) -> str:
    """Quote one argument (not the program) for the C runtime's argv rules, post-2008 and older alike.

    Quotes only when needed (empty, or a space, tab, newline or vertical tab inside); a `"` becomes `\\"`
    with the backslashes before it doubled, and backslashes before the closing quote are doubled.
    """
    if "\0" in arg:
        raise GuardError(
            "an argument contains a NUL character, which no Windows program can receive; remove it",
            ExitCode.REFUSED,
        )
    if arg and not any(c in _DIRECT_SPECIAL for c in arg):
        return arg
    quoted = not arg or any(c in _DIRECT_QUOTE for c in arg)
    out: list[str] = []
    backslashes = 0
    for c in arg:
        if c == "\\":
            backslashes += 1
            continue
        if c == '"':
            # 2N+1 backslashes before a quote give N backslashes and a literal quote.
            out.append("\\" * (2 * backslashes + 1))
        else:
            out.append("\\" * backslashes)
        out.append(c)
        backslashes = 0
    if quoted:
        # Backslashes before the closing quote must be doubled or they would escape it.
        out.append("\\" * (2 * backslashes))
        return '"' + "".join(out) + '"'
    out.append("\\" * backslashes)
    return "".join(out)


def quote_program(program: str) -> str:
    """Quote argv[0]. The runtimes read it by a simpler rule: up to the next quote, backslashes literal.

    Always quoted, so a path with spaces stays whole; a `"` cannot be written at all, and no Windows file
    name contains one.
    """
    if '"' in program or "\0" in program:
        raise GuardError(
            f"argv[0] {program!r} contains a quote or NUL character, which cannot be passed as a program name;"
            " use the program's real path",
            ExitCode.REFUSED,
        )
    return f'"{program}"'


def build_command_line(args: Sequence[str]) -> str:
    """The CreateProcess command line for `args` (args[0] is the program), with C-runtime quoting.

    Raises GuardError (exit 75) for a NUL in any argument or a line over 32,766 UTF-16 units.
    """
    if not args:
        raise GuardError("no program to start: the argument list is empty", ExitCode.INTERNAL)
    for index, arg in enumerate(args):
        if "\0" in arg:
            raise GuardError(
                f"argv[{index}] contains a NUL character, which no Windows program can receive; remove it",
                ExitCode.REFUSED,
            )
    line = " ".join([quote_program(args[0]), *(quote_arg(arg) for arg in args[1:])])
    _check_length(line, MAX_COMMAND_LINE, "Windows' limit for a command line")
    return line


def quote_batch_arg(arg: str) -> str:
    """Quote one argument for a batch file started through cmd.exe (Rust's append_bat_arg).

    The caller must already have refused CR, LF and NUL (build_batch_command_line does).
    """
    quote = not arg or arg.endswith("\\")
    for c in arg:
        if (c.isascii() and not (c.isalnum() or c in _BATCH_UNQUOTED)) or "\x80" <= c <= "\x9f":
            # Every ASCII symbol may mean something to cmd.exe; C1 controls are quoted for good measure.
            quote = True
            break
    out: list[str] = ['"'] if quote else []
    backslashes = 0
    for c in arg:
        if c == "\\":
            backslashes += 1
        else:
            if c == '"':
                # N backslashes become 2N before a quote, so the program's C runtime reads them as N; the
                # quote itself is doubled, which keeps cmd.exe's quote state in step with ours.
                out.append("\\" * backslashes)
                out.append('"')
            elif c == "%":
                out.append(_PERCENT_BREAK)
            backslashes = 0
        out.append(c)
    if quote:
        out.append("\\" * backslashes)
        out.append('"')
    return "".join(out)


def cmd_exe_path(system_root: str) -> str:
    """cmd.exe in System32 of `system_root` (the Windows folder), never %COMSPEC%, which anyone can set."""
    if not system_root or any(c in system_root for c in '"%\0\r\n'):
        raise GuardError(f"the Windows folder {system_root!r} is not a usable path; check SystemRoot", ExitCode.REFUSED)
    return system_root.rstrip("\\/") + "\\System32\\cmd.exe"


def build_batch_command_line(script: str, args: Sequence[str], system_root: str) -> str:
    """The command line that runs batch file `script` with `args` through cmd.exe (Rust's rules).

    The result is `"<root>\\System32\\cmd.exe" /e:ON /v:OFF /d /c ""<script>" <args>"`, to be started with
    cmd_exe_path(system_root) as the application. /e:ON is needed by the `%%cd:~,%` break, /v:OFF keeps
    `!` literal, /d skips AutoRun commands from the registry. Raises GuardError (exit 75) for a script path
    with `"`, `%`, CR, LF or NUL or ending in `\\`, an argument with CR, LF or NUL (cmd.exe would end the
    command there), or a line over 8,191 characters.
    """
    if any(c in script for c in '"%\0\r\n') or script.endswith("\\") or not script:
        # A `%` in the path would pair with the next `%` on the line and expand whatever lies between.
        raise GuardError(
            f"refusing to run {script!r} through cmd.exe: the path contains a quote, %, or line break, or ends"
            " in a backslash; move the batch file to a plain path",
            ExitCode.REFUSED,
        )
    for index, arg in enumerate(args, start=1):
        for c, name in (("\0", "a NUL character"), ("\r", "a carriage return"), ("\n", "a line feed")):
            if c in arg:
                raise GuardError(
                    f"argv[{index}] contains {name}, which cannot be passed safely to a batch file (cmd.exe"
                    " would end the command there); remove it, or install claude.exe instead of claude.cmd",
                    ExitCode.REFUSED,
                )
    inner = " ".join([f'"{script}"', *(quote_batch_arg(arg) for arg in args)])
    line = f'"{cmd_exe_path(system_root)}" /e:ON /v:OFF /d /c "{inner}"'
    _check_length(line, MAX_BATCH_COMMAND_LINE, "cmd.exe's limit for a command line")
    return line


def _check_length(line: str, limit: int, what: str) -> None:
    length = utf16_length(line)
    if length > limit:
        raise GuardError(
            f"the command line is {length} characters, over {what} of {limit}; pass long text through a file"
            " or stdin instead of an argument",
            ExitCode.REFUSED,
        )
