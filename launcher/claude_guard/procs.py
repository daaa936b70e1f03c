"""This system's process backend as module functions: the launch side's (and tests') short way to it.

Everything is in the `proc` package (the interface, the /proc and psutil backends, which process is Claude
Code); this module binds the backend `proc.native()` chose, once. On Linux that imports nothing beyond the
standard library.
"""

from __future__ import annotations

from .proc import CLAUDE_NAMES, LINUX, Proc, claude_args, native

__all__ = ["BACKEND", "CLAUDE_NAMES", "LINUX", "Proc", "alive", "ancestors", "claude_args", "read", "scan",
           "signal", "start_token"]

BACKEND = native()
start_token = BACKEND.start_token
alive = BACKEND.alive
read = BACKEND.read
scan = BACKEND.scan
ancestors = BACKEND.ancestors
signal = BACKEND.signal
