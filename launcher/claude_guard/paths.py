"""Every location the tool uses, resolved in one place.

On Linux the directories are computed here with platformdirs' own rules (XDG), because importing
platformdirs costs more than the whole `claude` shim may take; tests/test_paths.py checks the two agree.
Elsewhere platformdirs itself is asked.
"""

from __future__ import annotations

import os
import sys

APP = "claude-guard"


def _xdg(var: str, fallback: str) -> str:
    value = os.environ.get(var, "").strip()
    return value if value else os.path.expanduser(fallback)


def state_dir() -> str:
    """Where the registry, its lock and the launch log live (unless `state_dir` is configured)."""
    if sys.platform.startswith("linux"):
        return os.path.join(_xdg("XDG_STATE_HOME", "~/.local/state"), APP)
    import platformdirs

    return platformdirs.user_state_dir(APP)


def config_file() -> str:
    """The TOML config file: `CLAUDE_GUARD_CONFIG`, else config.toml in the user's config folder."""
    named = os.environ.get("CLAUDE_GUARD_CONFIG")
    if named:
        return named
    if sys.platform.startswith("linux"):
        base = os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), APP)
    else:
        import platformdirs

        base = platformdirs.user_config_dir(APP)
    return os.path.join(base, "config.toml")


def log_dir() -> str:
    """Where the reaper's audit log goes (platformdirs' user log folder)."""
    if sys.platform.startswith("linux"):
        return os.path.join(state_dir(), "log")
    import platformdirs

    return platformdirs.user_log_dir(APP)


def claude_dir() -> str:
    """Claude Code's own folder (`~/.claude`, or CLAUDE_CONFIG_DIR as Claude Code itself honours it)."""
    return os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")


def claude_sessions_dir() -> str:
    """Claude Code's live-session files: `<PID>.json` for each running session."""
    return os.path.join(claude_dir(), "sessions")
