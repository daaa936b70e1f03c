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
