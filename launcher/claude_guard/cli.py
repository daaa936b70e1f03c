"""`claude-guard`: argparse wiring and the one place where errors become exit codes.

Each command lives in `commands/<verb>.py` as a pair (pipx style): `add_parser(subparsers)` declares its
options and sets `func`, and `run(args) -> int` does the work. Command modules import their heavy
dependencies inside `run`, so `claude-guard exec` (an SDK host's spawn path) never loads the sweep code.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import ExitCode, GuardError
from .output import message

COMMANDS = ("install", "uninstall", "config", "exec", "ps", "reap", "doctor", "metrics")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One usage line and one error line, exit 2, as argparse does, but never a traceback (and nothing
        # at all when stderr was closed: print_usage(None) would write to stdout instead).
        if sys.stderr is not None:
            self.print_usage(sys.stderr)
            sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(ExitCode.USAGE)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="claude-guard", description="Guard Claude Code launches and reap leaked sessions.")
    parser.add_argument("--version", action="version", version=f"claude-guard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", __package__)
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
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
