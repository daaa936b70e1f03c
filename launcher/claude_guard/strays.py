"""How a stray was left: *collateral* (ended by default) or *kept* (never ended by default).

A stray is a process outside every live session's tree that carries a session's markers. Whether it leaked
or was left on purpose is read from the layout the real CLI gives its children (docs/sweep.md, "Strays:
collateral or kept", has the tables and the reasons):

- a Bash tool call runs in a *tool shell*, a child of claude that leads its own session and process group
  and runs `<shell> -c "... eval '<command>' < /dev/null && pwd -P >| <tmp>/claude-<hex>-cwd"`; claude ends
  it (and its group) when it exits normally, unless the user moves it to the background ("Move to background
  and exit"), so a tool shell still running under a claude that died without cleaning up (its session file
  left behind) is collateral of a crash, and one left by a normal exit was kept;
- claude's own helpers (MCP servers, their wrappers) carry the session id but no `CLAUDE_PID`, and stay in
  claude's session: collateral too;
- anything else left the tool shell's session (`setsid`) or outlived its tool shell (`&`, `nohup`, a daemon)
  while its session was alive: kept.

The sweep's ledger, written only by the sweep, overrides the layout when an earlier sweep saw the process
while its session lived: outside the tree (kept), or as a direct child of claude (collateral).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .proc import Backend, Proc

COLLATERAL = "collateral"
KEPT = "kept"
# The `strays` setting: which strays of ended sessions `reap` ends.
SETTINGS = ("collateral", "all", "none")
# The end of every Bash tool shell's script (2.1.330): the CLI reads the command's final folder back from it.
_TOOL_SHELL = re.compile(r"&& pwd -P >\| \S*claude-[0-9a-f]+-cwd\s*$")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish"})


def is_tool_shell(argv: list[str]) -> bool:
    """`argv` is the command line the CLI gives a Bash tool call's shell. A hint, never proof on its own:
    only the user's own processes that carry a session's markers are ever judged by it."""
    if len(argv) < 3 or os.path.basename(argv[0]).rstrip("0123456789.") not in _SHELLS:
        return False
    try:
        script = argv[argv.index("-c", 1) + 1 :]
    except ValueError:
        return False
    return bool(script) and bool(_TOOL_SHELL.search(script[0]))


def judge(row: Proc, env: Mapping[str, str], backend: Backend, rows: Mapping[int, Proc],
          seen: Mapping[str, Any] | None, crashed: bool) -> tuple[str, str]:
    """(how, why) for a stray whose session is gone. `rows` is the pass's process table, `seen` what the
    ledger holds for this very process (pid and start) from earlier sweeps, `crashed` whether its claude
    died without cleaning up (Claude's own session file of that process is still there)."""
    if seen and seen.get("left"):
        return KEPT, "left its session's tree while the session was alive (seen by an earlier sweep)"
    child = seen.get("child_of") if seen else None
    group = backend.session(row.pid)
    sid = group[1] if group else -1
    leads = sid == row.pid
    if not env.get("CLAUDE_PID") and (not leads or child):
        return COLLATERAL, "collateral: one of claude's own helpers (an MCP server or its wrapper), left running"
    leader = rows.get(sid) if sid > 0 and not leads else None
    if child or (leads and is_tool_shell(row.cmdline)) or (
            leader is not None and leader.state not in ("Z", "X") and is_tool_shell(leader.cmdline)):
        what = f"a child of claude (PID {child}) seen by an earlier sweep" if child else "a Bash tool call"
        if crashed:
            return COLLATERAL, (f"collateral: {what}, still running when its claude died without cleaning up "
                                "(its session file is left behind)")
        # Claude ends its tool calls when it exits normally, unless the user moved them to the background.
        return KEPT, f"{what} that its session left running when it ended normally"
    how = "detached: started its own session" if leads else (
        f"detached: outlived the tool shell that started it (PID {sid}, gone)" if sid > 0 else "detached")
    if backend.ignores_hangup(row.pid):
        how += ", ignores SIGHUP (nohup)"
    return KEPT, how + ", while its session was alive"


def end_hint(pids: list[int]) -> str:
    """How a user ends a kept stray group by hand."""
    return "kill " + " ".join(str(p) for p in pids)
