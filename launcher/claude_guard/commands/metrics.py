"""`claude-guard metrics`: sessions, their memory and what the reaper ended, in Prometheus text format.

To stdout, or with `--textfile-dir DIR` into DIR/claude_guard.prom for node_exporter's textfile collector
(written to a temp file in DIR and renamed, so the collector never reads half a file).
"""

from __future__ import annotations

import argparse

from .. import output
from ..errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:

    from ..records import Book
    from ..sessions import View

FILE = "claude_guard.prom"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("metrics", help="sessions by state, memory, sessions ended (Prometheus text format)",
                       description="Print Prometheus metrics, or write them atomically for node_exporter's "
                                   "textfile collector.")
    p.add_argument("--textfile-dir", "--textfile", dest="textfile_dir", default=None, metavar="DIR",
                   help=f"write DIR/{FILE} atomically instead of printing")
    p.add_argument("--all-users", action="store_true", help="root only: every user's sessions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from .. import files, sessions

    _, book, view = sessions.current(args.all_users, "metrics")
    text = render(view, book)
    if not args.textfile_dir:
        output.data(text)
        return ExitCode.OK
    folder = os.path.abspath(args.textfile_dir)
    target = os.path.join(folder, FILE)
    tmp = os.path.join(folder, f".{FILE}.{os.getpid()}.tmp")  # node_exporter reads only *.prom
    try:
        files.atomic_write(target, text.encode("utf-8"), mode=0o644, tmp=tmp)
    except OSError as e:
        raise GuardError(f"cannot write {target}: {e.strerror}; check that the folder exists and is writable",
                         ExitCode.FAILURE) from None
    return ExitCode.OK


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}" if labels else ""


def render(view: View, book: Book) -> str:
    """The exposition text: HELP and TYPE once per metric, every state present (zeros included)."""
    from ..sessions import STATES

    lines: list[str] = []

    def metric(name: str, kind: str, help: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(**labels)} {value:g}" if isinstance(value, float) and value % 1
                         else f"{name}{_labels(**labels)} {int(value)}")

    states = view.by_state()
    metric("claude_guard_sessions", "gauge", "Live Claude Code sessions by state.",
           [({"state": s}, len(states[s])) for s in STATES])
    metric("claude_guard_session_memory_bytes", "gauge",
           "Resident memory of the sessions' process trees by state (RSS summed over each tree).",
           [({"state": s}, sum(x.rss for x in states[s])) for s in STATES])
    metric("claude_guard_unguarded_sessions", "gauge", "Live sessions started around the guard.",
           [({}, sum(1 for x in view.sessions if not x.guarded))])
    lost = [st for st in view.strays if st.owner is None and st.how == "collateral"]
    metric("claude_guard_stray_processes", "gauge",
           "Process groups leaked by sessions that have ended (collateral: ended by the next reap).",
           [({}, len(lost))])
    metric("claude_guard_stray_memory_bytes", "gauge", "Resident memory of those stray processes.",
           [({}, sum(st.rss for st in lost))])
    kept = [st for st in view.strays if st not in lost]
    metric("claude_guard_kept_stray_processes", "gauge",
           "Process groups sessions left running on purpose (kept: never ended by default).", [({}, len(kept))])
    metric("claude_guard_kept_stray_memory_bytes", "gauge", "Resident memory of those kept processes.",
           [({}, sum(st.rss for st in kept))])
    metric("claude_guard_dead_registry_entries", "gauge", "Registry entries whose process is gone.",
           [({}, len(view.dead))])
    counters = book.get("counters", {})
    ended = counters.get("ended", {})
    freed = counters.get("freed_bytes", {})
    from ..reaper import KILL, POLICIES

    reasons = [*(p for p in POLICIES if p != "dead"), KILL]  # kill: ended by hand (`claude-guard kill`)
    metric("claude_guard_sessions_ended_total", "counter", "Sessions (and stray groups) ended by the reaper, by "
           "reason.", [({"reason": r}, int(ended.get(r, 0))) for r in reasons])
    metric("claude_guard_memory_freed_bytes_total", "counter",
           "Tree RSS of what the reaper ended, by reason.", [({"reason": r}, int(freed.get(r, 0))) for r in reasons])
    metric("claude_guard_reap_failures_total", "counter", "Sessions the reaper tried and failed to end.",
           [({}, int(counters.get("failed", 0)))])
    metric("claude_guard_reap_sweeps_total", "counter", "Reap sweeps run.", [({}, int(counters.get("sweeps", 0)))])
    metric("claude_guard_last_reap_timestamp_seconds", "gauge", "When the last reap ran (0: never).",
           [({}, float(counters.get("last_sweep", 0.0)))])
    return "\n".join(lines) + "\n"
