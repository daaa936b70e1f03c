"""`claude-guard ps`: every Claude Code session of the user, its state and the facts behind it."""

from __future__ import annotations

import argparse
import sys

from .. import output
from ..errors import ExitCode
from . import folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..sessions import Session, Stray, View, Waiting

COLOURS = {"orphan": "RED", "duplicate": "MAGENTA", "over-age": "YELLOW", "idle": "CYAN", "unguarded": "BLUE",
           "active": "GREEN"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ps", help="list Claude sessions: state, idle time, memory of the whole tree",
                       description="List every Claude Code session (guarded or not) with its state: active, "
                                   "idle, orphan, duplicate, unguarded or over-age.")
    p.add_argument("--json", action="store_true", help="a JSON list (schema in docs/sweep.md)")
    p.add_argument("--all-users", action="store_true", help="root only: every user's sessions")
    p.add_argument("--under", action="append", default=None, metavar="DIR", type=folder,
                   help="only sessions working in DIR or below it (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import sessions

    _, _, view = sessions.current(args.all_users, "ps", args.under)
    rows = sorted(view.sessions, key=lambda s: (s.row.created, s.pid))
    lost = sorted(view.strays, key=lambda st: (st.row.created, st.pid))
    describe(lost, view)
    if args.json:
        from .. import jsonio

        output.data(jsonio.dumps([*(s.json() for s in rows), *(st.json() for st in lost),
                                  *(w.json() for w in view.waiters)]))
        return ExitCode.OK
    text = table(rows, view, all_users=args.all_users)
    if view.waiters:
        text += "\n\n" + waiter_table(view.waiters)
    if lost:
        text += "\n\n" + stray_table(lost)
    output.data(text)
    return ExitCode.OK


def describe(lost: list[Stray], view: View) -> None:
    """What only `ps` shows of a stray: the ports its group listens on, and how to resume its conversation."""
    if not lost:
        return  # most of the time: no socket table to read, no sweep module to load
    from ..reaper import resume_command

    ports = view.backend.listening([p for st in lost for p in st.pids])
    for st in lost:
        st.ports = sorted({port for p in st.pids for port in ports.get(p, ())})
        st.resume = resume_command(st.session_id, st.cwd, None)


def waiter_table(waiters: list[Waiting]) -> str:
    """Launches waiting at the cap (on_cap = wait), in the order they will be admitted."""
    from ..output import human_duration

    lines = ["WAITING  POSITION  FOR"]
    lines.extend(f"{w.pid:<8} {w.position:<9} {human_duration(w.waited)}" for w in waiters)
    lines.append(f"{len(waiters)} launch{'es' if len(waiters) != 1 else ''} waiting for a session slot "
                 "(on_cap = wait); position 1 starts when a session ends")
    return "\n".join(lines)


def stray_table(lost: list[Stray]) -> str:
    """Strays, one line each, with how to end each (and to resume its conversation, when it has one)."""
    from ..output import human_bytes, human_duration

    lines = ["STRAY    HOW         AGE     RSS        PORTS   FROM      COMMAND"]
    for st in lost:
        origin = (st.session_id or "-")[:8] + (f" (live PID {st.owner.pid})" if st.owner else "")
        ports = ",".join(map(str, st.ports)) or "-"
        how = "kept" if st.owner else st.how
        lines.append(f"{st.pid:<8} {how:<11} {human_duration(st.age):<7} {human_bytes(st.rss):<10} {ports:<7} "
                     f"{origin:<9} {' '.join(st.row.cmdline)[:60]}")
        lines.append(f"    {st.why}")
        lines.append(f"    end it: {st.end}" + (f"; resume its conversation: {st.resume}" if st.resume else ""))
    lines.append("kept: left running on purpose, never ended by default (`claude-guard reap --strays all` ends "
                 "them); collateral: leaked by a session that died, `claude-guard reap` ends them")
    return "\n".join(lines)


# A session name (`claude -n`, `/rename`) is free text; past this it is cut, whole in `ps --json`.
_NAME_WIDTH = 24


def table(rows: list[Session], view: View, all_users: bool = False, width: int | None = None) -> str:
    """A table that fits the terminal: the working folder takes what the other columns leave."""
    import shutil

    from ..output import human_bytes, human_duration

    width = width or shutil.get_terminal_size((120, 24)).columns
    columns = ["PID", "STATE", "SESSION", "NAME", "AGE", "IDLE", "CPU%", "RSS", "PROCS", "TTY", "PARENT"]
    if all_users:
        columns.insert(1, "USER")
    cells: list[list[str]] = []
    for s in rows:
        sid = (s.session_id or "-")[:8] + ("" if s.guarded else "*")
        cpu = "-" if s.cpu_percent is None else f"{s.cpu_percent:.1f}"
        tty = (s.terminal or "-").replace("/dev/", "") + (f" ({s.no_client}, no client)" if s.no_client else "")
        parent = "detached" if s.detached else f"{s.row.ppid}:{s.parent_name or '?'}"  # parent 1 since launch
        name = s.name or "-"
        if len(name) > _NAME_WIDTH:
            name = name[:_NAME_WIDTH - 1] + "…"
        line = [str(s.pid), s.state, sid, name, human_duration(s.age), human_duration(s.idle), cpu, human_bytes(s.rss),
                str(1 + len(s.own)), tty, parent]
        if all_users:
            line.insert(1, s.row.user or _user(s.row.uid))  # Windows: the account name, read by the scan
        cells.append(line)
    # Drop the least telling columns until the rest plus a usable CWD fits.
    for drop in ("PROCS", "PARENT", "TTY", "CPU%", "NAME"):
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        if sum(widths) + 2 * len(widths) + 20 <= width:
            break
        i = columns.index(drop)
        columns.pop(i)
        for r in cells:
            r.pop(i)
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    room = max(10, width - sum(widths) - 2 * len(widths))
    state_at = columns.index("STATE")
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "  CWD"]
    for s, r in zip(rows, cells, strict=True):
        cwd = s.cwd or "-"
        if len(cwd) > room:
            cwd = "…" + cwd[-(room - 1):]
        padded = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        padded[state_at] = output.paint(padded[state_at], COLOURS[s.state])
        lines.append("  ".join(padded) + "  " + cwd)
    lines.append(footer(rows, view))
    return "\n".join(lines)


def footer(rows: list[Session], view: View) -> str:
    from ..output import human_bytes

    counts: dict[str, int] = {}
    for s in rows:
        counts[s.state] = counts.get(s.state, 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in counts.items())
    line = (f"{len(rows)} session{'s' if len(rows) != 1 else ''}" + (f" ({states})" if states else "")
            + f", {human_bytes(sum(s.rss for s in rows))} in their trees; * = not started through the guard")
    lost = [st for st in view.strays if st.owner is None and st.how == "collateral"]
    if lost:
        line += (f"\n{len(lost)} stray process group{'s' if len(lost) != 1 else ''} leaked by ended sessions "
                 f"({human_bytes(sum(st.rss for st in lost))}): `claude-guard reap` ends them")
    if view.dead or view.stale:
        line += (f"\n{len(view.dead)} registry entries and {len(view.stale)} Claude session files of processes "
                 "that are gone: `claude-guard reap` prunes the registry")
    return line


def _user(uid: int) -> str:
    if sys.platform == "win32":
        return str(uid)  # no uids there; the scan reads account names instead
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
