"""claude-guard: a guard for Claude Code launches and a sweeper for leaked sessions.

Kept empty on purpose: the `claude` shim imports this package on every launch, so nothing may be
imported here beyond what the hot path itself needs.
"""

from __future__ import annotations

__version__ = "0.1.0"
