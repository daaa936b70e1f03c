"""The reap timer: systemd units (checked by systemd-analyze where it exists), cron, launchd.

Every scheduler command is a fake recording its calls, and every location is in tmp: nothing here touches
the real user's systemd, crontab or launchd.
"""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from claude_guard import timer

REPO = Path(__file__).resolve().parent.parent

FAKE = r'''#!{python}
import os, sys
log, store = os.environ["FAKE_LOG"], os.environ["FAKE_STORE"]
with open(log, "a") as f:
    f.write(" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
args = sys.argv[1:]
if os.path.basename(sys.argv[0]) == "crontab":
    if args == ["-l"]:
        if not os.path.exists(store):
            sys.exit("no crontab for user")
        sys.stdout.write(open(store).read())
    elif args == ["-"]:
        open(store, "w").write(sys.stdin.read())
elif "is-active" in args:
    print("active")
'''


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "crontab", "launchctl"):
        path = bin_dir / name
        path.write_text(FAKE.replace("{python}", sys.executable))
        path.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_STORE", str(tmp_path / "crontab.txt"))
    monkeypatch.setenv("CLAUDE_GUARD_SYSTEMCTL", str(bin_dir / "systemctl"))
    monkeypatch.setenv("CLAUDE_GUARD_CRONTAB", str(bin_dir / "crontab"))
    monkeypatch.setenv("CLAUDE_GUARD_LAUNCHCTL", str(bin_dir / "launchctl"))
    monkeypatch.setenv("CLAUDE_GUARD_SYSTEMD_DIR", str(tmp_path / "systemd"))
    monkeypatch.setenv("CLAUDE_GUARD_LAUNCHD_DIR", str(tmp_path / "LaunchAgents"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def calls(tmp: Path) -> list[str]:
    path = tmp / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def test_scripts_units_are_the_rendered_ones() -> None:
    rendered = timer.render_units(timer.SCRIPT_ARGV, timer.SCRIPT_INTERVAL, specifiers=True)
    for name, text in rendered.items():
        assert (REPO / "scripts" / "systemd" / name).read_text() == text, f"scripts/systemd/{name} is out of date"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("seconds", [300, 90, 3600])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, seconds: int) -> None:
    for name, text in timer.render_units(timer.command(), seconds).items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / f"{timer.NAME}.timer"),
                        str(tmp_path / f"{timer.NAME}.service")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert timer.NAME not in r.stderr, r.stderr  # no warning about our units either


def test_systemd_install_status_uninstall(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "systemd")
    lines = timer.install(120)
    assert "every 2min" in lines[0]
    service = (fakes / "systemd" / f"{timer.NAME}.service").read_text()
    assert f"ExecStart={sys.executable} -m claude_guard.timer" in service
    assert f'Environment="HOME={os.environ["HOME"]}"' in service  # the scheduler does not inherit it
    assert "OnUnitActiveSec=2min" in (fakes / "systemd" / f"{timer.NAME}.timer").read_text()
    assert calls(fakes) == ["systemctl --user daemon-reload", f"systemctl --user enable --now {timer.NAME}.timer"]
    installed, active, detail = timer.status()
    assert installed and active and "active" in detail
    assert timer.uninstall() == [f"removed systemd user timer {timer.NAME}.timer"]
    assert not list((fakes / "systemd").iterdir())
    assert f"systemctl --user disable --now {timer.NAME}.timer" in calls(fakes)
    assert timer.status()[0] is False


def test_cron_keeps_the_users_own_lines(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "cron")
    (fakes / "crontab.txt").write_text("0 3 * * * backup.sh\n")
    timer.install(300)
    timer.install(600)  # again: replaces our line, never adds a second one
    lines = (fakes / "crontab.txt").read_text().splitlines()
    assert lines[0] == "0 3 * * * backup.sh" and len(lines) == 2
    assert lines[1].startswith("*/10 * * * * env HOME=") and "-m claude_guard.timer >>" in lines[1]
    assert "/dev/null" not in lines[1] and lines[1].split(" >>")[1].split()[0].endswith("unattended.log")
    assert timer.status()[:2] == (True, True)
    assert timer.uninstall() == ["removed the claude-guard cron line"]
    assert (fakes / "crontab.txt").read_text() == "0 3 * * * backup.sh\n"
    assert timer.cron_line(["x"], 30).startswith("* * * * * ") and timer.cron_line(["x"], 7200).startswith("0 */2 ")


