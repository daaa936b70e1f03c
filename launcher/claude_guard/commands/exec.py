"""`claude-guard exec [options] -- COMMAND [ARGS...]`: the generic spawn hook for SDK hosts.

Applies every launch rule to a command line whose program is Claude Code however it is packaged (the
native binary, the npm `claude.exe` link, `node .../cli.js`, the SDK's bundled `_bundled/claude`), then
execs it (POSIX) or runs it (Windows).
"""

from __future__ import annotations

import argparse
import os
import shutil

from .. import proc
from ..errors import ExitCode, GuardError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("exec", help="run a Claude Code command line under the guard (for SDK hosts)",
                       description="Apply the launch rules to COMMAND (Claude Code in any packaging) and run it.")
    p.add_argument("--max-sessions", dest="max_sessions", default=None, help="session cap for this launch")
    p.add_argument("--on-cap", dest="on_cap", choices=("refuse", "wait"), default=None)
    p.add_argument("--wait-timeout", dest="wait_timeout", default=None, help="seconds to wait for a slot")
    p.add_argument("--on-duplicate", dest="on_duplicate", choices=("refuse", "takeover"), default=None)
    p.add_argument("--strict", dest="strict", action="store_const", const=True, default=None)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=run)


def split_command(command: list[str], real_claude: str) -> tuple[str, list[str], list[str]]:
    """(program path, prefix args, claude args) for a Claude Code command line; GuardError(2) if it is not."""
    from .. import resolve

    name = command[0]
    if os.sep not in name and (os.altsep is None or os.altsep not in name):
        if name in proc.CLAUDE_NAMES:
            program = resolve.find_real_claude(real_claude, os.environ.get("PATH"), None)
        else:
            found = shutil.which(name)
            if not found:
                raise GuardError(f"exec: {name} not found on PATH", ExitCode.NOT_FOUND)
            program = found
    else:
        program = name
    if not os.path.isfile(program):
        raise GuardError(f"exec: {program} does not exist", ExitCode.NOT_FOUND)
    probe = proc.Proc(0, 0, "R", "", 0, 0, [program, *command[1:]], os.path.realpath(program))
    args = proc.claude_args(probe)
    if args is None:
        raise GuardError(f"exec: {name} is not Claude Code (expected claude, claude.exe, node .../cli.js or the "
                         "SDK's bundled claude); usage: claude-guard exec -- claude [ARGS...]", ExitCode.USAGE)
    prefix = command[1 : len(command) - len(args)]
    return program, prefix, args


def run(args: argparse.Namespace) -> int:
    from .. import config, launch

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise GuardError("exec: no command given; usage: claude-guard exec [options] -- claude [ARGS...]",
                         ExitCode.USAGE)
    overrides = {k: getattr(args, k) for k in config.EXEC_FLAGS}
    settings = config.load(None, overrides, lenient=True)  # a config problem starts claude unguarded, with a warning
    program, prefix, claude_args = split_command(command, settings.real_claude)
    return launch.run_guarded(program, prefix, claude_args, settings=settings)
