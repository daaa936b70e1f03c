"""`claude-guard reap`: end orphaned, duplicate, idle, over-age, over-cap sessions; once, or `--watch`.

Policies, their order and the never-end rules are in reaper.py (and docs/sweep.md). Every threshold is a
config key with a flag of the same name here.
"""

from __future__ import annotations

import argparse

from .. import config, configcache, output
from ..errors import ExitCode, GuardError
from ..output import human_bytes
from . import all_users_allowed, folder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..reaper import Plan, Sweep
    from ..settings import Settings

# Config keys that are also flags of `reap` with a value (--idle-after 30m, ...); reap_attached is a switch,
# protect adds to the setting.
FLAGS = tuple(k for k in config.REAP_FLAGS if k not in ("reap_attached", "protect"))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reap", help="end orphaned, duplicate and idle Claude sessions (see --dry-run)",
                       description="End leaked Claude Code sessions and their whole process trees. Policies, in "
                                   "order: dead, orphan, stray, duplicate, idle, over-age, over-cap, memory. "
                                   "--dry-run says what would be ended and why.")
    p.add_argument("-n", "--dry-run", action="store_true", help="say what would be ended; change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable report (one object per sweep)")
    p.add_argument("--watch", action="store_true", help="sweep every --interval until SIGTERM")
    p.add_argument("--all-users", action="store_true", help="root only: every user's sessions")
    p.add_argument("--force", action="store_true",
                   help="under memory pressure, also end active and attached sessions")
    p.add_argument("--only", default=None, metavar="POLICY,...",
                   help="apply only these policies (dead, orphan, stray, duplicate, idle, over-age, over-cap, "
                        "memory)")
    p.add_argument("--under", action="append", default=None, metavar="DIR", type=folder,
                   help="only sessions working in DIR or below it, as if no other existed (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only when something was ended or failed")
    for key in FLAGS:
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None, metavar="VALUE", type=_checked(key),
                       help=config.KEYS[key].help)
    p.add_argument("--reap-attached", dest="reap_attached", action="store_const", const=True, default=None,
                   help=config.KEYS["reap_attached"].help)
    p.add_argument("--protect", action="append", default=None, metavar="ID|NAME|PID|DIR",
                   help="never end this (added to the protect setting; repeatable)")
    p.set_defaults(func=run)


def _checked(key: str) -> Any:
    """An argparse type that checks a flag's value with its config key's parser (a bad value is a usage
    error, reported by argparse), and leaves the parsing itself to config.load."""
    def check(text: str) -> str:
        try:
            config.KEYS[key].parse(text)
        except config.BadValue as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    check.__name__ = key  # argparse names the type in some messages
    return check


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {key: getattr(args, key) for key in (*FLAGS, "reap_attached")}
    settings = configcache.load(None, overrides)  # the settings the config cache made of the file, if it holds them
    if args.protect:
        settings = settings.replace("command line", protect=[*settings.protect, *args.protect])
    return settings


def run(args: argparse.Namespace) -> int:

    from .. import reaper

    all_users_allowed(args.all_users, "reap ends only your own sessions")
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    unknown = [p for p in only or [] if p not in reaper.POLICIES]
    if unknown:
        raise GuardError(f"--only: unknown policy {', '.join(unknown)}; choose from {', '.join(reaper.POLICIES)}",
                         ExitCode.USAGE)
    if args.watch:
        return watch(args, only)
    return ExitCode.FAILURE if once(args, _settings(args), only).failed else ExitCode.OK


def once(args: argparse.Namespace, settings: Settings, only: list[str] | None) -> Sweep:
    """One sweep with the command line's options, reported."""
    from .. import reaper

    result = reaper.sweep(settings, dry_run=args.dry_run, all_users=args.all_users, force=args.force, only=only,
                          under=args.under)
    if result.records_error:
        output.message(result.records_error)
    report(result.plan, args, view_count=result.live)
    return result