def test_launchd_agent(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "launchd")
    timer.install(300)
    plist = fakes / "LaunchAgents" / f"{timer.LABEL}.plist"
    data = plistlib.loads(plist.read_bytes())
    assert data["Label"] == timer.LABEL and data["StartInterval"] == 300
    assert data["ProgramArguments"] == timer.command()
    assert any(c.startswith("launchctl bootstrap gui/") for c in calls(fakes))
    assert timer.uninstall() == [f"removed launchd agent {timer.LABEL}"]
    assert not plist.exists()


def test_install_and_uninstall_commands(fakes: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CLAUDE_GUARD_TIMER": "systemd", "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(tmp_path / "shim"), "--timer",
                        "--interval", "10m"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "installed systemd user timer" in r.stdout and "every 10min" in r.stdout
    r = subprocess.run([sys.executable, "-m", "claude_guard", "uninstall", "--dir", str(tmp_path / "shim")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "removed systemd user timer" in r.stdout
    assert not (fakes / "systemd" / f"{timer.NAME}.timer").exists()


def test_unknown_backend_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "at")
    with pytest.raises(timer.GuardError) as e:
        timer.backend()
    assert e.value.exit_code == timer.ExitCode.CONFIG


def _no_user_manager(fakes: Path) -> Path:
    """A systemctl that answers as it does in a container or an ssh session without a user manager."""
    path = fakes / "bin" / "systemctl-nobus"
    path.write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def _cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            **env}
    full.pop("CLAUDE_GUARD_TIMER", None)
    return subprocess.run([sys.executable, "-m", "claude_guard", *args], env=full, capture_output=True, text=True,
                          timeout=60)


def test_without_a_user_manager_install_says_it_used_cron_and_doctor_agrees(fakes: Path, tmp_path: Path) -> None:
    env = {"CLAUDE_GUARD_SYSTEMCTL": str(_no_user_manager(fakes))}
    r = _cli(tmp_path, "install", "--dir", str(tmp_path / "shim"), "--timer", env=env)
    assert r.returncode == 0, r.stderr
    assert "no systemd user manager answers here (systemctl --user: Failed to connect to bus" in r.stdout
    assert "a cron line was installed instead (every 5 min)" in r.stdout
    assert "check it: crontab -l | grep claude-guard-reap" in r.stdout
    assert timer.CRON_MARK in (fakes / "crontab.txt").read_text()
    r = _cli(tmp_path, "doctor", "--json", env=env)
    import json

    found = {c["check"]: c for c in json.loads(r.stdout)}
    assert "cron line" in found["timer"]["detail"] and "instead of a systemd timer" in found["timer"]["detail"]


def test_without_a_user_manager_or_crontab_install_says_nothing_was_installed(fakes: Path, tmp_path: Path) -> None:
    env = {"CLAUDE_GUARD_SYSTEMCTL": str(_no_user_manager(fakes)), "CLAUDE_GUARD_CRONTAB": str(fakes / "no-crontab")}
    r = _cli(tmp_path, "install", "--dir", str(tmp_path / "shim"), "--timer", env=env)
    assert r.returncode == 1
    assert "installed the claude shim" in r.stdout  # the shim itself is in place
    errors = [line for line in r.stderr.splitlines() if "note:" not in line]  # (the checkout note aside)
    assert len(errors) == 1 and "NO timer was installed" in errors[0] and "reap --watch" in errors[0]
    r = _cli(tmp_path, "doctor", "--json", env=env)
    import json

    found = {c["check"]: c for c in json.loads(r.stdout)}
    assert not found["timer"]["ok"]
    assert "no crontab" in found["timer"]["detail"] and "reap --watch" in found["timer"]["fix"]


class Scheduled:
    """A user who ran `install --timer` (cron, the fake crontab) from a shell with its own HOME, XDG folders and
    CLAUDE_CONFIG_DIR; the installed line is then run the way cron runs it."""

    def __init__(self, fakes: Path) -> None:
        self.home = fakes / "home"
        self.config = self.home / ".config" / "claude-guard" / "config.toml"
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.env = {**os.environ, "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
                    "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                    "CLAUDE_CONFIG_DIR": str(self.home / ".claude"), "CLAUDE_GUARD_TIMER": "cron",
                    # this sweep must never end anything of the machine's other Claude processes
                    "CLAUDE_GUARD_PROTECT": "/", "CLAUDE_GUARD_MIN_AGE": "3650d"}
        self.config.parent.mkdir(parents=True)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "claude_guard", *args], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def cron_command(self, fakes: Path) -> str:
        line = next(x for x in (fakes / "crontab.txt").read_text().splitlines() if timer.CRON_MARK in x)
        return line.split(" ", 5)[5]  # what cron hands to /bin/sh (the mark is a shell comment)

    def run_as_cron(self, fakes: Path) -> subprocess.CompletedProcess[str]:
        # cron's environment: the passwd HOME (here: another folder), a minimal PATH, nothing else
        elsewhere = fakes / "passwd-home"
        elsewhere.mkdir(exist_ok=True)
        return subprocess.run(["/bin/sh", "-c", self.cron_command(fakes)], capture_output=True, text=True,
                              timeout=300, env={"HOME": str(elsewhere), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"})


def test_a_cron_run_sees_the_installing_shells_config_and_records_how_it_ended(fakes: Path) -> None:
    user = Scheduled(fakes)
    user.config.write_text("interval = 30\n")
    r = user.cli("install", "--dir", str(fakes / "shim"), "--timer")
    assert r.returncode == 0, r.stderr
    assert f"CLAUDE_CONFIG_DIR={user.home / '.claude'}" in r.stdout and "unattended.log" in r.stdout
    r = user.run_as_cron(fakes)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    record = json.loads((user.state / "last-sweep.json").read_text())
    assert record["rc"] == 0
    assert not (fakes / "passwd-home" / ".local").exists()  # nothing went to the scheduler's HOME
    found = doctor_checks(user)
    assert found["last sweep"]["ok"] and "ended ok" in found["last sweep"]["detail"]
    assert found["timer"]["ok"]
    # a shell that now points Claude elsewhere: the timer still sweeps with the old folder, and doctor says so
    user.env["CLAUDE_CONFIG_DIR"] = str(fakes / "other-claude")
    timer_check = doctor_checks(user)["timer"]
    assert not timer_check["ok"] and f"CLAUDE_CONFIG_DIR={user.home / '.claude'} (now: {fakes / 'other-claude'})" in \
        timer_check["detail"]
    assert "install --timer" in timer_check["fix"]


def test_a_config_error_in_an_unattended_run_is_logged_and_named_by_doctor(fakes: Path) -> None:
    user = Scheduled(fakes)
    user.cli("install", "--dir", str(fakes / "shim"), "--timer")
    user.config.write_text('grace = "soon"\n')  # broken after the install: the next run must not fail silently
    r = user.run_as_cron(fakes)
    assert r.stdout == "" and r.stderr == ""  # cron would mail it; the log has it
    record = json.loads((user.state / "last-sweep.json").read_text())
    assert record["rc"] != 0 and "grace" in record["output"]
    log = (user.state / "log" / "unattended.log").read_text()
    assert f"reap rc {record['rc']}" in log and str(user.config) in log
    found = doctor_checks(user)
    last = found["last sweep"]
    assert not last["ok"] and f"failed (exit {record['rc']})" in last["detail"] and "grace" in last["detail"]
    assert "unattended.log" in last["fix"]


def test_what_a_run_cannot_record_itself_still_reaches_the_log(fakes: Path, tmp_path: Path) -> None:
    """The line's interpreter is gone (a moved venv): sh's own error goes to the log, not to /dev/null."""
    user = Scheduled(fakes)
    user.cli("install", "--dir", str(fakes / "shim"), "--timer")
    command = user.cron_command(fakes).replace(shlex.quote(sys.executable), str(tmp_path / "gone" / "python"))
    subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert "gone/python" in (user.state / "log" / "unattended.log").read_text()


def test_doctor_says_when_an_installed_timer_never_ran(fakes: Path) -> None:
    """A cron line in a container without a cron daemon: installed, never run."""
    user = Scheduled(fakes)
    user.cli("install", "--dir", str(fakes / "shim"), "--timer")
    assert doctor_checks(user)["last sweep"]["ok"]  # just installed: nothing to say yet
    installed = user.state / "timer.json"
    data = json.loads(installed.read_text())
    data["installed"] -= 3600  # an hour later
    installed.write_text(json.dumps(data))
    last = doctor_checks(user)["last sweep"]
    assert not last["ok"] and "has not run once since it was installed 1h ago" in last["detail"]
    assert "cron daemon" in last["fix"]


def doctor_checks(user: Scheduled) -> dict[str, dict[str, str]]:
    r = user.cli("doctor", "--json")
    return {c["check"]: c for c in json.loads(r.stdout)}
