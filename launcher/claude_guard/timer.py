"""Running `claude-guard reap` unattended: a systemd user timer, a cron line, a launchd agent, or a Windows
scheduled task.

Chosen in that order of preference: systemd where the user manager answers, launchd on macOS, the Task
Scheduler on Windows, cron where there is a `crontab`.

Every location and command can be redirected, so tests never touch the real user's systemd, crontab,
launchd or Task Scheduler:
  CLAUDE_GUARD_TIMER          systemd | cron | launchd | schtasks: use this backend, do not probe
  CLAUDE_GUARD_SYSTEMD_DIR    folder for the unit files (default $XDG_CONFIG_HOME/systemd/user)
  CLAUDE_GUARD_SYSTEMCTL      the systemctl command (default `systemctl`; always run with --user)
  CLAUDE_GUARD_CRONTAB        the crontab command (default `crontab`)
  CLAUDE_GUARD_LAUNCHD_DIR    folder for the agent plist (default ~/Library/LaunchAgents)
  CLAUDE_GUARD_LAUNCHCTL      the launchctl command (default `launchctl`)
  CLAUDE_GUARD_SCHTASKS       the schtasks program, one path, never split (default
                              %SystemRoot%\\System32\\schtasks.exe; a Windows path is full of backslashes)

The units, the cron line and the plist run this very interpreter (`python -m claude_guard.timer`: one
`reap --quiet` whose outcome is kept, see `run_unattended`), so the timer keeps working whatever PATH the
scheduler gives it. A scheduler starts it with its own environment (cron: the passwd HOME, no XDG or
CLAUDE_CONFIG_DIR), so the variables that say where the config, the state and Claude's folder are, as
`install` saw them, are written into the unit, line or plist (`baked_env`). What a run prints goes to
`unattended.log` in the log folder, never to /dev/null, and how it ended to `last-sweep.json` in the state
folder, which `claude-guard doctor` reads. scripts/systemd/ holds the same units rendered for a
`pipx` install (`%h/.local/bin/claude-guard`), for people who install them by hand; a test keeps the two
in step (`SCRIPT_ARGV`, `SCRIPT_INTERVAL`). The scheduled task is the one windows/claude-guard-reap.xml
describes (windows/install.ps1 registers that file), rendered for this interpreter's pythonw.exe; a test
keeps the two in step as well.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = "claude-guard-reap"
LABEL = "dev.claude-guard.reap"  # launchd
CRON_MARK = "# claude-guard-reap (added by `claude-guard install --timer`)"
BACKENDS = ("systemd", "cron", "launchd", "schtasks")

SERVICE = """\
# Written by `claude-guard install --timer`; `claude-guard uninstall` removes it.
[Unit]
Description=End leaked Claude Code sessions (claude-guard reap)

[Service]
Type=oneshot
ExecStart={command}
{environment}# A sweep reads /proc and signals only the user's own processes: low priority, no need to hurry.
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

# The Task Scheduler definition (windows/claude-guard-reap.xml, whose comments say why each setting is so).
# pythonw.exe, so that no console window flashes up at every run; with no console, stdout and stderr go to
# NUL (the reaper keeps its own audit log). InteractiveToken: runs only while the user is logged on, as them,
# with no stored password.
TASK = """\
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Author>claude-guard</Author>
    <Description>{description}</Description>
    <URI>\\{name}</URI>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Repetition>
        <Interval>{interval}</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <StartBoundary>2024-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{user}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT4M</ExecutionTimeLimit>
    <Priority>7</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{program}</Command>
      <Arguments>{arguments}</Arguments>
    </Exec>
  </Actions>
</Task>
"""
TASK_ARGUMENTS = ("-c \"import os, sys; sys.stdout = sys.stderr = open(os.devnull, 'w'); sys.argv = ['claude-guard', "
                  "'reap', '--quiet']; from claude_guard.cli import main; sys.exit(main())\"")
TASK_DESCRIPTION = ("Runs `claude-guard reap` every {every}: ends this user's orphaned, duplicate and idle Claude "
                    "Code sessions with their process trees. Installed by `claude-guard install --timer`; removed "
                    "by `claude-guard uninstall`.")

SCRIPT_ARGV = ["%h/.local/bin/claude-guard", "reap", "--quiet"]
SCRIPT_INTERVAL = 300.0


