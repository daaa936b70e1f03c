"""The one error type that reaches the user, and the exit codes the tool documents."""

from __future__ import annotations


class ExitCode:
    """Exit statuses of `claude` (the shim), `claude-guard exec` and the `claude-guard` commands.

    Values follow sysexits.h where one fits, so shell scripts and SDK hosts can tell them apart from
    claude's own statuses (0, 1, and 128+N for a signal).
    """

    OK = 0
    FAILURE = 1  # a command ran and something it tried failed (a reap that could not end a process)
    USAGE = 2  # bad command-line options of claude-guard itself
    INTERNAL = 70  # the guard failed unexpectedly and `strict = true` forbids starting claude anyway
    STATE = 74  # registry or lock unusable (unsafe path, unwritable, lock timeout) under `strict = true`
    REFUSED = 75  # refused by a rule: duplicate session, session cap
    CONFIG = 78  # configuration file or CLAUDE_GUARD_* variable is invalid
    INTERRUPTED = 130  # Ctrl-C in a claude-guard command
    NOT_FOUND = 127  # the real claude could not be found


class GuardError(Exception):
    """An error meant for the user: one line on stderr, and an exit code.

    `message` names the problem and the fix. Nothing else may reach the user as an exception.
    """

    def __init__(self, message: str, exit_code: int = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
