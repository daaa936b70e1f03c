"""`claude-guard doctor`: is the guard in place and working? Each problem comes with its fix."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check the shim, the real claude, the registry, the timer and the config",
                       description="Check that the guard is in place: shim first on PATH, real claude found, "
                                   "registry private and readable, reap timer installed and active, config "
                                   "valid. Exits non-zero when anything is wrong.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


class Check:
    def __init__(self, name: str, ok: bool, detail: str, fix: str = "") -> None:
        self.name, self.ok, self.detail, self.fix = name, ok, detail, fix

    def json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix or None}


def run(args: argparse.Namespace) -> int:
    checks: list[Check] = []
    settings = None
    from .. import config

    # Leniently, so that every problem is named (a launch meanwhile starts claude unguarded, with a warning).
    settings = config.load(lenient=True)
    for problem in settings.problems:
        checks.append(Check("config", False, problem, "fix the key or variable named above, or remove it to use "
                                                       "the default; until then claude starts unguarded"))
    if not settings.problems:
        checks.append(Check("config", True, f"valid ({config_path()})"))
    checks.append(check_shim())
    native = check_native_installer()
    if native:
        checks.append(native)
    checks.append(check_real_claude(settings))
    checks.append(check_option_table(settings))
    checks.extend(check_registry(settings))
    checks.extend(check_unattended(settings))
    if args.json:
        import json

        output.data(json.dumps([c.json() for c in checks], indent=2))
    else:
        lines = []
        for c in checks:
            mark = output.paint("ok  ", "GREEN") if c.ok else output.paint("FAIL", "RED")
            lines.append(f"{mark} {c.name}: {c.detail}")
            if not c.ok and c.fix:
                lines.append(f"     fix: {c.fix}")
        bad = sum(1 for c in checks if not c.ok)
        lines.append("all checks passed" if not bad else f"{bad} problem{'s' if bad != 1 else ''} found")
        output.data("\n".join(lines))
    if settings.problems:
        return ExitCode.CONFIG
    return ExitCode.OK if all(c.ok for c in checks) else ExitCode.FAILURE


def config_path() -> str:
    import os

    from .. import paths

    path = paths.config_file()
    return path if os.path.exists(path) else f"{path} absent: defaults"


def check_shim() -> Check:
    from .. import resolve
    from .install import default_dir, path_advice

    for candidate in _claudes_on_path():
        if resolve.is_shim(candidate):
            return _check_baked_python(candidate)
        advice = path_advice(default_dir()) or "claude-guard install"
        return Check("shim", False, f"the first claude on PATH is {candidate}, not the claude-guard shim",
                     f"run `claude-guard install`, and put its folder first on PATH: {advice}")
    return Check("shim", False, "no claude on PATH at all", "run `claude-guard install` and add its folder to PATH")


def _check_baked_python(shim: str) -> Check:
    """The shim is first on PATH; does the Python it runs still exist? (A moved or deleted checkout or venv, or
    a removed interpreter, leaves claude running unguarded behind a warning.)"""
    import os

    from .install import baked_python

    if os.name == "nt":
        return Check("shim", True, f"{shim} is the first claude on PATH")
    python = baked_python(shim)
    if python is None:
        return Check("shim", False, f"{shim} is first on PATH but names no Python",
                     "run `claude-guard install` again")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return Check("shim", False, f"{shim} is first on PATH, but the Python it runs ({python}) is gone (its venv "
                                    "or checkout was moved or deleted, or its interpreter removed): claude starts "
                                    "unguarded", "reinstall claude-guard (pipx install, uv tool install or "
                                                 "scripts/setup), then run `claude-guard install` again")
    with open(shim, "rb") as f:
        front = f.read(9) == b"#!/bin/sh"
    if not front:
        return Check("shim", False, f"{shim} is first on PATH but is an older shim that fails outright if {python} "
                                    "goes away", "run `claude-guard install` again")
    return Check("shim", True, f"{shim} is the first claude on PATH (runs {python})")


def check_native_installer() -> Check | None:
    """Where Claude Code's native installer keeps its link (~/.local/bin/claude -> .../claude/versions/<v>), say
    how the shim lives with it: ahead of it in a folder of its own (updates followed), or what went wrong. None
    when there is no such link."""
    import os

    from .. import resolve
    from .install import BACKUP_SUFFIX, default_dir, native_version, own_dir, path_advice

    if os.name == "nt":
        return None
    folders: list[str] = []
    for entry in [default_dir(), *os.environ.get("PATH", "").split(os.pathsep)]:
        absolute = os.path.abspath(entry or ".")
        if absolute not in folders:
            folders.append(absolute)
    fix = f"claude-guard install   (it puts the installer's link back and the shim in {own_dir()})"
    for folder in folders:
        link = os.path.join(folder, "claude")
        backup = link + BACKUP_SUFFIX
        pinned = native_version(backup)
        if pinned is not None and resolve.is_shim(link):
            gone = "" if os.path.exists(backup) else ", which the updater has since removed"
            return Check("native installer", False, f"an older claude-guard moved Claude Code's native-installer "
                                                    f"link aside: {backup} pins version {pinned}{gone}, and the "
                                                    f"installer's next update will replace the shim in {folder}", fix)
        version = native_version(link)
        if version is None:
            continue
        if pinned is not None:
            return Check("native installer", False, f"the native installer's update replaced the claude-guard shim "
                                                    f"in {folder} (its link now points at version {version}); "
                                                    f"{backup} is a stale pinned copy", fix)
        if not os.path.exists(link):
            return Check("native installer", False, f"{link} (Claude Code's native installer) points at version "
                                                    f"{version}, which is gone",
                         "reinstall Claude Code (its native installer, or `claude install` from another copy)")
        first = _claudes_on_path()
        if first and resolve.is_shim(first[0]) and os.path.dirname(os.path.abspath(first[0])) != folder:
            return Check("native installer", True, f"{link} -> version {version}; the shim in "
                                                   f"{os.path.dirname(first[0])} comes first on PATH and runs the "
                                                   "version that link points at, so updates are followed")
        advice = path_advice(own_dir()) or "claude-guard install"
        return Check("native installer", False, f"{link} -> version {version} runs without the guard: the shim is "
                                                "not ahead of it on PATH", f"{fix}; then {advice}")
    return None


def _claudes_on_path() -> list[str]:
    """The claude a shell would start (at most one)."""
    import os

    from .. import resolve

    found = resolve.first_on_path(os.environ.get("PATH", ""), os.environ.get("PATHEXT", ""))
    return [found] if found else []


def check_real_claude(settings: Settings | None) -> Check:
    import os
    import subprocess

    from .. import resolve

    try:
        real = resolve.find_real_claude(settings.real_claude if settings else "", os.environ.get("PATH"), None)
    except GuardError as e:
        return Check("real claude", False, e.message, "install Claude Code, or set real_claude in the config")
    try:
        if os.name == "nt":  # started as a launch starts it: npm's claude.cmd read, never handed to cmd.exe
            from ..win.launch import plan

            application, line = plan(real, ["--version"], environ=os.environ)
            result = subprocess.run(line, executable=application, capture_output=True, text=True, timeout=20,
                                    stdin=subprocess.DEVNULL, check=False)
        else:
            result = subprocess.run([real, "--version"], capture_output=True, text=True, timeout=20,
                                    stdin=subprocess.DEVNULL, check=False)
    except GuardError as e:
        return Check("real claude", False, e.message, "reinstall Claude Code")
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("real claude", False, f"{real} does not run ({e})", "reinstall Claude Code")
    version = (result.stdout.strip() or result.stderr.strip()).splitlines()[:1]
    if result.returncode != 0:
        return Check("real claude", False, f"{real} --version failed ({result.returncode}): {' '.join(version)}",
                     "reinstall Claude Code")
    return Check("real claude", True, f"{real}: {' '.join(version) or 'version unknown'}")


def check_registry(settings: Settings | None) -> list[Check]:
    import os
    import stat

    from .. import paths, registry

    folder = settings.registry_dir() if settings else paths.state_dir()
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return [Check("registry", True, f"{folder} not created yet (the first guarded launch creates it)")]
    if os.name == "nt":
        return _check_registry_windows(folder, st)
    problem = registry.describe_unsafe(st)
    if problem or not stat.S_ISDIR(st.st_mode):
        return [Check("registry", False, f"state folder {folder} is {problem or 'not a folder'}",
                      f"chmod 700 {folder} (or remove it: the next launch recreates it)")]
    if stat.S_IMODE(st.st_mode) & 0o077:
        return [Check("registry", False, f"state folder {folder} has mode {stat.S_IMODE(st.st_mode):o}, "
                                         "readable by others (the registry names your sessions and folders)",
                      f"chmod 700 {folder}")]
    path = os.path.join(folder, registry.REGISTRY)
    try:
        fst = os.lstat(path)
    except FileNotFoundError:
        return [Check("registry", True, f"{folder} (private; no sessions registered yet)")]
    problem = registry.describe_unsafe(fst)
    if problem:  # someone else may have written into it: its content is not to be kept
        return [Check("registry", False, f"{path} is {problem}", f"rm {path} (the next launch rebuilds it)")]
    if stat.S_IMODE(fst.st_mode) & 0o077:
        return [Check("registry", False, f"{path} has mode {stat.S_IMODE(fst.st_mode):o}, readable by others",
                      f"chmod 600 {path}, or remove it (it is rebuilt)")]
    return [_parse_registry(folder, "private")]


def _check_registry_windows(folder: str, st: Any) -> list[Check]:
    """Windows keeps access in ACLs, not in mode bits (os.stat says 777 for every folder): the state folder
    is in the user's own profile (%LOCALAPPDATA%), which other users cannot read by default. What can be
    checked here: it is a real folder, and the registry parses."""
    import os
    import stat

    from .. import registry

    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
        return [Check("registry", False, f"state folder {folder} is {what}",
                      f"remove {folder} (the next launch recreates it)")]
    path = os.path.join(folder, registry.REGISTRY)
    if not os.path.exists(path):
        return [Check("registry", True, f"{folder} (no sessions registered yet)")]
    return [_parse_registry(folder, "access by the folder's ACL")]


def _parse_registry(folder: str, note: str) -> Check:
    """The registry read as the launch reads it (Registry.read: no symlink followed, owner checked)."""
    from .. import registry

    reg = registry.Registry(folder)
    try:
        entries = len(reg.read()["sessions"])
    except GuardError as e:
        return Check("registry", False, e.message, f"remove {reg.path}; the next launch starts a new registry")
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
        return Check("registry", False, f"{reg.path} is unreadable ({e})",
                     "remove it; the next launch starts a new registry")
    return Check("registry", True, f"{reg.path}: {entries} entr{'ies' if entries != 1 else 'y'}, {note}")


def check_unattended(settings: Any) -> list[Check]:
    """The timer (or a running `reap --watch`, which does the same job), then how the last unattended sweep
    ended and whether it still runs."""
    import time

    # Only a watch that sweeps this state counts (another user's or HOME's, or a stuck one, does not): the
    # ledger names the process that swept last, and it must have swept lately.
    watch = _watch_process(settings)
    interval = float(settings.interval) if settings else 60.0
    if watch and time.time() - _last_any_sweep(settings) > 3 * interval + 120:
        watch = None
    first = check_timer(watch)
    last = check_last_sweep(settings, watch, first.ok)
    return [first, last] if last else [first]


def check_timer(watch: tuple[int, float] | None = None) -> Check:
    import os
    import sys
    import time

    from .. import timer

    try:
        kind, active, detail = timer.installed()
    except GuardError as e:
        return Check("timer", False, e.message, "claude-guard install --timer")
    if watch and (kind is None or not active):
        pid, since = watch
        return Check("timer", True, f"{detail}; `claude-guard reap --watch` runs as PID {pid} (for "
                                    f"{_ago(time.time() - since)}) and sweeps instead")
    if kind is None:
        why = timer.no_systemd() if os.name == "posix" and sys.platform != "darwin" else None
        if why and not timer.has_crontab():
            return Check("timer", False, f"{detail}: no systemd user manager answers here ({why}) and there is no "
                                         "crontab (nothing ends leaked sessions unattended)",
                         "run `claude-guard reap --watch` where it stays up (a tmux window, your desktop's "
                         "autostart)")
        return Check("timer", False, detail + " (nothing ends leaked sessions unattended)",
                     "claude-guard install --timer   (or run `claude-guard reap --watch` where it stays up)")
    if not active:
        return Check("timer", False, detail, timer.start_hint(kind))
    drift = timer.env_drift()
    if drift:
        return Check("timer", False, f"{detail}; it runs with other locations than this shell: {'; '.join(drift)}",
                     "claude-guard install --timer   (from the shell whose settings the sweeps should use)")
    if kind == "cron":
        why = timer.no_systemd()
        if why:
            detail += f" (instead of a systemd timer: {why}); check it: crontab -l"
    return Check("timer", True, detail)


def check_option_table(settings: Any) -> Check:
    """The installed CLI's --help against the option table the shim repairs arguments with (drift.py)."""
    import os
    import subprocess

    from .. import drift, resolve

    try:
        real = resolve.find_real_claude(settings.real_claude if settings else "", os.environ.get("PATH"), None)
        result = subprocess.run([real, "--help"], capture_output=True, text=True, timeout=20,
                                stdin=subprocess.DEVNULL, check=False)
    except (GuardError, OSError, subprocess.TimeoutExpired) as e:
        return Check("option table", False, f"not compared: no runnable real claude ({e})",
                     "fix the real claude check above")
    problems = drift.differences(result.stdout)
    if not problems:
        return Check("option table", True, f"option table matches {real} --help")
    return Check("option table", False, "differs from " + f"{real} --help: " + "; ".join(problems),
                 "update claude-guard; until then options it does not know pass through unrepaired")


