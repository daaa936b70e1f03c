"""The merged session view: process-table backends, Claude's session files, terminals, idle clocks, strays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from claude_guard import clock, config, ledger, proc, procs, reaper, sessions
from claude_guard.proc.linux import Linux
from claude_guard.proc.portable import Portable, token
from sweepkit import Sandbox, box, new_id, ppid, wait_for

__all__ = ["box"]


@pytest.fixture
def inproc(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox's environment in this process too, for calling the sweep modules directly."""
    for name, value in box.env.items():
        monkeypatch.setenv(name, value)
    return box


def settings(**overrides: object) -> config.Settings:
    return config.load(None, {"min_age": 0, **overrides})


def test_backends_agree(inproc: Sandbox) -> None:
    """The /proc pass and the psutil pass see the same processes the same way; only the start token's format
    differs, and each is procs.start_token's on its own system. (test_sweep_portability runs the rest of the
    psutil side, and Windows' rules, on live processes.)"""
    s = inproc.session(env={"SWEEP_GRANDCHILD": "1"})
    child = s.kid("child")[0]
    uid = os.getuid()
    fast = {r.pid: r for r in Linux().table(uid) if r.pid in (s.pid, child)}
    slow = {r.pid: r for r in Portable().table(uid) if r.pid in (s.pid, child)}
    assert set(fast) == set(slow) == {s.pid, child}
    for pid, a in fast.items():
        b = slow[pid]
        assert (a.ppid, a.uid, a.cmdline, a.tty_nr, a.comm) == (b.ppid, b.uid, b.cmdline, b.tty_nr, b.comm)
        assert a.state != "Z" and b.state == "S"  # /proc gives the letter (R, S, D...); psutil zombie or not
        assert abs(a.created - b.created) < 1.0  # psutil's boot time is whole seconds (btime)
        assert a.rss > 0 and b.rss > 0  # read a moment apart, while a child may still be starting: not equal
        assert a.start == procs.start_token(pid)
        assert b.start == token(psutil.Process(pid).create_time())
    assert fast[s.pid].exe == slow[s.pid].exe  # /proc reads the executable of claude-like processes only
    assert proc.claude_args(fast[s.pid]) is not None
    assert proc.claude_args(fast[child]) is None
    elsewhere = Portable()  # the backend of macOS and Windows: the same token as the psutil pass
    assert elsewhere.start_token(s.pid) == slow[s.pid].start and elsewhere.alive(s.pid, slow[s.pid].start)


def test_view_merges_registry_session_file_and_tree(inproc: Sandbox) -> None:
    sid = new_id()
    s = inproc.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid, "SWEEP_STATUS_AGE": "600",
                            "SWEEP_GRANDCHILD": "1", "SWEEP_ALLOC_MB": "40", "SWEEP_NAME": "refactor"})
    unguarded = inproc.session(guarded=False)
    view = sessions.collect(settings(), under=[str(inproc.tmp)])
    by_pid = {x.pid: x for x in view.sessions}
    mine = by_pid[s.pid]
    assert mine.guarded and mine.session_id == sid and mine.name == "refactor" and mine.status == "idle"
    assert mine.state == "idle" and mine.idle_source == "status" and 590 <= (mine.idle or 0) <= 700
    assert mine.cookie and mine.cookie == s.record["cookie"]
    assert s.kid("child")[0] in mine.tree and mine.rss > 40 * 1024 * 1024
    assert mine.parent_name and mine.row.ppid == s.host and not mine.orphan and not mine.attached
    other = by_pid[unguarded.pid]
    assert not other.guarded and other.state == "unguarded" and other.idle is None
    row = mine.json()
    assert row["processes"] == 3 and row["session_id"] == sid and row["guarded"] is True  # claude, tool shell, command


def test_session_file_of_another_process_is_stale(inproc: Sandbox) -> None:
    s = inproc.session(env={"SWEEP_STATUS": "busy", "SWEEP_SESSION": new_id()})
    folder = inproc.claude_dir / "sessions"
    path = folder / f"{s.pid}.json"
    data = json.loads(path.read_text())
    data["procStart"] = str(int(data["procStart"]) - 1)  # written by an earlier process with this pid
    path.write_text(json.dumps(data))
    view = sessions.collect(settings(), under=[str(inproc.tmp)])
    mine = next(x for x in view.sessions if x.pid == s.pid)
    assert mine.file is None and mine.status is None and mine.session_id is None
    assert [f.pid for f in view.stale] == [s.pid]