def command() -> list[str]:
    """What the scheduler runs: this interpreter and this package, one `reap --quiet` kept track of."""
    return [sys.executable, "-m", "claude_guard.timer"]


# Where the config, the state, the log and Claude's own folder are: a scheduler does not inherit them.
LOCATION_VARIABLES = ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "CLAUDE_CONFIG_DIR",
                      "CLAUDE_GUARD_CONFIG")


def baked_env() -> dict[str, str]:
    """The variables the timer must run with to see what this shell sees: the locations above and every
    `CLAUDE_GUARD_<KEY>` setting (not the scheduler overrides, which only matter to install itself)."""
    from . import config

    names = [*LOCATION_VARIABLES, *("CLAUDE_GUARD_" + key.upper() for key in config.KEYS)]
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def log_path() -> str:
    from . import paths

    return os.path.join(paths.log_dir(), "unattended.log")


def state_path() -> str:
    from . import paths

    return os.path.join(paths.state_dir(), LAST_SWEEP)


LAST_SWEEP = "last-sweep.json"
LOG_LIMIT = 1 << 20  # the log is rotated (one old copy kept) past this size


def run_unattended() -> int:
    """One `claude-guard reap --quiet` as a scheduler runs it: its output is appended to `unattended.log`
    (with the time and the exit status) instead of being lost, and how it ended is written to
    `last-sweep.json` for `doctor`. Prints nothing itself (cron would mail it; the log has it)."""
    import contextlib
    import io
    import time

    from . import jsonio
    from .cli import main

    started = time.time()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        code = main(["reap", "--quiet"])
    text = captured.getvalue().strip()
    record = {"started": started, "ended": time.time(), "rc": code, "pid": os.getpid(),
              "output": text[-4000:], "log": log_path()}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))
    try:
        if text or code != 0:
            _append_log(f"{stamp} reap rc {code}\n" + "".join(f"  {line}\n" for line in text.splitlines()))
        _write_private(state_path(), jsonio.dumps(record) + "\n")
    except OSError as e:
        sys.stderr.write(f"claude-guard: unattended sweep (rc {code}) could not be recorded: {e}\n{text}\n")
    return code