def check_last_sweep(settings: Any, watch: tuple[int, float] | None, timer_ok: bool) -> Check | None:
    """From the state the sweeps leave: the timer's last run (`last-sweep.json`: when, exit status, what it
    said) and the last sweep of any kind (the ledger). None when there is nothing unattended to speak of."""
    import time

    from .. import timer

    now = time.time()
    record = timer.last_sweep()
    since_install = timer.installed_at()
    any_sweep = _last_any_sweep(settings)
    anything = f"; last sweep of any kind {_ago(now - any_sweep)} ago" if any_sweep else ""
    if record is not None and record["rc"] != 0:
        said = str(record.get("output") or "").strip().splitlines()
        what = said[-1].strip() if said else "no output"
        return Check("last sweep", False, f"the last unattended sweep, {_ago(now - float(record['started']))} ago, "
                                          f"failed (exit {record['rc']}): {what}",
                     f"fix what it names; every failed run is in {record.get('log') or timer.log_path()}")
    if since_install is not None and timer_ok and not watch:
        installed, interval = since_install
        latest = float(record["started"]) if record else installed
        if now - latest > 3 * interval + 120:
            ran = f"last ran {_ago(now - latest)} ago" if record else f"has not run once since it was installed " \
                                                                       f"{_ago(now - installed)} ago"
            return Check("last sweep", False, f"the timer (every {_ago(interval)}) {ran}",
                         "check that the scheduler runs (cron runs its lines only while a cron daemon runs; "
                         "`systemctl --user list-timers`); or run `claude-guard reap --watch` instead")
    if record is not None:
        return Check("last sweep", True, f"the last unattended sweep, {_ago(now - float(record['started']))} ago, "
                                         f"ended ok{anything}")
    if watch or since_install is not None:
        return Check("last sweep", True, f"no timer run recorded yet{anything or '; no sweep has run yet'}")
    return None


def _last_any_sweep(settings: Any) -> float:
    """When the last sweep of any kind (timer, watch, by hand) ran, from the ledger; 0 when never."""
    from .. import ledger, paths

    try:
        folder = settings.registry_dir() if settings else paths.state_dir()
        return float(ledger.load(folder)["counters"].get("last_sweep") or 0.0)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return 0.0


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _watch_process(settings: Any) -> tuple[int, float] | None:
    """(pid, start time) of the running `claude-guard reap --watch` (not a --dry-run one) that swept this
    state last, as the ledger names it (pid and start token, so a reused PID is not taken for it)."""
    from .. import ledger, paths, procs

    try:
        folder = settings.registry_dir() if settings else paths.state_dir()
        pid_text, _, start = str(ledger.load(folder)["counters"].get("swept_by") or "").partition(":")
        pid = int(pid_text)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not start or not procs.alive(pid, start):
        return None
    row = procs.read(pid)
    args = row.cmdline if row is not None else []
    if "--watch" not in args or "reap" not in args or "--dry-run" in args or "-n" in args:
        return None
    return pid, row.created if row is not None else 0.0
