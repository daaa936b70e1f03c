"""Running `claude-guard reap` unattended: a systemd user timer, a cron line, or a launchd agent.

Chosen in that order of preference: systemd where the user manager answers, launchd on macOS, cron where
there is a `crontab`. (The Windows scheduled task comes with the Windows side.)

Every location and command can be redirected, so tests never touch the real user's systemd, crontab or
launchd:
  CLAUDE_GUARD_TIMER          systemd | cron | launchd: use this backend, do not probe
  CLAUDE_GUARD_SYSTEMD_DIR    folder for the unit files (default $XDG_CONFIG_HOME/systemd/user)
  CLAUDE_GUARD_SYSTEMCTL      the systemctl command (default `systemctl`; always run with --user)
  CLAUDE_GUARD_CRONTAB        the crontab command (default `crontab`)
  CLAUDE_GUARD_LAUNCHD_DIR    folder for the agent plist (default ~/Library/LaunchAgents)
  CLAUDE_GUARD_LAUNCHCTL      the launchctl command (default `launchctl`)

The units and the plist run this very interpreter (`python -m claude_guard reap --quiet`), so the timer
keeps working whatever PATH the scheduler gives it. scripts/systemd/ holds the same units rendered for a
`pipx` install (`%h/.local/bin/claude-guard`), for people who install them by hand; a test keeps the two
in step (`SCRIPT_ARGV`, `SCRIPT_INTERVAL`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from .errors import ExitCode, GuardError

NAME = "claude-guard-reap"
LABEL = "dev.claude-guard.reap"  # launchd
CRON_MARK = "# claude-guard-reap (added by `claude-guard install --timer`)"

SERVICE = """\
# Written by `claude-guard install --timer`; `claude-guard uninstall` removes it.
[Unit]
Description=End leaked Claude Code sessions (claude-guard reap)

[Service]
Type=oneshot
ExecStart={command}
# A sweep reads /proc and signals only the user's own processes: low priority, no need to hurry.
Nice=10
IOSchedulingClass=idle
TimeoutStartSec=5min
"""

TIMER = """\
# Written by `claude-guard install --timer`; `claude-guard uninstall` removes it.
[Unit]
Description=Run claude-guard reap every {interval}

[Timer]
OnActiveSec={interval}
OnUnitActiveSec={interval}
AccuracySec=10s
Persistent=false

