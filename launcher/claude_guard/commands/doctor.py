"""`claude-guard doctor`: is the guard in place and working? Each problem comes with its fix."""

from __future__ import annotations

import argparse

from .. import output
from ..errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import Settings


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
            return Check("shim", True, f"{candidate} is the first claude on PATH")
        advice = path_advice(default_dir()) or "claude-guard install"
        return Check("shim", False, f"the first claude on PATH is {candidate}, not the claude-guard shim",
                     f"run `claude-guard install`, and put its folder first on PATH: {advice}")
    return Check("shim", False, "no claude on PATH at all", "run `claude-guard install` and add its folder to PATH")


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
        result = subprocess.run([real, "--version"], capture_output=True, text=True, timeout=20,
                                stdin=subprocess.DEVNULL, check=False)
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
    if problem or stat.S_IMODE(fst.st_mode) & 0o077:
        return [Check("registry", False, f"{path} is {problem or f'mode {stat.S_IMODE(fst.st_mode):o}'}",
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


def check_timer() -> Check:
    from .. import timer

    try:
        kind, active, detail = timer.installed()
    except GuardError as e:
        return Check("timer", False, e.message, "claude-guard install --timer")
    if kind is None:
        return Check("timer", False, detail + " (nothing ends leaked sessions unattended)",
                     "claude-guard install --timer   (or run `claude-guard reap --watch` yourself)")
    if not active:
        return Check("timer", False, detail, timer.start_hint(kind))
    return Check("timer", True, detail)
