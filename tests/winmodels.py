"""Reference models of how Windows programs read a command line, written from the published rules.

They are independent of claude_guard.win (nothing is imported from it) so that the property tests compare the
builders against the rules, not against themselves.

- parse_argv_post2008: the C runtime of Visual C++ 2008 and later (ucrt's parse_command_line).
- parse_argv_pre2008: msvcrt.dll (Visual C++ 6 stdargv.c); CommandLineToArgvW reads `""` the same way.
  The two differ only in `""` inside a quoted stretch: both give a literal `"`, but the older rule also ends the
  quoted stretch, the newer stays inside it.
- cmd_c: what cmd.exe does with the text after `/c` (quote stripping from `cmd /?`, then the percent phase and
  the special-character phase in command-line mode as described by jeb and dbenham's analysis of cmd.exe's
  parser), reporting every variable expanded and every operator left outside quotes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

_SPACE = " \t"


def _parse_program_post2008(line: str) -> tuple[str, int]:
    # argv[0]: quotes toggle, backslashes are plain, ends at a space or tab outside quotes.
    out: list[str] = []
    in_quotes = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == '"':
            in_quotes = not in_quotes
        elif c in _SPACE and not in_quotes:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out), i


def _parse_program_pre2008(line: str) -> tuple[str, int]:
    # argv[0]: if it starts with a quote, everything up to the next quote; else up to a character <= space.
    if line.startswith('"'):
        end = line.find('"', 1)
        if end < 0:
            return line[1:], len(line)
        return line[1:end], end + 1
    i = 0
    while i < len(line) and line[i] > " ":
        i += 1
    return line[:i], i


def _parse_args(line: str, i: int, *, double_quote_ends: bool) -> list[str]:
    args: list[str] = []
    in_quotes = False
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        out: list[str] = []
        while True:
            backslashes = 0
            while i < n and line[i] == "\\":
                backslashes += 1
                i += 1
            copy = True
            if i < n and line[i] == '"':
                if backslashes % 2 == 0:
                    # 2N backslashes + quote: N backslashes and a quote that opens or closes.
                    if in_quotes and i + 1 < n and line[i + 1] == '"':
                        i += 1  # `""` inside quotes: a literal quote
                        if double_quote_ends:
                            in_quotes = False
                    else:
                        copy = False
                        in_quotes = not in_quotes
                backslashes //= 2
            out.append("\\" * backslashes)
            if i >= n or (not in_quotes and line[i] in _SPACE):
                break
            if copy:
                out.append(line[i])
            i += 1
        args.append("".join(out))


def parse_argv_post2008(line: str) -> list[str]:
    """argv as the post-2008 C runtime (ucrt) builds it from `line`."""
    program, i = _parse_program_post2008(line)
    return [program, *_parse_args(line, i, double_quote_ends=False)]


def parse_argv_pre2008(line: str) -> list[str]:
    """argv as msvcrt.dll / CommandLineToArgvW build it from `line` (the older `""` rule)."""
    program, i = _parse_program_pre2008(line)
    return [program, *_parse_args(line, i, double_quote_ends=True)]


class HostileEnvironment(Mapping[str, str]):
    """Every non-empty variable name is defined, with a value full of operators and quotes."""

    def __getitem__(self, key: str) -> str:
        if not key:
            raise KeyError(key)
        return f'"&calc.exe&"<{key}>|'

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# Dynamic variables cmd.exe makes up when no environment variable has the name.
DYNAMIC = {"CD": "C:\\Users\\model", "ERRORLEVEL": "0", "CMDEXTVERSION": "2", "RANDOM": "4242"}


@dataclass
class CmdOutcome:
    text: str  # the command after quote stripping, percent expansion and caret removal
    expanded: list[tuple[str, str]] = field(default_factory=list)  # (variable expression, what it gave)
    operators: list[tuple[int, str]] = field(default_factory=list)  # `& | < >` outside quotes
    specials: list[tuple[int, str]] = field(default_factory=list)  # `( ) ^` outside quotes, LF anywhere


def _lookup(env: Mapping[str, str], name: str) -> str | None:
    if not name:
        return None
    if name in env and not isinstance(env, dict):
        return env[name]
    for key, value in env.items():
        if key.upper() == name.upper():
            return value
    return DYNAMIC.get(name.upper())


def _substring(value: str, spec: str) -> str | None:
    # `~[start][,[length]]`; empty numbers are 0, negatives count from the end.
    body = spec[1:]
    start_text, comma, length_text = body.partition(",")
    try:
        start = int(start_text) if start_text.strip() else 0
        length = int(length_text) if length_text.strip() else 0
    except ValueError:
        return None
    if start < 0:
        start = max(0, len(value) + start)
    rest = value[start:]
    if not comma:
        return rest
    if length < 0:
        return rest[: max(0, len(rest) + length)]
    return rest[:length]


def expand_percent(text: str, env: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """cmd.exe's percent phase in command-line mode (not a batch file), command extensions on.

    Undefined variables stay as written, `%%` is not an escape, and the result is not scanned again.
    """
    out: list[str] = []
    expanded: list[tuple[str, str]] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] != "%":
            out.append(text[i])
            i += 1
            continue
        j = i + 1
        while j < n and text[j] not in "%:\n":
            j += 1
        name = text[i + 1 : j]
        if j < n and text[j] == ":" and j + 1 < n and text[j + 1] == "%":
            name += ":"
            j += 1
        if j >= n or text[j] == "\n":
            out.append("%")
            i += 1
            continue
        if text[j] == "%":
            value = _lookup(env, name)
            if value is None:
                out.append("%" + name)  # kept; the closing % may start the next variable
                i = j
            else:
                out.append(value)
                expanded.append(("%" + name + "%", value))
                i = j + 1
            continue
        # text[j] == ":": a substring or a substitution
        value = _lookup(env, name)
        close = text.find("%", j + 1)
        if value is None or close < 0:
            out.append("%" + name + ":")
            i = j + 1
            continue
        spec = text[j + 1 : close]
        result: str | None
        if spec.startswith("~"):
            result = _substring(value, spec)
        elif "=" in spec:
            search, _, replace = spec.partition("=")
            result = _substitute(value, search, replace)
        else:
            result = None
        if result is None:
            out.append("%" + name + ":")
            i = j + 1
            continue
        out.append(result)
        expanded.append(("%" + name + ":" + spec + "%", result))
        i = close + 1
    return "".join(out), expanded


def _substitute(value: str, search: str, replace: str) -> str | None:
    star = search.startswith("*")
    if star:
        search = search[1:]
    if not search:
        return None
    lower = value.lower()
    at = lower.find(search.lower())
    if at < 0:
        return value
    if star:
        return replace + value[at + len(search) :]
    pieces: list[str] = []
    start = 0
    while at >= 0:
        pieces.append(value[start:at] + replace)
        start = at + len(search)
        at = lower.find(search.lower(), start)
    return "".join(pieces) + value[start:]


def strip_c_quotes(command: str) -> str:
    """`cmd /c` quote handling (`cmd /?`): unless exactly two quotes (the case that keeps them), a leading
    quote and the last quote on the line are removed, text after the last quote kept."""
    command = command.lstrip(" \t")
    if command.count('"') == 2:
        return command
    if command.startswith('"'):
        last = command.rfind('"')
        if last > 0:
            return command[1:last] + command[last + 1 :]
        return command[1:]
    return command


def special_phase(text: str) -> CmdOutcome:
    """cmd.exe's special-character phase: quotes toggle, carets escape outside quotes only."""
    outcome = CmdOutcome(text="")
    out: list[str] = []
    in_quotes = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            outcome.specials.append((i, c))
        elif c == '"':
            in_quotes = not in_quotes
        elif not in_quotes and c == "^":
            outcome.specials.append((i, c))
            if i + 1 < len(text):
                i += 1
                out.append(text[i])
            i += 1
            continue
        elif not in_quotes and c in "&|<>":
            outcome.operators.append((i, c))
        elif not in_quotes and c in "()":
            outcome.specials.append((i, c))
        out.append(c)
        i += 1
    outcome.text = "".join(out)
    return outcome


def cmd_c(command: str, env: Mapping[str, str]) -> CmdOutcome:
    """cmd.exe's processing of the text after `/c`: quotes, percent expansion, then special characters."""
    expanded_text, expanded = expand_percent(strip_c_quotes(command), env)
    outcome = special_phase(expanded_text)
    outcome.expanded = expanded
    return outcome


def after_slash_c(line: str) -> str:
    """The part of a full cmd.exe command line that `/c` runs."""
    at = line.lower().find(" /c ")
    assert at >= 0, line
    return line[at + 4 :]
