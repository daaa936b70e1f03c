"""`claude-guard kill <pid|session id|name>`: end one session and its whole process tree, by hand.

The same machinery as `reap` (reaper.sweep with a plan of the named sessions, reaper.by_hand): identity,
owner, lineage and protection checked on every process of the tree before a signal, the session told why
on its terminal, TERM then KILL after `grace`, the report, the audit log and the resume hint.
"""

from __future__ import annotations

import argparse

from .. import output
from ..errors import ExitCode, GuardError
from . import all_users_allowed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..reaper import Plan
    from ..sessions import Session, View

# A session id prefix shorter than this names too many sessions to be a choice (ps shows 8 characters).
_MIN_PREFIX = 4


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kill", help="end one Claude session and its whole process tree",
                       description="End the session named by TARGET (its claude PID, its session id or a unique "
                                   "prefix of it, or its name) and its whole process tree, as reap does: checked, "
                                   "told why on its terminal, SIGTERM, SIGKILL after --grace.")
    p.add_argument("target", metavar="TARGET", help="PID, session id (or unique prefix) or session name")
    p.add_argument("-n", "--dry-run", action="store_true", help="say what would be ended; change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable report (as reap --json)")
    p.add_argument("--all-users", action="store_true", help="root only: any user's session")
    p.add_argument("--force", action="store_true", help="also a session that matches the protect setting")
    p.add_argument("--grace", default=None, metavar="DURATION",
                   help="SIGTERM, then SIGKILL after this long (default: the grace setting)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import getpass

    from .. import configcache, jsonio, reaper
    from . import reap

    all_users_allowed(args.all_users, "kill ends only your own sessions")
    settings = configcache.load(None, {"grace": args.grace})

    def choose(view: View) -> Plan:
        return reaper.by_hand(view, settings, find(view, args.target, args.all_users), all_users=args.all_users,
                             force=args.force)

    result = reaper.sweep(settings, dry_run=args.dry_run, all_users=args.all_users, choose=choose,
                          by=f"claude-guard kill (run by {getpass.getuser()})")
    plan = result.plan
    if args.json:
        output.data(jsonio.dumps(plan.json(args.dry_run)))
    elif plan.actions:
        reap.report(plan, argparse.Namespace(dry_run=args.dry_run, json=False, quiet=True, watch=False),
                    view_count=result.live)
    if result.records_error:
        output.message(result.records_error)
    if not plan.actions:
        skip = plan.skips[0]
        hint = "; --force ends it anyway" if skip.why.startswith("matches protect") else ""
        raise GuardError(f"PID {skip.pid} was not ended: {skip.why}{hint}", ExitCode.FAILURE)
    return ExitCode.FAILURE if result.failed else ExitCode.OK


def find(view: View, target: str, all_users: bool) -> list[Session]:
    """The sessions TARGET names: the one with that claude PID; else every copy of that session id (or of the
    one id a prefix names); else the session with that name. No match, or a prefix or name naming several
    sessions, is an error that lists them. A number that is no session's PID may still be a session id's prefix
    (one in 40 UUIDs starts with eight digits) or a name."""
    target = target.strip()
    if target.isdigit():
        chosen = [s for s in view.sessions if s.pid == int(target)]
        if chosen:
            return chosen
    by_id = [s for s in view.sessions if s.session_id == target]
    by_name = [s for s in view.sessions if s.name == target]
    by_prefix = [s for s in view.sessions if len(target) >= _MIN_PREFIX and (s.session_id or "").startswith(target)]
    for chosen in (by_id, by_name, by_prefix):
        ids = {s.session_id for s in chosen}
        if len(ids) > 1:
            listed = "; ".join(f"PID {s.pid} session {s.session_id}" + (f" ({s.name})" if s.name else "")
                               for s in chosen)
            raise GuardError(f"{target!r} names {len(ids)} sessions ({listed}): give a PID or a whole session id",
                             ExitCode.USAGE)
        if chosen:
            return chosen  # every copy of the one session it names
    if target.isdigit():
        raise GuardError(_not_a_session(view, int(target), all_users), ExitCode.FAILURE)
    raise GuardError(f"no Claude session of yours has the PID, session id or name {target!r}; `claude-guard ps` "
                     "lists them", ExitCode.FAILURE)


def _not_a_session(view: View, pid: int, all_users: bool) -> str:
    row = view.backend.read(pid)
    if row is None:
        return f"no process {pid}; `claude-guard ps` lists the sessions"
    me = view.backend.whoami()[0]
    if not all_users and me is not None and row.uid >= 0 and row.uid != me:
        return (f"PID {pid} belongs to {view.backend.owner(row)}: only root with --all-users ends another user's "
                "session")
    holder = next((s for s in view.sessions if pid in s.tree), None)
    if holder is not None:
        return (f"PID {pid} is not a Claude session but a process in the tree of session PID {holder.pid}; "
                f"`claude-guard kill {holder.pid}` ends that session, or end the process itself with kill {pid}")
    return f"PID {pid} is not a Claude session; `claude-guard ps` lists them"
