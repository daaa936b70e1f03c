"""`claude-guard uninstall`: remove our shim and `claude-guard` command (only ours) and the reap timer; restore a
moved-aside claude."""

from __future__ import annotations

import argparse
import os

from .. import output, resolve
from ..errors import ExitCode, GuardError
from .install import BACKUP_SUFFIX, COMMAND, default_dir, native_version, own_dir, shim_path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("uninstall", help="remove the shim and the timer; restore the claude that was there",
                       description="Remove the `claude` shim (only if it is ours) and the reap timer.")
    p.add_argument("--dir", default=None, help="folder of the shim (default: ~/.local/bin)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = os.path.abspath(os.path.expanduser(args.dir or default_dir()))
    if native_version(shim_path(folder)) is not None and os.path.lexists(shim_path(own_dir())):
        folder = own_dir()  # install put the shim beside the native installer's link, in a folder of its own
    target = shim_path(folder)
    backup = target + BACKUP_SUFFIX
    if os.path.lexists(target):
        if not resolve.is_shim(target):
            raise GuardError(f"{target} is not a claude-guard shim; left it alone", ExitCode.FAILURE)
        os.unlink(target)
        resolve.forget(target)
        output.data(f"removed the claude shim {target}")
    else:
        output.data(f"no claude shim in {folder}")
    if os.path.lexists(backup):
        os.rename(backup, target)
        output.data(f"restored {target}")
    command = os.path.join(folder, COMMAND)
    if os.path.lexists(command) and resolve.is_shim(command):
        os.unlink(command)
        resolve.forget(command)
        output.data(f"removed the claude-guard command {command}")
    try:
        from .. import timer
    except ImportError:
        return ExitCode.OK
    for line in timer.uninstall():
        output.data(line)
    return ExitCode.OK