[Install]
WantedBy=timers.target
"""



SCRIPT_ARGV = ["%h/.local/bin/claude-guard", "reap", "--quiet"]
SCRIPT_INTERVAL = 300.0


def command() -> list[str]:
    """What the scheduler runs: this interpreter and this package."""
    return [sys.executable, "-m", "claude_guard", "reap", "--quiet"]


def systemd_interval(seconds: float) -> str:
    seconds = max(10, int(seconds))
    return f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s"


def render_units(argv: list[str], seconds: float, specifiers: bool = False) -> dict[str, str]:
    """The two unit files: {file name: content}. With `specifiers`, systemd's % specifiers in argv are kept
    (scripts/systemd/ uses `%h`, the home folder); otherwise every % is taken literally."""
    exec_start = " ".join(a if specifiers else _systemd_quote(a) for a in argv)
    return {f"{NAME}.service": SERVICE.format(command=exec_start),
            f"{NAME}.timer": TIMER.format(interval=systemd_interval(seconds))}


def _systemd_quote(arg: str) -> str:
    # systemd splits ExecStart like a shell, expands % specifiers and $VARIABLES: double both.
    escaped = arg.replace("%", "%%").replace("$", "$$")
    return shlex.quote(escaped) if any(c in escaped for c in " \t\"'\\;") else escaped


def cron_line(argv: list[str], seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        when = "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    else:
        hours = max(1, min(23, round(minutes / 60)))
        when = "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    # cron mails any output; the audit log already records every action.
    return f"{when} {shlex.join(argv)} >/dev/null 2>&1 {CRON_MARK}"


def render_plist(argv: list[str], seconds: float) -> bytes:
    import plistlib

    return plistlib.dumps({"Label": LABEL, "ProgramArguments": argv, "StartInterval": max(10, int(seconds)),
                           "RunAtLoad": True, "Nice": 10, "LowPriorityIO": True})


# ----------------------------------------------------------------------------------------------------
# Backends


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def systemd_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return _env("CLAUDE_GUARD_SYSTEMD_DIR", os.path.join(base, "systemd", "user"))


def launchd_dir() -> str:
    return _env("CLAUDE_GUARD_LAUNCHD_DIR", os.path.expanduser("~/Library/LaunchAgents"))


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: timed out")


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([*shlex.split(_env("CLAUDE_GUARD_SYSTEMCTL", "systemctl")), "--user", *args])


def _crontab(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run([*shlex.split(_env("CLAUDE_GUARD_CRONTAB", "crontab")), *args], stdin)


def _launchctl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([*shlex.split(_env("CLAUDE_GUARD_LAUNCHCTL", "launchctl")), *args])


def backend() -> str:
    """systemd, launchd or cron: what this machine runs timers with."""
    chosen = os.environ.get("CLAUDE_GUARD_TIMER", "").strip().lower()
    if chosen:
        if chosen not in ("systemd", "cron", "launchd"):
            raise GuardError(f"CLAUDE_GUARD_TIMER={chosen!r}: expected systemd, cron or launchd", ExitCode.CONFIG)
        return chosen
    if sys.platform == "darwin":
        return "launchd"
    if os.name == "nt":
        raise GuardError("install --timer: the Windows scheduled task is not available yet; run "
                         "`claude-guard reap --watch` at logon instead", ExitCode.FAILURE)
    if shutil.which("systemctl") and _systemctl("show-environment").returncode == 0:
        return "systemd"
    if shutil.which("crontab"):
        return "cron"
    raise GuardError("install --timer: neither a systemd user manager nor crontab was found; run "
                     "`claude-guard reap --watch` from your session's start-up instead", ExitCode.FAILURE)


def _write(path: str, content: str | bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(content.encode("utf-8") if isinstance(content, str) else content)
    os.replace(tmp, path)


def install(interval_seconds: float) -> list[str]:
    """Install (or replace) the timer; returns the lines to print."""
    kind = backend()
    argv = command()
    if kind == "systemd":
        folder = systemd_dir()
        for name, content in render_units(argv, interval_seconds).items():
            _write(os.path.join(folder, name), content)
        _systemctl("daemon-reload")
        result = _systemctl("enable", "--now", f"{NAME}.timer")
        if result.returncode != 0:
            raise GuardError(f"systemctl --user enable --now {NAME}.timer failed: {result.stderr.strip()}; the "
                             f"units are in {folder}", ExitCode.FAILURE)
        return [f"installed systemd user timer {NAME}.timer (every {systemd_interval(interval_seconds)}) in "
                f"{folder}", f"  check it: systemctl --user list-timers {NAME}.timer"]
    if kind == "launchd":
        path = os.path.join(launchd_dir(), f"{LABEL}.plist")
        _write(path, render_plist(argv, interval_seconds))
        domain = f"gui/{os.getuid()}"
        _launchctl("bootout", domain, path)  # a previous version of the agent, if loaded
        result = _launchctl("bootstrap", domain, path)
        if result.returncode != 0:
            raise GuardError(f"launchctl bootstrap failed: {result.stderr.strip()}; the agent is {path}",
                             ExitCode.FAILURE)
        return [f"installed launchd agent {LABEL} (every {max(10, int(interval_seconds))}s): {path}"]
    lines = [line for line in _current_crontab() if CRON_MARK not in line]
    lines.append(cron_line(argv, interval_seconds))
    result = _crontab("-", stdin="\n".join(lines) + "\n")
    if result.returncode != 0:
        raise GuardError(f"crontab - failed: {result.stderr.strip()}", ExitCode.FAILURE)
    return [f"installed a cron line (every {max(1, round(interval_seconds / 60))} min); see `crontab -l`"]


def _current_crontab() -> list[str]:
    result = _crontab("-l")
    return result.stdout.splitlines() if result.returncode == 0 else []  # "no crontab for user": rc 1


def uninstall() -> list[str]:
    """Remove whatever `install` put in place (every backend is checked); returns the lines to print."""
    out: list[str] = []
    folder = systemd_dir()
    unit_paths = [os.path.join(folder, name) for name in (f"{NAME}.timer", f"{NAME}.service")]
    if any(os.path.exists(p) for p in unit_paths):
        _systemctl("disable", "--now", f"{NAME}.timer")
        for path in unit_paths:
            if os.path.exists(path):
                os.unlink(path)
        _systemctl("daemon-reload")
        out.append(f"removed systemd user timer {NAME}.timer")
    plist = os.path.join(launchd_dir(), f"{LABEL}.plist")
    if os.path.exists(plist):
        if hasattr(os, "getuid"):
            _launchctl("bootout", f"gui/{os.getuid()}", plist)
        os.unlink(plist)
        out.append(f"removed launchd agent {LABEL}")
    if os.environ.get("CLAUDE_GUARD_CRONTAB") or shutil.which("crontab"):
        lines = _current_crontab()
        kept = [line for line in lines if CRON_MARK not in line]
        if len(kept) != len(lines):
            _crontab("-", stdin="\n".join(kept) + "\n" if kept else "")
            out.append("removed the claude-guard cron line")
    return out


def status() -> tuple[bool, bool, str]:
    """(installed, active, detail) for `claude-guard doctor`."""
    folder = systemd_dir()
    timer = os.path.join(folder, f"{NAME}.timer")
    if os.path.exists(timer):
        result = _systemctl("is-active", f"{NAME}.timer")
        state = result.stdout.strip() or result.stderr.strip() or f"rc {result.returncode}"
        return True, result.returncode == 0, f"systemd user timer {timer}: {state}"
    plist = os.path.join(launchd_dir(), f"{LABEL}.plist")
    if os.path.exists(plist):
        loaded = _launchctl("print", f"gui/{os.getuid()}/{LABEL}") if hasattr(os, "getuid") else None
        ok = loaded is not None and loaded.returncode == 0
        return True, ok, f"launchd agent {plist}: {'loaded' if ok else 'not loaded'}"
    if os.environ.get("CLAUDE_GUARD_CRONTAB") or shutil.which("crontab"):
        for line in _current_crontab():
            if CRON_MARK in line:
                return True, True, f"cron line: {line.split(' >/dev/null')[0]}"
    return False, False, "no timer installed"