def test_terminal_is_dead_once_it_hangs_up() -> None:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    # A session leader that opens the terminal gets it as its controlling terminal (as a login shell does).
    code = ("import os, signal, sys, time; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
            "fd = os.open(sys.argv[1], os.O_RDWR); os.dup2(fd, 0); print('ok', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, name], start_new_session=True, stdout=subprocess.PIPE)
    try:
        os.close(slave)
        assert p.stdout is not None and p.stdout.readline() == b"ok\n"
        row = procs.read(p.pid)
        assert row is not None and row.tty_nr != 0
        assert procs.BACKEND.terminal(row) == (name, True)
        os.close(master)  # the window closes: hang-up
        wait_for(lambda: (procs.read(p.pid) or row).tty_nr == 0, 10, "the kernel to take the terminal away")
        assert procs.BACKEND.terminal(procs.read(p.pid) or row) == (None, False)
    finally:
        p.kill()
        p.wait()
    # Stdio on a pty but no controlling terminal: not a live terminal.
    master, slave = os.openpty()
    q = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=slave, stdout=slave,
                         start_new_session=True)
    try:
        os.close(slave)
        row = procs.read(q.pid)
        assert row is not None and row.tty_nr == 0 and procs.BACKEND.terminal(row) == (None, False)
    finally:
        q.kill()
        q.wait()
        os.close(master)


def test_idle_clock_does_not_count_sleep() -> None:
    book: list[list[float]] = []
    clock.record(book, wall=1000.0, offset=0.0)
    clock.record(book, wall=1060.0, offset=0.0)  # same offset: nothing new
    assert book == [[1000.0, 0.0]]
    # Idle since 1100; asleep 3 h between 1200 and 12000; awake now at 12100 with 3 h asleep in total.
    clock.record(book, wall=12000.0, offset=10800.0)
    assert clock.idle_for(book, 1100.0, now_wall=12100.0, offset=10800.0) == pytest.approx(200.0)
    # Idle since after the wake-up: no sleep to subtract.
    assert clock.idle_for(book, 12050.0, now_wall=12100.0, offset=10800.0) == pytest.approx(50.0)
    # Before the first entry the ledger knows nothing: all sleep since boot is subtracted (never over-counts).
    assert clock.idle_for([[5000.0, 600.0]], 100.0, now_wall=6000.0, offset=600.0) == pytest.approx(5300.0)
    assert clock.idle_for([], 100.0, now_wall=6000.0, offset=600.0) == pytest.approx(5300.0)
    assert clock.asleep_total() >= 0.0
    assert clock.awake() <= time.clock_gettime(time.CLOCK_BOOTTIME)


def test_status_idle_time_subtracts_recorded_sleep(inproc: Sandbox) -> None:
    """Claude says idle since two hours ago; the ledger saw a 90-minute suspend since: idle 30 minutes."""
    s = inproc.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(), "SWEEP_STATUS_AGE": "7200"})
    now = time.time()
    offset = clock.asleep_total()
    book = ledger.empty()
    # As if the sweep had seen the offset 5400 s lower an hour and a half ago: 5400 s asleep since then.
    book["sleep"] = [[now - 7300, offset - 5400], [now - 3600, offset]]
    view = sessions.collect(settings(), under=[str(inproc.tmp)], ledger=book)
    mine = next(x for x in view.sessions if x.pid == s.pid)
    assert mine.idle == pytest.approx(1800, abs=60)
    assert reaper.plan(view, settings(idle_after="1h")).actions == []


