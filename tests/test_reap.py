"""`claude-guard reap` against real processes: stand-in claude executables, their hosts, a subreaper nursery.

Only processes a test started are ever signalled: the reaper runs with HOME, state and ~/.claude in tmp, and
every test names the PIDs it expects to be ended (and checks that nothing else was).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs
from sweepkit import Sandbox, box, new_id, ppid, wait_for

__all__ = ["box"]  # the fixture, imported for pytest

MiB = 1024 * 1024


def actions(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {a["pid"]: a for a in report["actions"]}


def only_ours(report: dict[str, Any], box: Sandbox) -> None:
    """Every action of the report targets a process this test started."""
    ours = {pid for pid, _ in box.started}
    for a in report["actions"]:
        assert set(a["pids"]) <= ours, f"the reaper planned to signal processes this test did not start: {a}"


def test_orphan_is_ended_and_attached_one_is_kept(box: Sandbox) -> None:
    master, slave = os.openpty()
    try:
        detached = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id()})
        # In a terminal, under a wrapper: the wrapper dies, the terminal and the shell leading it stay.
        attached = box.session(pty=os.ttyname(slave), middle=True, env={"SWEEP_NOHUP": "1"})
        os.close(slave)
        box.orphan(detached)
        box.orphan(attached)
        row = box.ps_row(attached.pid)
        assert row["attached"] is True and row["orphan"] is False and row["state"] != "orphan"
        report = box.reap("--min-age", "0", "--grace", "5")
        only_ours(report, box)
        got = actions(report)
        assert got[detached.pid]["reason"] == "orphan" and got[detached.pid]["outcome"] == "ended"
        assert not detached.alive
        assert attached.pid not in got and attached.alive
        assert all(e["pid"] != detached.pid for e in box.registry()["sessions"])
    finally:
        os.close(master)
    # The terminal is closed: the kernel hangs it up and takes it away from the session; the stand-in
    # ignores SIGHUP and stays, now an orphan with no live terminal.
    wait_for(lambda: box.ps_state(attached.pid) == "orphan", 10, "the hang-up to show")
    report = box.reap("--min-age", "0", "--grace", "5")
    assert actions(report)[attached.pid]["reason"] == "orphan"
    assert not attached.alive


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_sdk_session_whose_host_died_is_an_orphan(box: Sandbox, guarded: bool) -> None:
    # die_with_parent off: the host's death must reach the sweep, as it does where the kernel cannot end the
    # child itself (macOS, Windows without the runner's job, a host whose spawning thread outlives it).
    sdk = box.session("-p", "--output-format", "stream-json", "--input-format", "stream-json", pipes=True,
                      guarded=guarded, env={"CLAUDE_GUARD_DIE_WITH_PARENT": "false"})
    assert box.ps_row(sdk.pid)["kind"] == "sdk"
    # A first sweep notes each process's parent; for a session started around the guard, that is how a
    # later sweep tells it was reparented (the registry tells it for guarded ones).
    assert box.reap("--min-age", "0")["actions"] == []
    box.orphan(sdk)
    row = box.ps_row(sdk.pid)
    assert row["state"] == "orphan" and row["terminal"] is None
    report = box.reap("--min-age", "0", "--grace", "5")
    only_ours(report, box)
    assert actions(report)[sdk.pid]["reason"] == "orphan"
    assert not sdk.alive


def test_term_trapping_standin_is_killed_after_grace(box: Sandbox) -> None:
    stubborn = box.session(env={"SWEEP_TRAP": "ignore"})
    box.orphan(stubborn)
    report = box.reap("--min-age", "0", "--grace", "1")
    a = actions(report)[stubborn.pid]
    assert a["outcome"] == "ended" and a["signals"] == ["TERM", "KILL"] and stubborn.pid in a["killed"]
    status = box.adopted_status(stubborn.pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_standin_exiting_on_term_is_not_killed(box: Sandbox) -> None:
    polite = box.session()
    box.orphan(polite)
    report = box.reap("--min-age", "0", "--grace", "20")
    a = actions(report)[polite.pid]
    assert a["outcome"] == "ended" and a["signals"] == ["TERM"] and a["killed"] == []
    status = box.adopted_status(polite.pid)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGTERM
    assert box.wait_file(f"{polite.pid}.signal")["signal"] == signal.SIGTERM


def test_grandchild_that_left_the_tree_is_found_by_its_environment(box: Sandbox) -> None:
    # The stand-in's Bash-tool child (own session and process group) started a grandchild and exited:
    # the grandchild now hangs off the subreaper, outside claude's tree, while claude still runs.
    s = box.session(env={"SWEEP_GRANDCHILD": "orphaned", "SWEEP_SESSION": new_id()})
    grandchild, start = s.kid("grandchild")
    wait_for(lambda: ppid(grandchild) == box.nursery.pid, 10, "the grandchild to be reparented")
    assert os.getsid(grandchild) != os.getsid(s.pid)
    box.orphan(s)
    # It left the tree while its session was alive: a job kept on purpose, listed and left running...
    report = box.reap("--min-age", "0", "--grace", "5")
    only_ours(report, box)
    assert grandchild not in actions(report)[s.pid]["pids"] and not s.alive
    assert {k["pid"]: k["owner_pid"] for k in report["kept_strays"]}[grandchild] == s.pid
    assert procs.alive(grandchild, start)
    # ... unless every stray is to be ended; found by its environment either way.
    report = box.reap("--min-age", "0", "--grace", "5", "--strays", "all")
    only_ours(report, box)
    assert actions(report)[grandchild]["reason"] == "stray" and not procs.alive(grandchild, start)


@pytest.mark.parametrize("guarded", [True, False], ids=["cookie", "claude-markers"])
def test_stray_of_a_dead_session_is_ended(box: Sandbox, guarded: bool) -> None:
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"}, guarded=guarded)
    child, start = s.kid("child")
    os.kill(s.pid, signal.SIGKILL)  # claude dies without cleaning up; its Bash-tool child stays
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    report = box.reap("--min-age", "0", "--grace", "5")
    only_ours(report, box)
    a = actions(report)[child]
    assert a["reason"] == "stray" and a["kind"] == "stray" and a["outcome"] == "ended"
    assert not procs.alive(child, start)
    if guarded:
        assert "CLAUDE_GUARD_COOKIE" in a["detail"]
        assert [e["pid"] for e in report["pruned"]] == [s.pid]
    assert s.host and procs.alive(s.host, s.host_start), "the host (not claude's descendant) was left alone"


def test_reused_pid_and_forged_entries_are_never_signalled(box: Sandbox) -> None:
    victim = box.spawn([sys.executable, "-c", "import time; time.sleep(3600)"])
    token = procs.start_token(victim)
    assert token
    box.state.mkdir(parents=True, exist_ok=True)
    entry = {"session_id": new_id(), "kind": "interactive", "argv": [], "program": "claude", "cwd": "/",
             "tty": None, "ppid": 999999, "parent": "x", "started_at": time.time() - 3600, "cookie": "c0ffee",
             "guard": "0"}
    forged = {**entry, "pid": victim, "start": token}  # a live process that is not claude
    reused = {**entry, "pid": victim, "start": str(int(token) - 5000)}  # the pid of a claude that is gone
    (box.state / "registry.json").write_text(json.dumps({"version": 1, "sessions": [forged, reused],
                                                         "waiters": []}))
    sessions_dir = box.claude_dir / "sessions"
    sessions_dir.mkdir(parents=True)
    (sessions_dir / f"{victim}.json").write_text(json.dumps({"pid": victim, "procStart": "12", "sessionId": new_id(),
                                                             "status": "idle", "statusUpdatedAt": 0}))
    report = box.reap("--min-age", "0", "--grace", "1", "--idle-after", "1s", "--max-age", "1s")
    assert report["actions"] == []
    assert procs.alive(victim, token)
    assert [e["start"] for e in report["pruned"]] == [reused["start"]]
    assert [f["pid"] for f in report["stale_session_files"]] == [victim]
    assert [e["start"] for e in box.registry()["sessions"]] == [token]  # not claude: neither ended nor pruned


def test_reap_from_inside_a_session_does_not_end_it(box: Sandbox) -> None:
    command = [sys.executable, "-m", "claude_guard", "reap", "--json", "--min-age", "0", "--grace", "5",
               "--under", str(box.tmp)]
    s = box.session(env={"SWEEP_RUN": json.dumps(command), "SWEEP_SESSION": new_id()})
    box.orphan(s)
    (box.record / f"{s.pid}.go").touch()
    run = box.wait_file(f"{s.pid}.run")
    assert run["rc"] == 0, run["stderr"]
    report = json.loads(run["stdout"])
    assert report["actions"] == []
    skip = next(k for k in report["skipped"] if k["pid"] == s.pid)
    assert skip["policy"] == "orphan" and skip["why"] == "the reaper runs inside this session"
    assert s.alive


def test_dry_run_changes_nothing(box: Sandbox) -> None:
    s = box.session(env={"SWEEP_GRANDCHILD": "1"})
    dead = box.session()
    box.orphan(s)
    os.kill(dead.pid, signal.SIGKILL)
    wait_for(lambda: not dead.alive, 10, "a registered session to die")

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(box.home)): p.read_bytes() for p in sorted(box.home.rglob("*")) if p.is_file()}

    before = snapshot()
    report = box.reap("--dry-run", "--min-age", "0")
    assert report["dry_run"] is True
    a = actions(report)[s.pid]
    assert a["reason"] == "orphan" and a["outcome"] == "planned" and a["session_id"] is None
    assert s.kid("child")[0] in a["pids"]
    assert [e["pid"] for e in report["pruned"]] == [dead.pid]
    assert snapshot() == before
    assert s.alive and procs.alive(*s.kid("child"))  # type: ignore[arg-type]
    text = box.cli("reap", "--dry-run", "--min-age", "0", "--under", str(box.tmp))
    assert f"would end PID {s.pid} [orphan]" in text.stdout and "would prune 1 registry entry" in text.stdout
    assert snapshot() == before


def _idle(box: Sandbox, minutes: float, status: str = "idle", **env: str) -> Any:
    return box.session(env={"SWEEP_STATUS": status, "SWEEP_STATUS_AGE": str(minutes * 60),
                            "SWEEP_SESSION": new_id(), **env})


def test_idle_sessions_past_idle_after_are_ended_and_attached_ones_kept(box: Sandbox) -> None:
    master, slave = os.openpty()
    try:
        two_hours, three_quarters, five_min = _idle(box, 120), _idle(box, 45), _idle(box, 5)
        busy = _idle(box, 180, status="busy")
        at_terminal = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_STATUS_AGE": "7200"}, pty=os.ttyname(slave))
        report = box.reap("--dry-run", "--min-age", "0", "--idle-after", "30m")
        got = actions(report)
        assert list(got) == [two_hours.pid, three_quarters.pid]
        assert all(a["reason"] == "idle" and "Claude's status" in a["detail"] for a in got.values())
        assert five_min.pid not in got and busy.pid not in got
        assert [(k["pid"], k["policy"]) for k in report["skipped"]] == [(at_terminal.pid, "idle")]
        assert "attached to live terminal" in report["skipped"][0]["why"]
        report = box.reap("--dry-run", "--min-age", "0", "--idle-after", "30m", "--reap-attached")
        assert at_terminal.pid in actions(report)
    finally:
        os.close(slave)
        os.close(master)


def test_over_cap_ends_the_longest_idle_first(box: Sandbox) -> None:
    twenty, ten, five = _idle(box, 20), _idle(box, 10), _idle(box, 5)
    busy = _idle(box, 60, status="busy")
    report = box.reap("--dry-run", "--min-age", "0", "--idle-after", "1h", "--max-sessions", "2")
    assert [(a["pid"], a["reason"]) for a in report["actions"]] == [(twenty.pid, "over-cap"), (ten.pid, "over-cap")]
    assert five.alive and busy.alive


def test_memory_pressure_ends_the_largest_idle_trees_first(box: Sandbox, tmp_path: Path) -> None:
    small, middle, large = (_idle(box, 1, SWEEP_ALLOC_MB=str(mb)) for mb in (20, 90, 160))
    busy = _idle(box, 1, status="busy", SWEEP_ALLOC_MB="250")
    meminfo = tmp_path / "available"
    floor = 1024 * MiB
    meminfo.write_text(str(floor - MiB))
    env = {"CLAUDE_GUARD_MEM_AVAILABLE_FILE": str(meminfo)}
    common = ["--min-age", "0", "--memory-floor", str(floor), "--idle-after", "1h"]
    # floor + 200 MiB needs about 201 MiB back: the 160 MiB tree, then the 90 MiB one; never the busy one.
    report = box.reap("--dry-run", *common, "--memory-margin", str(200 * MiB), env=env)
    assert [(a["pid"], a["reason"]) for a in report["actions"]] == [(large.pid, "memory"), (middle.pid, "memory")]
    assert report["memory"]["pressure"] is True and report["memory"]["available_bytes"] == floor - MiB
    # More than all idle sessions hold: still never the active one, unless forced.
    report = box.reap("--dry-run", *common, "--memory-margin", "8G", env=env)
    assert [a["pid"] for a in report["actions"]] == [large.pid, middle.pid, small.pid]
    assert any("--force" in note for note in report["notes"])
    report = box.reap("--dry-run", *common, "--memory-margin", "8G", "--force", env=env)
    assert [a["pid"] for a in report["actions"]] == [large.pid, middle.pid, small.pid, busy.pid]
    # For real: the two largest go, then the memory policy cools down before judging again.
    report = box.reap(*common, "--memory-margin", str(200 * MiB), "--grace", "5", "--cooldown", "10m", env=env)
    assert [(a["pid"], a["outcome"]) for a in report["actions"]] == [(large.pid, "ended"), (middle.pid, "ended")]
    assert report["summary"]["freed_bytes"] >= 250 * MiB
    again = box.reap("--dry-run", *common, "--memory-margin", str(200 * MiB), env=env)
    assert again["actions"] == [] and any("cooling down" in note for note in again["notes"])
    assert small.alive and busy.alive


def test_min_age_and_protect_keep_sessions(box: Sandbox) -> None:
    young = box.session()
    kept = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(), "SWEEP_NAME": "precious"})
    box.orphan(young)
    box.orphan(kept)
    report = box.reap("--dry-run", "--protect", "precious")
    why = {k["pid"]: k["why"] for k in report["skipped"]}
    assert why[young.pid].startswith("younger than min_age") and why[kept.pid] == "matches protect"
    assert report["actions"] == []


def test_audit_log_summary_and_resume_hint(box: Sandbox) -> None:
    sid = new_id()
    s = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid})
    project = box.claude_dir / "projects" / "-tmp-somewhere"
    project.mkdir(parents=True)
    (project / f"{sid}.jsonl").write_text("{}\n")
    box.orphan(s)
    r = box.cli("reap", "--min-age", "0", "--grace", "5", "--under", str(box.tmp))
    assert r.returncode == 0, r.stderr
    assert f"ended PID {s.pid} session {sid} [orphan]" in r.stdout
    assert f"resume with: cd {box.tmp} && claude --resume {sid}" in r.stdout
    assert "ended 1 of 1 session, freed about" in r.stdout.splitlines()[-1]
    logs = list((box.home / ".local" / "state" / "claude-guard" / "log").glob("audit.jsonl"))
    assert logs, "no audit log"
    lines = [json.loads(line) for line in logs[0].read_text().splitlines()]
    line = next(x for x in lines if x["pid"] == s.pid)
    assert line["event"] == "ended" and line["session_id"] == sid and line["reason"] == "orphan"
    assert line["freed_bytes"] > 0 and line["resume"].endswith(f"claude --resume {sid}")
    metrics = box.cli("metrics").stdout
    assert 'claude_guard_sessions_ended_total{reason="orphan"} 1' in metrics


def test_watch_survives_a_failing_sweep_and_stops_on_sigterm(box: Sandbox, tmp_path: Path) -> None:
    s = box.session()
    box.orphan(s)
    meminfo = tmp_path / "available"  # missing at first: every sweep fails reading memory
    env = {**box.env, "CLAUDE_GUARD_MEM_AVAILABLE_FILE": str(meminfo)}
    watch = subprocess.Popen([sys.executable, "-m", "claude_guard", "reap", "--watch", "--interval", "0.2",
                              "--min-age", "0", "--grace", "5", "--memory-floor", "1M",
                              "--under", str(box.tmp)], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    box.popens.append(watch)
    box.remember(watch.pid)
    time.sleep(1.0)
    assert s.alive and watch.poll() is None
    meminfo.write_text(str(1 << 40))  # plenty: the next sweep goes through and ends the orphan
    wait_for(lambda: not s.alive, 30, "the watch loop to end the orphan")
    watch.send_signal(signal.SIGTERM)
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0
    assert err.decode().count("sweep failed (FileNotFoundError") >= 2
    assert "reap --watch: stopped" in err.decode()
    assert f"ended PID {s.pid}" in out.decode()


def test_watch_with_a_bad_config_at_start_exits_78(box: Sandbox) -> None:
    """A watch that would sweep on defaults nobody chose stops at once, as one sweep does, naming file, line, key."""
    box.write_config('grace = "5s"\nmax_session = 3\n')
    r = box.cli("reap", "--watch", "--interval", "0.2", "--under", str(box.tmp), timeout=60)
    assert r.returncode == 78 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and f"{box.config}:2: unknown key 'max_session'" in r.stderr
    assert "did you mean max_sessions?" in r.stderr and "Traceback" not in r.stderr


def test_watch_keeps_the_last_good_settings_when_the_config_goes_bad(box: Sandbox) -> None:
    box.write_config('min_age = 0\ngrace = "5s"\n')
    s = box.session()  # launched (and registered) while the config is good
    watch = subprocess.Popen([sys.executable, "-m", "claude_guard", "reap", "--watch", "--interval", "0.2",
                              "--under", str(box.tmp)], env=box.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    box.popens.append(watch)
    box.remember(watch.pid)
    time.sleep(0.5)
    box.write_config('min_age = 0\ngrace = "5s"\nmax_session = 3\n')  # a typo while editing
    time.sleep(1.0)  # several sweeps see the bad file
    # Only the last good settings (min_age 0) end a session this young: defaults (min_age 1m) would keep it.
    box.orphan(s)
    wait_for(lambda: not s.alive, 30, "the watch loop to end the orphan with the last good settings")
    assert watch.poll() is None
    watch.send_signal(signal.SIGTERM)
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0
    assert f"ended PID {s.pid}" in out.decode()
    warned = [line for line in err.decode().splitlines() if "unknown key 'max_session'" in line]
    assert len(warned) == 1 and "sweeping on with the last good settings" in warned[0]


def test_a_mistyped_option_gets_the_commands_usage_and_a_did_you_mean(box: Sandbox) -> None:
    r = box.cli("reap", "--dryrun")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("usage: claude-guard reap ")  # the command's usage, not the top level's
    assert "unrecognized arguments: --dryrun (--dryrun: did you mean --dry-run?)" in r.stderr
    r = box.cli("ps", "--jsno")
    assert r.returncode == 2 and "did you mean --json?" in r.stderr
    r = box.cli("exec", "--on-dup", "refuse", "--stritc", "--", "claude")  # exec's COMMAND is its own option
    assert r.returncode == 2 and "did you mean --strict?" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["reap", "ps"])
def test_under_a_folder_that_does_not_exist_is_a_usage_error(box: Sandbox, command: str) -> None:
    """Not "nothing to reap": a mistyped folder would narrow the sweep to nothing and look like all is well."""
    r = box.cli(command, "--under", str(box.tmp / "nonexistent"))
    assert r.returncode == 2 and r.stdout == ""
    assert f"argument --under: {box.tmp / 'nonexistent'} is not a folder" in r.stderr
