"""`claude-guard`: argparse wiring and the one place where errors become exit codes.

Each command lives in `commands/<verb>.py` as a pair (pipx style): `add_parser(subparsers)` declares its
options and sets `func`, and `run(args) -> int` does the work. Command modules import their heavy
dependencies inside `run`, so `claude-guard exec` (an SDK host's spawn path) never loads the sweep code.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import ExitCode, GuardError
from .output import message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

COMMANDS = ("install", "uninstall", "config", "exec", "ps", "reap", "kill", "doctor", "metrics")


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized without `shutil`: HelpFormatter imports it for the terminal width, and every
    add_argument makes a formatter, so each `claude-guard` command paid for that import (several ms: `ps` is
    measured against procps `ps`). The width is found as shutil.get_terminal_size finds it."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _columns() - 2  # what HelpFormatter itself takes off
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # the top-level parser's: each command's parser

    def error(self, message: str) -> None:  # type: ignore[override]
        # One usage line and one error line, exit 2, as argparse does, but never a traceback (and nothing
        # at all when stderr was closed: print_usage(None) would write to stdout instead).
        if sys.stderr is not None:
            self.print_usage(sys.stderr)
            sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(ExitCode.USAGE)


def build_parser(only: str | None = None) -> _Parser:
    """The whole parser; with `only` (a command name), the parser of that command alone: a command's run needs
    nothing of the others, and building all of them costs each command more than its own work on a quiet
    machine (`claude-guard ps` is measured against procps `ps`). Help and errors of that command read the same."""
    import importlib

    parser = _Parser(prog="claude-guard", description="Guard Claude Code launches and reap leaked sessions.")
    parser.add_argument("--version", action="version", version=f"claude-guard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f".commands.{name}", __package__)
        module.add_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


def _unrecognized(extra: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" with a did-you-mean for a mistyped option (`--dryrun`), as the config
    says it for a mistyped key."""
    from .config import closest

    options = [o for action in parser._actions for o in action.option_strings]
    hints = []
    for word in extra:
        name = word.split("=", 1)[0]
        close = closest(name, options) if name.startswith("-") else None
        if close:
            hints.append(f"{name}: did you mean {close}?")
    return "unrecognized arguments: " + " ".join(extra) + ("" if not hints else " (" + "; ".join(hints) + ")")


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    try:
        command = args_list[0] if args_list and args_list[0] in COMMANDS else None
        parser = build_parser(command)
        # Options a command does not know are reported by that command's parser (its usage, not the top
        # level's), with the option meant when one is close.
        args, extra = parser.parse_known_args(args_list)
        if extra:
            owner = parser.commands[command] if command else parser
            owner.error(_unrecognized(extra, owner))
        if not getattr(args, "func", None):
            if sys.stderr is not None:
                parser.print_help(sys.stderr)
            return ExitCode.USAGE
        return int(args.func(args))
    except GuardError as e:
        message(e.message)
        return e.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.FAILURE  # `claude-guard ps | head`: the reader left; nothing to report
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else ExitCode.USAGE
    except Exception as e:
        path = _crash_log(e)
        message(f"internal error ({type(e).__name__}: {e}); details in {path}. Please report it")
        return ExitCode.INTERNAL


def _crash_log(error: BaseException) -> str:
    import os
    import platform
    import traceback

    from . import paths

    folder = paths.log_dir()
    path = os.path.join(folder, "crash.log")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"claude-guard {__version__}, Python {platform.python_version()}, {platform.platform()}\n")
            f.write(f"argv: {sys.argv!r}\n")
            f.write("".join(traceback.format_exception(type(error), error, error.__traceback__)) + "\n")
    except OSError:
        return "(crash log unwritable)"
    return path


if __name__ == "__main__":
    sys.exit(main())
