"""One module per `claude-guard` command (`add_parser` + `run`), and the argument types they share."""

from __future__ import annotations

import argparse
import os


def folder(text: str) -> str:
    """An argparse type for `--under DIR`: an existing folder. A mistyped one would narrow the sweep to nothing
    and report "nothing to reap" as if all were well."""
    if not os.path.isdir(os.path.expanduser(text)):
        raise argparse.ArgumentTypeError(f"{text} is not a folder (give a folder that exists)")
    return text
