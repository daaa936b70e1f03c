"""One module per `claude-guard` command (`add_parser` + `run`), and the argument types they share."""

from __future__ import annotations

import argparse
import os

from ..errors import ExitCode, GuardError


def folder(text: str) -> str:
    """An argparse type for `--under DIR`: an existing folder. A mistyped one would narrow the sweep to nothing
    and report "nothing to reap" as if all were well."""
    if not os.path.isdir(os.path.expanduser(text)):
        raise argparse.ArgumentTypeError(f"{text} is not a folder (give a folder that exists)")
    return text


def all_users_allowed(all_users: bool, without: str) -> None:
    """`--all-users` is root's (other users' sessions); `without` says what the command does without it."""
    if all_users and hasattr(os, "geteuid") and os.geteuid() != 0:
        raise GuardError(f"--all-users needs root; without it, {without}", ExitCode.USAGE)