def _append_log(text: str) -> None:
    path = log_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        if os.path.getsize(path) > LOG_LIMIT:
            os.replace(path, path + ".1")
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def _write_private(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def last_sweep() -> dict[str, Any] | None:
    """What `run_unattended` last recorded, or None (never ran, or unreadable)."""
    from . import jsonio

    try:
        with open(state_path(), "rb") as f:
            data = jsonio.loads(f.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("rc"), int) else None


def systemd_interval(seconds: float) -> str:
    seconds = max(10, int(seconds))
    return f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s"


def render_units(argv: list[str], seconds: float, specifiers: bool = False,
                 env: dict[str, str] | None = None) -> dict[str, str]:
    """The two unit files: {file name: content}. With `specifiers`, systemd's % specifiers in argv are kept
    (scripts/systemd/ uses `%h`, the home folder); otherwise every % is taken literally. `env`: Environment=
    lines for the service."""
    exec_start = " ".join(a if specifiers else _systemd_quote(a) for a in argv)
    environment = "".join(f'Environment="{_systemd_env(name, value)}"\n' for name, value in (env or {}).items())
    return {f"{NAME}.service": SERVICE.format(command=exec_start, environment=environment),
            f"{NAME}.timer": TIMER.format(interval=systemd_interval(seconds))}


def _systemd_env(name: str, value: str) -> str:
    # Inside a double-quoted Environment= assignment: backslash and quote are escaped, % is a specifier.
    return f"{name}={value}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _systemd_quote(arg: str) -> str:
    # systemd splits ExecStart like a shell, expands % specifiers and $VARIABLES: double both.
    escaped = arg.replace("%", "%%").replace("$", "$$")
    return shlex.quote(escaped) if any(c in escaped for c in " \t\"'\\;") else escaped


def cron_line(argv: list[str], seconds: float, env: dict[str, str] | None = None, log: str | None = None) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        when = "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    else:
        hours = max(1, min(23, round(minutes / 60)))
        when = "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    # cron runs the line with /bin/sh and the passwd HOME only: the locations are set on the line itself. What
    # the run cannot record itself (its Python gone, say) goes to the log, not to cron's mail or /dev/null.
    # cron turns % into a newline unless escaped.
    assignments = [f"{name}={shlex.quote(value)}" for name, value in (env or {}).items()]
    words = (["env", *assignments] if assignments else []) + [shlex.quote(a) for a in argv]
    sink = f">>{shlex.quote(log)} 2>&1" if log else ">/dev/null 2>&1"
    return f"{when} {' '.join(words)} {sink} {CRON_MARK}".replace("%", "\\%")


def task_minutes(seconds: float) -> int:
    """The task's repetition in whole minutes: Task Scheduler repeats from 1 minute up to 31 days."""
    return max(1, min(31 * 24 * 60, round(seconds / 60)))


def task_program() -> str:
    """pythonw.exe beside this interpreter (no console window), else this interpreter itself."""
    folder, name = os.path.split(sys.executable)
    windowless = os.path.join(folder, name.lower().replace("python", "pythonw", 1))
    return windowless if name.lower().startswith("python") and os.path.isfile(windowless) else sys.executable


def render_task(user: str, program: str, seconds: float, description: str | None = None) -> str:
    """The scheduled task's XML, for account `user` (a name or a SID) running `program` (a Python)."""
    from xml.sax.saxutils import escape

    minutes = task_minutes(seconds)
    every = "minute" if minutes == 1 else f"{minutes} minutes"
    text = description if description is not None else TASK_DESCRIPTION.format(every=every)
    return TASK.format(description=escape(text), name=NAME, interval=f"PT{minutes}M", user=escape(user),
                       program=escape(program), arguments=escape(TASK_ARGUMENTS))


def render_plist(argv: list[str], seconds: float, env: dict[str, str] | None = None, log: str | None = None) -> bytes:
    import plistlib

    agent: dict[str, Any] = {"Label": LABEL, "ProgramArguments": argv, "StartInterval": max(10, int(seconds)),
                             "RunAtLoad": True, "Nice": 10, "LowPriorityIO": True}
    if env:
        agent["EnvironmentVariables"] = dict(env)
    if log:
        agent["StandardOutPath"] = agent["StandardErrorPath"] = log
    return plistlib.dumps(agent)


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


def _gui_domain() -> str:
    """launchd's domain of this user's GUI session."""
    if sys.platform == "win32":
        raise GuardError("CLAUDE_GUARD_TIMER=launchd: launchd agents are for macOS", ExitCode.CONFIG)
    return f"gui/{os.getuid()}"


def _schtasks_program() -> str:
    # By full path: a schtasks.exe earlier on PATH (or in the current folder) must not be the one run.
    root = os.environ.get("SYSTEMROOT") or r"C:\Windows"  # Windows' environment ignores case
    return os.environ.get("CLAUDE_GUARD_SCHTASKS") or os.path.join(root, "System32", "schtasks.exe")


def _schtasks(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([_schtasks_program(), *args])


def _schtasks_here() -> bool:
    """Whether to look for the scheduled task at all: on Windows, or when a test points at a stand-in."""
    return os.name == "nt" or bool(os.environ.get("CLAUDE_GUARD_SCHTASKS"))


def _task_state() -> tuple[bool, bool, str]:
    """(registered, enabled, detail) of the scheduled task, from its XML (schtasks' other output formats
    are in the user's language)."""
    import re

    result = _schtasks("/Query", "/TN", NAME, "/XML")
    if result.returncode != 0:
        return False, False, result.stderr.strip() or f"rc {result.returncode}"
    settings = re.search(r"<Settings>(.*?)</Settings>", result.stdout, re.S)
    body = re.sub(r"<IdleSettings>.*?</IdleSettings>", "", settings.group(1), flags=re.S) if settings else ""
    enabled = not re.search(r"<Enabled>\s*false\s*</Enabled>", body)
    return True, enabled, "enabled" if enabled else "disabled"


def _exists(variable: str, default: str) -> bool:
    """Whether the scheduler command (as configured by `variable`) can be found at all."""
    argv = shlex.split(_env(variable, default))
    return bool(argv) and shutil.which(argv[0]) is not None


def no_systemd() -> str | None:
    """None when a systemd user manager answers; else why not, in a few words (for install and doctor)."""
    if not _exists("CLAUDE_GUARD_SYSTEMCTL", "systemctl"):
        return "no systemctl"
    result = _systemctl("show-environment")
    if result.returncode == 0:
        return None
    detail = (result.stderr.strip() or result.stdout.strip() or f"rc {result.returncode}").splitlines()[0]
    return f"systemctl --user: {detail}"


def has_crontab() -> bool:
    return _exists("CLAUDE_GUARD_CRONTAB", "crontab")


def backend() -> str:
    """systemd, launchd, schtasks or cron: what this machine runs timers with."""
    chosen = os.environ.get("CLAUDE_GUARD_TIMER", "").strip().lower()
    if chosen:
        if chosen not in BACKENDS:
            raise GuardError(f"CLAUDE_GUARD_TIMER={chosen!r}: expected systemd, cron, launchd or schtasks",
                             ExitCode.CONFIG)
        return chosen
    if sys.platform == "darwin":
        return "launchd"
    if os.name == "nt":
        return "schtasks"
    why = no_systemd()
    if why is None:
        return "systemd"
    if has_crontab():
        return "cron"
    raise GuardError(f"install --timer: NO timer was installed: no systemd user manager answers here ({why}) and "
                     "there is no crontab. Nothing ends leaked sessions unattended until you run `claude-guard reap "
                     "--watch` where it stays up (a tmux window, your desktop's autostart); `claude-guard doctor` "
                     "checks for it", ExitCode.FAILURE)


def _write(path: str, content: str | bytes) -> None:
    from . import files

    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.atomic_write(path, content.encode("utf-8") if isinstance(content, str) else content, mode=0o644)


def install(interval_seconds: float) -> list[str]:
    """Install (or replace) the timer; returns the lines to print."""
    kind = backend()
    argv = command()
    env = baked_env()
    log = log_path()
    lines = _install(kind, argv, env, log, interval_seconds)
    if kind != "schtasks":
        lines.append(f"  it runs with {', '.join(f'{k}={v}' for k, v in env.items()) or 'the scheduler environment'}; "
                     f"what it prints goes to {log}; `claude-guard doctor` shows how its last run ended")
    _write_private(os.path.join(os.path.dirname(state_path()), INSTALLED),
                   json.dumps({"backend": kind, "interval": interval_seconds, "installed": time.time(),
                               "env": env}) + "\n")
    return lines


INSTALLED = "timer.json"


def env_drift() -> list[str]:
    """How the environment written into the timer differs from this one's (`NAME=then (now: now)`): the timer
    sees another config, state or Claude folder than this shell. Empty when they agree or nothing is known."""
    try:
        with open(os.path.join(os.path.dirname(state_path()), INSTALLED), encoding="utf-8") as f:
            then = json.load(f)["env"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(then, dict):
        return []
    now = baked_env()
    return [f"{name}={then.get(name) or '(unset)'} (now: {now.get(name) or '(unset)'})"
            for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]


def installed_at() -> tuple[float, float] | None:
    """(when, interval seconds) of the last `install --timer`, or None."""
    try:
        with open(os.path.join(os.path.dirname(state_path()), INSTALLED), encoding="utf-8") as f:
            data = json.load(f)
        return float(data["installed"]), float(data["interval"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _install(kind: str, argv: list[str], env: dict[str, str], log: str, interval_seconds: float) -> list[str]:
    os.makedirs(os.path.dirname(log), mode=0o700, exist_ok=True)
    if kind == "systemd":
        folder = systemd_dir()
        for name, content in render_units(argv, interval_seconds, env=env).items():
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
        _write(path, render_plist(argv, interval_seconds, env, log))
        domain = _gui_domain()
        _launchctl("bootout", domain, path)  # a previous version of the agent, if loaded
        result = _launchctl("bootstrap", domain, path)
        if result.returncode != 0:
            raise GuardError(f"launchctl bootstrap failed: {result.stderr.strip()}; the agent is {path}",
                             ExitCode.FAILURE)
        return [f"installed launchd agent {LABEL} (every {max(10, int(interval_seconds))}s): {path}"]
    if kind == "schtasks":
        return _install_task(interval_seconds)
    lines = [line for line in _current_crontab() if CRON_MARK not in line]
    lines.append(cron_line(argv, interval_seconds, env, log))
    result = _crontab("-", stdin="\n".join(lines) + "\n")
    if result.returncode != 0:
        raise GuardError(f"crontab - failed: {result.stderr.strip()}", ExitCode.FAILURE)
    every = f"every {max(1, round(interval_seconds / 60))} min"
    why = no_systemd() if os.environ.get("CLAUDE_GUARD_TIMER", "").strip().lower() != "cron" else None
    first = (f"no systemd user manager answers here ({why}), so a cron line was installed instead ({every})" if why
             else f"installed a cron line ({every})")
    return [first, f"  check it: crontab -l | grep {NAME}   (cron runs it only while a cron daemon is running)"]


def _install_task(interval_seconds: float) -> list[str]:
    import tempfile

    import psutil

    xml = render_task(psutil.Process().username(), task_program(), interval_seconds)
    with tempfile.TemporaryDirectory(prefix="claude-guard-") as folder:
        path = os.path.join(folder, f"{NAME}.xml")
        with open(path, "w", encoding="utf-16") as f:  # with a BOM, as Task Scheduler writes its own exports
            f.write(xml)
        # /F replaces an earlier registration, so a new interpreter or interval takes effect.
        result = _schtasks("/Create", "/TN", NAME, "/XML", path, "/F")
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip() or f"rc {result.returncode}").splitlines()[0]
        raise GuardError(f"schtasks /Create failed: {detail}", ExitCode.FAILURE)
    minutes = task_minutes(interval_seconds)
    return [f"installed scheduled task \\{NAME} (every {minutes} min), running {task_program()}",
            f"  check it: schtasks /Query /TN {NAME}"]


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
    if _schtasks_here() and _task_state()[0]:
        result = _schtasks("/Delete", "/TN", NAME, "/F")
        if result.returncode != 0:
            raise GuardError(f"schtasks /Delete /TN {NAME} failed: {result.stderr.strip()}", ExitCode.FAILURE)
        out.append(f"removed scheduled task \\{NAME}")
    if os.environ.get("CLAUDE_GUARD_CRONTAB") or shutil.which("crontab"):
        lines = _current_crontab()
        kept = [line for line in lines if CRON_MARK not in line]
        if len(kept) != len(lines):
            _crontab("-", stdin="\n".join(kept) + "\n" if kept else "")
            out.append("removed the claude-guard cron line")
    return out


def status() -> tuple[bool, bool, str]:
    """(installed, active, detail) for `claude-guard doctor`."""
    kind, active, detail = installed()
    return kind is not None, active, detail


def installed() -> tuple[str | None, bool, str]:
    """(backend or None, active, detail): which timer is installed, checked in `uninstall`'s order."""
    folder = systemd_dir()
    timer = os.path.join(folder, f"{NAME}.timer")
    if os.path.exists(timer):
        result = _systemctl("is-active", f"{NAME}.timer")
        state = result.stdout.strip() or result.stderr.strip() or f"rc {result.returncode}"
        return "systemd", result.returncode == 0, f"systemd user timer {timer}: {state}"
    plist = os.path.join(launchd_dir(), f"{LABEL}.plist")
    if os.path.exists(plist):
        loaded = _launchctl("print", f"gui/{os.getuid()}/{LABEL}") if hasattr(os, "getuid") else None
        ok = loaded is not None and loaded.returncode == 0
        return "launchd", ok, f"launchd agent {plist}: {'loaded' if ok else 'not loaded'}"
    if _schtasks_here():
        registered, enabled, state = _task_state()
        if registered:
            return "schtasks", enabled, f"scheduled task \\{NAME}: {state}"
    if os.environ.get("CLAUDE_GUARD_CRONTAB") or shutil.which("crontab"):
        for line in _current_crontab():
            if CRON_MARK in line:
                return "cron", True, f"cron line: {line.split(' >')[0]}"
    return None, False, "no timer installed"


def start_hint(kind: str | None) -> str:
    """The command that starts an installed but inactive timer."""
    again = "(or run `claude-guard install --timer` again)"
    if kind == "launchd":
        return f"launchctl bootstrap gui/$(id -u) {os.path.join(launchd_dir(), LABEL + '.plist')} {again}"
    if kind == "schtasks":
        return f"schtasks /Change /TN {NAME} /ENABLE {again}"
    if kind == "systemd":
        return f"systemctl --user enable --now {NAME}.timer {again}"
    return "claude-guard install --timer"


if __name__ == "__main__":
    sys.exit(run_unattended())