def report(plan: Plan, args: argparse.Namespace, view_count: int) -> None:

    dry = bool(args.dry_run)
    if args.json:
        from .. import jsonio

        output.data(jsonio.dumps(plan.json(dry)))
        return
    quiet = args.quiet or args.watch
    if quiet and not plan.actions:
        return
    lines: list[str] = []
    for a in plan.actions:
        verb = {"planned": "would end", "ended": "ended", "failed": "FAILED to end"}[a.outcome]
        colour = {"planned": "YELLOW", "ended": "GREEN", "failed": "RED"}[a.outcome]
        what = f"PID {a.pid}" + (f" session {a.session_id}" if a.session_id else "") + ("" if a.session else
                                                                                     " (stray process)")
        line = (f"{output.paint(verb, colour)} {what} [{a.reason}]: {a.detail}; {human_bytes(a.rss)} in "
                f"{len(a.targets)} process{'es' if len(a.targets) != 1 else ''}")
        if a.killed:
            line += f"; SIGKILL after the grace period for PID {', '.join(map(str, a.killed))}"
        lines.append(line)
        lines.extend(f"    {e}" for e in a.errors)
        if a.resume:
            lines.append(f"    resume with: {a.resume}")
    if not quiet:
        for s in plan.skips:
            lines.append(f"kept PID {s.pid}" + (f" session {s.session_id}" if s.session_id else "")
                         + f" [{s.policy}]: {s.why}")
        if plan.pruned:
            pids = ", ".join(str(e.get("pid")) for e in plan.pruned)
            lines.append(f"{'would prune' if dry else 'pruned'} {len(plan.pruned)} registry "
                         f"entr{'ies' if len(plan.pruned) != 1 else 'y'} whose process is gone (PID {pids})")
        for f in plan.stale:
            lines.append(f"stale Claude session file (its process is gone): {f.path}")
        if plan.memory:
            m = plan.memory
            lines.append(f"memory: {human_bytes(m['available_bytes'])} available, floor "
                         f"{human_bytes(m['floor_bytes'])}, target {human_bytes(m['target_bytes'])}")
        lines.extend(plan.notes)
    lines.append(summary(plan, dry, view_count))
    output.data("\n".join(lines))


def summary(plan: Plan, dry: bool, live: int) -> str:

    kept = ""
    if plan.kept:
        n = len(plan.kept)
        them = "them" if n != 1 else "it"
        kept = (f"; kept {n} stray group{'s' if n != 1 else ''} ({human_bytes(sum(st.rss for st, _ in plan.kept))}): "
                f"`claude-guard ps` lists {them}")
    return _summary(plan, dry, live) + kept


def _summary(plan: Plan, dry: bool, live: int) -> str:
    from ..output import human_bytes

    if not plan.actions:
        return f"nothing to reap ({live} session{'s' if live != 1 else ''} live)"
    sessions = sum(1 for a in plan.actions if a.session)
    strays = len(plan.actions) - sessions
    # Only the kinds there are: "1 stray group", not "0 sessions and 1 stray group".
    parts = ([f"{sessions} session{'s' if sessions != 1 else ''}"] if sessions else []) \
        + ([f"{strays} stray group{'s' if strays != 1 else ''}"] if strays else [])
    what = " and ".join(parts)
    if dry:
        return f"would end {what}, freeing about {human_bytes(plan.freed)}"
    failed = sum(1 for a in plan.actions if a.outcome == "failed")
    ended = len(plan.actions) - failed
    line = f"ended {ended} of {what}, freed about {human_bytes(plan.freed)}"
    return line + (f"; {failed} failed" if failed else "")


def watch(args: argparse.Namespace, only: list[str] | None) -> int:
    """Sweep every `interval` until SIGTERM/SIGINT. A failed sweep is reported and the loop goes on; after
    ending something under memory pressure it waits at least `cooldown` before the next one.

    The config is read again before each sweep, so an edit takes effect without a restart. A bad config at
    start is a CONFIG error, as for one sweep (a service manager shows it and does not restart a loop that
    would sweep on defaults nobody chose); one that goes bad later keeps the last good settings, said once
    for each new problem, until it is fixed."""
    import signal
    import threading

    settings = _settings(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(sig, on_signal)
    problem = ""
    while not stop.is_set():
        pause = 0.0
        try:
            settings = _settings(args)
            problem = ""
        except GuardError as e:
            if e.message != problem:
                output.message(f"{e.message}; sweeping on with the last good settings until it is fixed")
            problem = e.message
        try:
            plan = once(args, settings, only).plan
            if any(a.reason == "memory" and a.outcome == "ended" for a in plan.actions):
                pause = settings.cooldown
        except GuardError as e:
            output.message(f"{e.message}; next sweep in {settings.interval:g}s")
        except Exception as e:  # one bad sweep must not end the watch
            output.message(f"sweep failed ({type(e).__name__}: {e}); next sweep in {settings.interval:g}s")
        stop.wait(max(settings.interval, pause, 0.1))
    output.message("reap --watch: stopped")
    return ExitCode.OK
