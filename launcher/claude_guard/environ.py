"""The environment claude starts with: nesting markers out, configuration in.

A session plants markers in its children's environment (CLAUDECODE=1, CLAUDE_CODE_SESSION_ID, ...). A
`claude` started from inside a session inherits them: older releases refused to start, and an inherited
CLAUDE_CODE_CHILD_SESSION=1 silently turns transcript saving off. Configuration variables
(CLAUDE_CODE_USE_BEDROCK, CLAUDE_CODE_OAUTH_TOKEN, API keys, proxies) are not markers and stay.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

COOKIE = "CLAUDE_GUARD_COOKIE"  # set on every guarded session; the sweep finds its strays by it
# Set on everything the guard starts: "<pid>:<start token>:<depth>" of the launch. A `real_claude` that is a
# wrapper running `claude` by name finds the shim again; this tells the guard it is looping (launch.reentered).
LAUNCHER = "CLAUDE_GUARD_LAUNCHER"

# What a session adds to its children's environment, read from a real session by tests/test_env_real.py (Bash tool
# commands, MCP servers; docs/real-claude-layout.md has the 2.1.330 dump) plus what `claude daemon` sets for its
# background sessions. An entry ending in `*` is a prefix: used only where every name Claude has under it is a
# marker (CLAUDE_CODE_SESSION_* is not: CLAUDE_CODE_SESSION_ACCESS_TOKEN is a credential). Configuration
# (CLAUDE_CODE_USE_BEDROCK, CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_*, proxies) is deliberately not here, nor are the tool
# settings Claude gives every command (GIT_EDITOR=true, COREPACK_ENABLE_AUTO_PIN=0,
# NoDefaultCurrentDirectoryInExePath=1, SHELL): they name no session, and a user may have set them on purpose.
MARKERS = (
    "CLAUDECODE",
    "CLAUDECODE_*",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_SESSION_KIND",
    "CLAUDE_CODE_SESSION_NAME",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_EXECPATH",
    "CLAUDE_CODE_CHILD_*",  # CHILD_SESSION (turns transcripts off in a nested claude), CHILD_NOTES_DIR
    "CLAUDE_CODE_MESSAGING_*",  # SOCKET and TOKEN (2.1.330); SOCKET_TOKEN in earlier releases
    "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS",
    "CLAUDE_CODE_HOST_SHORT_TEMP_DIRS",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_PID",
    "CLAUDE_EFFORT",
    "CLAUDE_JOB_DIR",
    "CLAUDE_BG_*",  # a background session's plumbing (sockets, tokens paths, backend)
    "AI_AGENT",
)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """`NAME` matches exactly; `PREFIX*` matches any name starting with PREFIX."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def clean(env: Mapping[str, str], strip: Iterable[str], keep: Iterable[str] = (),
          keep_markers: bool = False) -> tuple[dict[str, str], list[str]]:
    """A copy of `env` without the markers; returns (new environment, names removed)."""
    out = dict(env)
    out.pop(COOKIE, None)  # a parent's cookie must not make this session look like part of that one
    if keep_markers:
        return out, []
    strip = list(strip)
    keep = list(keep)
    removed = [name for name in out if matches(name, strip) and not matches(name, keep)]
    for name in removed:
        del out[name]
    return out, removed
