"""Shared fixtures: a private HOME per test, stand-in claude executables, an installed shim, and cleanup
of every process a test started (by PID; never by name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sweepkit import Sandbox, wait_for

__all__ = ["Guard", "guard", "wait_for"]

REPO = Path(__file__).resolve().parent.parent
# The launch tests' name for the one sandbox (sweepkit.Sandbox).
Guard = Sandbox


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Sandbox]:
    """The launch tests' world: the shim in front of the stand-in, found on PATH."""
    g = Sandbox(tmp_path, sweep=False)
    try:
        yield g
    finally:
        g.cleanup()