def test_cpu_idle_without_status(inproc: Sandbox) -> None:
    quiet = inproc.session(guarded=False)
    busy = inproc.session(guarded=False, env={"SWEEP_BURN": "1"})
    cfg = settings(cpu_window="0.3s", idle_cpu=5)
    book = ledger.empty()
    first = sessions.collect(cfg, ledger=book, under=[str(inproc.tmp)])
    assert all(x.idle is None and not x.is_idle for x in first.sessions)  # no sample yet: unknown, never idle
    ledger.observe(book, first, cfg)
    time.sleep(0.6)
    second = sessions.collect(cfg, ledger=book, under=[str(inproc.tmp)])
    ledger.observe(book, second, cfg)
    time.sleep(0.2)
    third = {x.pid: x for x in sessions.collect(cfg, ledger=book, under=[str(inproc.tmp)]).sessions}
    assert third[quiet.pid].is_idle and third[quiet.pid].idle_source == "cpu" and (third[quiet.pid].idle or 0) > 0.5
    assert not third[busy.pid].is_idle and third[busy.pid].state == "unguarded"
    # Above the idle threshold, not a share of a core: the machine may be loaded (CPU share is not a timing to assert).
    assert (third[busy.pid].cpu_percent or 0) > 5


def test_stray_owner_is_found_by_markers(inproc: Sandbox) -> None:
    s = inproc.session(env={"SWEEP_GRANDCHILD": "orphaned", "SWEEP_SESSION": new_id()})
    grandchild = s.kid("grandchild")[0]
    wait_for(lambda: ppid(grandchild) == inproc.nursery.pid, 10, "the grandchild to leave the tree")
    view = sessions.collect(settings(), under=[str(inproc.tmp)])
    stray = next(st for st in view.strays if st.pid == grandchild)
    assert stray.owner is not None and stray.owner.pid == s.pid
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    view = sessions.collect(settings(), under=[str(inproc.tmp)])
    stray = next(st for st in view.strays if st.pid == grandchild)
    assert stray.owner is None
    assert [e["pid"] for e in view.dead] == [s.pid]


def test_signal_refuses_a_changed_identity(inproc: Sandbox) -> None:
    victim = inproc.spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    token = procs.start_token(victim)
    assert token
    rules = reaper.Rules(settings(), all_users=False)
    assert reaper._signal(victim, str(int(token) + 1), False, signal.SIGTERM, rules) == "gone"
    assert reaper._signal(victim, token, True, signal.SIGTERM, rules) == "refused: no longer runs Claude Code"
    assert reaper._signal(os.getpid(), procs.start_token(os.getpid()) or "", False, signal.SIGTERM,
                          rules).startswith("refused: the reaper")
    assert procs.alive(victim, token)


def test_ledger_survives_garbage(tmp_path: Path) -> None:
    (tmp_path / ledger.FILE).write_text("not json")
    assert ledger.load(str(tmp_path))["procs"] == {}
    book = ledger.empty()
    ledger.count(book, "orphan", 100)
    book["procs"]["1:2"] = {"ref": [1.0, 2.0]}
    ledger.save(str(tmp_path), book)
    again = ledger.load(str(tmp_path))
    assert again["counters"]["ended"] == {"orphan": 1} and again["procs"] == {"1:2": {"ref": [1.0, 2.0]}}
    stale = json.loads((tmp_path / ledger.FILE).read_text())
    stale["boot"] = "another boot"
    (tmp_path / ledger.FILE).write_text(json.dumps(stale))
    other = ledger.load(str(tmp_path))
    assert other["procs"] == {} and other["counters"]["ended"] == {"orphan": 1}


def test_a_session_that_became_another_program_is_not_signalled(inproc: Sandbox) -> None:
    """Planned as claude, but it exec'd another program before the signal: the re-check refuses, the action
    fails, and `reap` says so in its exit status."""
    s = inproc.session()
    inproc.orphan(s)
    cfg = settings(grace=1)
    out = reaper.plan(sessions.collect(cfg, under=[str(inproc.tmp)]), cfg)
    assert [a.pid for a in out.actions] == [s.pid]
    os.kill(s.pid, signal.SIGUSR1)
    def exec_done() -> bool:
        proc = procs.read(s.pid)
        return proc is not None and "claude" not in " ".join(proc.cmdline)

    wait_for(exec_done, 10, "the exec")
    reaper.execute(out, cfg, log=False)
    action = out.actions[0]
    assert action.outcome == "failed" and s.alive
    assert any("no longer runs Claude Code" in e for e in action.errors)
    from claude_guard.commands import reap as reap_command

    assert out.json(False)["summary"]["failed"] == 1
    assert reap_command.summary(out, False, 1).endswith("1 failed")
