"""`claude-guard doctor`: every check passes on a good install; each broken piece is named with its fix."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from sweepkit import Sandbox, box, wait_for

__all__ = ["box"]

# Claude processes of other test runs on this machine must not put this launch over the cap.
ALONE = {"CLAUDE_GUARD_COUNT_UNGUARDED": "false"}


def doctor_env(box: Sandbox, tmp: Path, timer_installed: bool = True) -> dict[str, str]:
    systemctl = tmp / "systemctl"
    systemctl.write_text("#!/bin/sh\necho active\n")
    systemctl.chmod(0o755)
    units = tmp / "units"
    units.mkdir(exist_ok=True)
    if timer_installed:
        (units / "claude-guard-reap.timer").write_text("[Timer]\n")
    return {"CLAUDE_GUARD_SYSTEMD_DIR": str(units), "CLAUDE_GUARD_SYSTEMCTL": str(systemctl),
            "CLAUDE_GUARD_CRONTAB": str(tmp / "no-crontab"), "CLAUDE_GUARD_LAUNCHD_DIR": str(tmp / "launchd")}


def checks(box: Sandbox, env: dict[str, str]) -> tuple[int, dict[str, dict[str, object]]]:
    r = box.cli("doctor", "--json", env=env)
    return r.returncode, {c["check"]: c for c in json.loads(r.stdout)}


def test_all_checks_pass_on_a_good_install(box: Sandbox, tmp_path: Path) -> None:
    box.session(env=ALONE)  # the first guarded launch creates the registry
    env = doctor_env(box, tmp_path)
    rc, found = checks(box, env)
    assert rc == 0, found
    assert all(c["ok"] for c in found.values())
    assert set(found) == {"config", "shim", "real claude", "option table", "registry", "timer"}
    assert "2.1.330" in str(found["real claude"]["detail"])
    assert "option table matches" in str(found["option table"]["detail"])
    text = box.cli("doctor", env=env)
    assert text.returncode == 0 and text.stdout.splitlines()[-1] == "all checks passed"


def test_each_problem_is_named_with_its_fix(box: Sandbox, tmp_path: Path) -> None:
    box.session(env=ALONE)
    env = doctor_env(box, tmp_path, timer_installed=False)
    os.chmod(box.state, 0o755)
    env["PATH"] = os.pathsep.join(p for p in box.env["PATH"].split(os.pathsep) if p != str(box.shim_dir))
    env["CLAUDE_GUARD_GRACE"] = "soon"
    rc, found = checks(box, env)
    assert rc == 78  # a config problem is always 78 for doctor (a launch meanwhile starts claude unguarded)
    assert {name for name, c in found.items() if not c["ok"]} == {"config", "shim", "registry", "timer"}
    assert "CLAUDE_GUARD_GRACE" in str(found["config"]["detail"])
    assert "claude-guard install" in str(found["shim"]["fix"])
    assert f"chmod 700 {box.state}" == found["registry"]["fix"]
    assert "install --timer" in str(found["timer"]["fix"])
    text = box.cli("doctor", env=env)
    assert text.returncode == 78 and "4 problems found" in text.stdout and "fix: chmod 700" in text.stdout
    os.chmod(box.state, 0o700)
    registry = box.state / "registry.json"
    os.chmod(registry, stat.S_IMODE(registry.stat().st_mode) | 0o044)
    rc, found = checks(box, doctor_env(box, tmp_path))
    assert rc == 1 and not found["registry"]["ok"] and "chmod 600" in str(found["registry"]["fix"])


def test_a_running_reap_watch_is_the_unattended_path(box: Sandbox, tmp_path: Path) -> None:
    """No timer, but `claude-guard reap --watch` sweeps this user's state: doctor accepts it, and no longer does
    once it stops."""
    env = doctor_env(box, tmp_path, timer_installed=False)
    _, found = checks(box, env)
    assert not found["timer"]["ok"]
    watch_env = {**box.env, **env, "CLAUDE_GUARD_PROTECT": "/", "CLAUDE_GUARD_MIN_AGE": "3650d"}  # end nothing
    watch = subprocess.Popen([sys.executable, "-m", "claude_guard", "reap", "--watch", "--interval", "1"],
                             env=watch_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        wait_for((box.state / "sweep.json").exists, 120, "the watch's first sweep")
        _, found = checks(box, env)
        assert found["timer"]["ok"], found["timer"]
        assert f"reap --watch` runs as PID {watch.pid}" in str(found["timer"]["detail"])
        assert found["last sweep"]["ok"] and "last sweep of any kind" in str(found["last sweep"]["detail"])
    finally:
        watch.terminate()
        watch.communicate(timeout=60)
    _, found = checks(box, env)
    assert not found["timer"]["ok"] and "install --timer" in str(found["timer"]["fix"])
