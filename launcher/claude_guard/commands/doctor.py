"""`claude-guard doctor`: is the guard in place and working? Each problem comes with its fix."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
    try:
        from .. import config

        settings = config.load()
        checks.append(Check("config", True, f"valid ({config_path()})"))
    except GuardError as e:
        checks.append(Check("config", False, e.message, "fix the value named above, or remove the file or "
                                                        "variable to use the defaults"))
    checks.append(check_shim())
    checks.append(check_real_claude(settings))
    checks.extend(check_registry(settings))
    checks.append(check_timer())
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


def _claudes_on_path() -> list[str]:
    """The claude a shell would start (at most one)."""
    import os

    if os.name == "nt":
        # Windows finds claude.exe, claude.cmd, ... with PATHEXT, as the console does.
        from ..win import pathext

        found = pathext.which("claude", os.environ.get("PATH", ""), os.environ.get("PATHEXT", ""), lambda _: False)
        return [found] if found else []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder or ".", "claude")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    return []


def check_real_claude(settings: Any) -> Check:
    import os
    import subprocess

    from .. import resolve

    try:
        real = resolve.find_real_claude(settings.real_claude if settings else "", os.environ.get("PATH"), None)
    except GuardError as e:
        return Check("real claude", False, e.message, "install Claude Code, or set real_claude in the config")
    try:
        result = subprocess.run([real, "--version"], capture_output=True, text=True, timeout=20,
                                stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check("real claude", False, f"{real} does not run ({e})", "reinstall Claude Code")
    version = (result.stdout.strip() or result.stderr.strip()).splitlines()[:1]
    if result.returncode != 0:
        return Check("real claude", False, f"{real} --version failed ({result.returncode}): {' '.join(version)}",
                     "reinstall Claude Code")
    return Check("real claude", True, f"{real}: {' '.join(version) or 'version unknown'}")


def check_registry(settings: Any) -> list[Check]:
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
    if problem or stat.S_IMODE(fst.st_mode) & 0o077:
        return [Check("registry", False, f"{path} is {problem or f'mode {stat.S_IMODE(fst.st_mode):o}'}",
                      f"chmod 600 {path}, or remove it (it is rebuilt)")]
    return [_parse_registry(path, "private")]


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
    return [_parse_registry(path, "access by the folder's ACL")]


def _parse_registry(path: str, note: str) -> Check:
    from .. import jsonio

    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read().decode("utf-8"))
        entries = len(data["sessions"])
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
        return Check("registry", False, f"{path} is unreadable ({e})",
                     "remove it; the next launch starts a new registry")
    return Check("registry", True, f"{path}: {entries} entr{'ies' if entries != 1 else 'y'}, {note}")


def check_timer() -> Check:
    import os
    import sys

    from .. import timer

    try:
        kind, active, detail = timer.installed()
    except GuardError as e:
        return Check("timer", False, e.message, "claude-guard install --timer")
    if kind is None:
        why = timer.no_systemd() if os.name == "posix" and sys.platform != "darwin" else None
        if why and not timer.has_crontab():
            return Check("timer", False, f"{detail}: no systemd user manager answers here ({why}) and there is no "
                                         "crontab (nothing ends leaked sessions unattended)",
                         "run `claude-guard reap --watch` where it stays up (a tmux window, your desktop's "
                         "autostart)")
        return Check("timer", False, detail + " (nothing ends leaked sessions unattended)",
                     "claude-guard install --timer   (or run `claude-guard reap --watch` yourself)")
    if not active:
        return Check("timer", False, detail, timer.start_hint(kind))
    if kind == "cron":
        why = timer.no_systemd()
        if why:
            detail += f" (instead of a systemd timer: {why}); check it: crontab -l"
    return Check("timer", True, detail)
