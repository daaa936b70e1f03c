"""The sweep's macOS and Windows code, run for real on Linux against live stand-in processes.

The process backend selects that code: `Portable()` reads the process table, and checks identities before
signals, through psutil (as on macOS and Windows); `Portable(windows=True)` adds what differs on Windows
(owners by account name, consoles instead of terminals, parent PIDs that outlive their process). Tests pass
it to the sweep as it would be chosen there.
psutil gives account names on Linux too, and its terminate() and kill() are SIGTERM and SIGKILL here, so
everything but TerminateProcess itself runs. The Windows timer backend runs against a stand-in schtasks.

Only processes a test started are signalled, by PID; the sweep is always limited to the sandbox (`under`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import psutil
import pytest

from claude_guard import argv, clock, config, ledger, paths, proc, procs, reaper, sessions, timer
from claude_guard.commands import doctor
from claude_guard.proc.portable import Portable, token
from sweepkit import Sandbox, box, new_id, ppid, wait_for

__all__ = ["box"]

REPO = Path(__file__).resolve().parent.parent
ME = psutil.Process().username()


@pytest.fixture
def inproc(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox's environment in this process too, for calling the sweep modules directly."""
    for name, value in box.env.items():
        monkeypatch.setenv(name, value)
    return box


@pytest.fixture
def elsewhere() -> Portable:
    """The psutil backend of macOS and Windows, on Linux."""
    return Portable()


@pytest.fixture
def windows() -> Portable:
    """...with Windows' rules as well."""
    return Portable(windows=True)


def settings(**overrides: object) -> config.Settings:
    return config.load(None, {"min_age": 0, **overrides})


def view(box: Sandbox, cfg: config.Settings | None = None, book: Any = None,
         backend: proc.Backend | None = None) -> sessions.View:
    return sessions.collect(cfg or settings(), ledger=book, under=[str(box.tmp)], backend=backend)


def by_pid(v: sessions.View) -> dict[int, sessions.Session]:
    return {s.pid: s for s in v.sessions}


# ----------------------------------------------------------------------------------------------------
# The process table


def test_windows_pass_reads_accounts_not_uids(inproc: Sandbox, windows: Portable) -> None:
    """No uids and no terminals on Windows: owners by account name, and only the user's own are read.
    (test_sessions.test_backends_agree compares the psutil pass with the /proc one.)"""
    s = inproc.session(guarded=False, env={"SWEEP_GRANDCHILD": "1"})
    child = s.kid("child")[0]
    named = {r.pid: r for r in windows.table(None, ME) if r.pid in (s.pid, child)}
    assert set(named) == {s.pid, child}
    assert all(r.user == ME and r.uid == -1 and r.tty is None and r.tty_nr == 0 for r in named.values())
    native = procs.read(s.pid)
    assert native is not None and named[s.pid].cmdline == native.cmdline
    assert named[s.pid].start == token(psutil.Process(s.pid).create_time())
    assert not [r for r in windows.table(None, "NOBODY\\someone-else") if r.pid in (s.pid, child)]
    assert proc.same_user(ME.upper(), ME.lower())  # Windows account names ignore case


def test_windows_pass_asks_psutil_only_for_what_windows_has(inproc: Sandbox, windows: Portable,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil has no uids(), gids(), terminal() or num_fds() on Windows, and naming one in attrs is a
    ValueError there: the Windows pass must not ask for them (Linux psutil would answer, hiding the crash)."""
    s = inproc.session(guarded=False)
    posix_only = {"uids", "gids", "terminal", "num_fds"}
    asked: list[str] = []
    real_iter, real_as_dict = psutil.process_iter, psutil.Process.as_dict

    def process_iter(attrs: Any = None, **kw: Any) -> Any:
        asked.extend(attrs or [])
        return real_iter(attrs, **kw)

    def as_dict(self: psutil.Process, attrs: Any = None, ad_value: Any = None) -> Any:
        asked.extend(attrs or [])
        return real_as_dict(self, attrs, ad_value)

    monkeypatch.setattr(psutil, "process_iter", process_iter)
    monkeypatch.setattr(psutil.Process, "as_dict", as_dict)
    v = view(inproc, backend=windows)
    assert s.pid in by_pid(v)
    assert asked and not posix_only & set(asked)


def test_session_view_is_the_same_through_psutil(inproc: Sandbox, elsewhere: Portable) -> None:
    """collect() on the same live sessions, by /proc and by psutil: the same sessions, states, trees, working
    folders, Claude files and strays (each with its owner)."""
    idle = inproc.session(guarded=False, env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(),
                                              "SWEEP_STATUS_AGE": "600", "SWEEP_GRANDCHILD": "orphaned"})
    busy = inproc.session("-p", "hello", guarded=False, env={"SWEEP_STATUS": "busy", "SWEEP_SESSION": new_id()})
    plain = inproc.session(guarded=False)
    grandchild = idle.kid("grandchild")[0]
    wait_for(lambda: ppid(grandchild) == inproc.nursery.pid, 10, "the grandchild to leave the tree")

    def facts(v: sessions.View) -> dict[int, tuple[Any, ...]]:
        return {s.pid: (s.session_id, s.status, s.state, s.kind, sorted(s.tree), s.cwd, s.row.ppid, s.parent_name,
                        s.attached, s.terminal, s.orphan, s.idle_source, s.file is not None, s.row.cmdline)
                for s in v.sessions}

    native = view(inproc)
    other = view(inproc, backend=elsewhere)
    assert set(facts(native)) == {idle.pid, busy.pid, plain.pid}
    assert facts(native) == facts(other)
    assert by_pid(other)[idle.pid].state == "idle" and by_pid(other)[busy.pid].kind == "print"
    assert abs((by_pid(native)[idle.pid].idle or 0) - (by_pid(other)[idle.pid].idle or 0)) < 5
    assert [(st.pid, st.owner.pid if st.owner else None) for st in native.strays] == \
           [(st.pid, st.owner.pid if st.owner else None) for st in other.strays] == [(grandchild, idle.pid)]
    assert other.strays[0].start == token(psutil.Process(grandchild).create_time())


# ----------------------------------------------------------------------------------------------------
# Windows rules


def test_windows_console_owner_and_rules(inproc: Sandbox, windows: Portable) -> None:
    """An interactive session counts as in its console (kept by `idle` unless reap_attached); a print session
    has none; every row carries its account; another account's session is never ended."""
    interactive = inproc.session(guarded=False, env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(),
                                                     "SWEEP_STATUS_AGE": "600"})
    printing = inproc.session("-p", "go", guarded=False, env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(),
                                                               "SWEEP_STATUS_AGE": "600"})
    cfg = settings(idle_after="1m")
    v = view(inproc, cfg, backend=windows)
    got = by_pid(v)
    assert (got[interactive.pid].terminal, got[interactive.pid].attached) == ("console", True)
    assert (got[printing.pid].terminal, got[printing.pid].attached) == (None, False)
    assert got[interactive.pid].row.user == ME and got[interactive.pid].json()["uid"] == -1
    out = reaper.plan(v, cfg, only=["idle"])
    assert [a.pid for a in out.actions] == [printing.pid]
    assert [(k.pid, k.why) for k in out.skips] == [
        (interactive.pid, "attached to live terminal console (set reap_attached to include it)")]
    # Another account: vetoed before any signal, whatever the policy.
    rules = reaper.Rules(cfg, all_users=True, backend=windows)
    assert rules.user == ME and not rules.all_users  # no root on Windows: --all-users never ends others'
    rules.user = "NOBODY\\someone-else"
    assert rules.veto(got[printing.pid], False) == f"belongs to {ME} (only root with --all-users ends other users' " \
                                                   "sessions)"


def test_windows_parent_pid_that_outlived_its_process(inproc: Sandbox, windows: Portable) -> None:
    """Windows never reparents: a process keeps its dead parent's PID, which may since name a newer process.
    Neither counts as its parent: not in the tree, and the session is an orphan."""
    s = inproc.session("-p", "go", guarded=False)
    row = sessions.scan(None, ME, windows).rows[s.pid]
    table = sessions.scan(None, ME, windows)
    assert not windows.parent_gone(row, table.rows)  # its host, alive and older
    # A PID whose process has ended (and been reaped).
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = proc.Proc(row.pid, ended.pid, row.state, row.start, row.uid, 0, row.cmdline, row.exe, comm=row.comm,
                      rss=row.rss, cpu=row.cpu, created=row.created, user=row.user)
    assert windows.parent_gone(stale, table.rows)
    # A PID now held by a process younger than the child: not its parent, though it is alive.
    newer = inproc.spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    table = sessions.scan(None, ME, windows)
    reused = proc.Proc(row.pid, newer, row.state, row.start, row.uid, 0, row.cmdline, row.exe, comm=row.comm,
                       rss=row.rss, cpu=row.cpu, created=row.created, user=row.user)
    assert windows.parent_gone(reused, table.rows)
    rows = dict(table.rows)
    rows[s.pid] = reused
    assert s.pid not in sessions.Table(rows, windows).descendants(newer)
    # The same row judged as a session: orphan, and why.
    session = sessions.Session(reused, argv.classify(["-p", "go"]))
    session.terminal, session.attached = windows.terminal(reused, session.kind)
    sessions._judge_orphan(session, None, None, stale_parent=True)
    assert session.orphan and session.orphan_why == f"its parent (PID {newer}) is gone, no live terminal"


# ----------------------------------------------------------------------------------------------------
# Ending sessions through psutil


def test_psutil_path_ends_an_orphaned_tree(inproc: Sandbox, windows: Portable) -> None:
    """Windows rules, psutil signals: a print session whose host died is found (the parent it was first seen
    with is gone), planned with its Bash-tool child, and ended; TERM is ignored, so KILL follows."""
    s = inproc.session("-p", "go", guarded=False, env={"SWEEP_GRANDCHILD": "1", "SWEEP_TRAP": "ignore"})
    child, _ = s.kid("child")
    command, _ = s.kid("command")  # what the Bash-tool shell runs
    cfg = settings(grace="1s")
    book = ledger.empty()
    first = view(inproc, cfg, book, windows)
    assert not by_pid(first)[s.pid].orphan
    ledger.observe(book, first, cfg)
    inproc.orphan(s)
    second = view(inproc, cfg, book, windows)
    mine = by_pid(second)[s.pid]
    assert mine.orphan and mine.state == "orphan" and mine.orphan_why.startswith(f"its parent (PID {s.host}) is gone")
    tokens = {pid: token(psutil.Process(pid).create_time()) for pid in (s.pid, child, command)}
    out = reaper.plan(second, cfg, only=["orphan"])
    assert [(a.pid, a.reason) for a in out.actions] == [(s.pid, "orphan")]
    assert [t[:2] for t in out.actions[0].targets] == [(p, tokens[p]) for p in (s.pid, child, command)]
    reaper.execute(out, cfg, log=False)
    action = out.actions[0]
    assert action.outcome == "ended", action.errors
    # An ignored SIGTERM is inherited: the Bash-tool child needed the KILL too.
    assert action.signals == ["TERM", "KILL"] and action.killed == [s.pid, child, command]
    assert not windows.alive(s.pid, tokens[s.pid]) and not windows.alive(child, tokens[child])
    assert os.WIFSIGNALED(inproc.adopted_status(s.pid)) and os.WTERMSIG(inproc.adopted_status(s.pid)) == 9
    assert not s.alive


def test_psutil_recheck_refuses_a_changed_identity(inproc: Sandbox, windows: Portable) -> None:
    victim = inproc.spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    start = token(psutil.Process(victim).create_time())
    rules = reaper.Rules(settings(), all_users=False, backend=windows)
    # A different start time at that PID: another process (a reused PID), never signalled.
    assert reaper._signal(victim, token(psutil.Process(victim).create_time() - 1), False, signal.SIGTERM,
                          rules) == "gone"
    assert reaper._signal(victim, start, True, signal.SIGTERM, rules) == "refused: no longer runs Claude Code"
    assert reaper._signal(os.getpid(), token(psutil.Process().create_time()), False, signal.SIGTERM,
                          rules).startswith("refused: the reaper")
    rules.user = "NOBODY\\someone-else"
    assert reaper._signal(victim, start, False, signal.SIGTERM, rules) == f"refused: now owned by {ME}"
    assert windows.alive(victim, start) and not windows.alive(victim, start + "1")
    # The right identity: sent, and gone.
    rules.user = ME
    assert reaper._signal(victim, start, False, reaper._KILL, rules) == "sent"
    assert os.WTERMSIG(inproc.adopted_status(victim)) == 9
    assert not windows.alive(victim, start)
    assert reaper._signal(victim, start, False, reaper._KILL, rules) == "gone"


def test_psutil_recheck_refuses_a_session_that_became_another_program(inproc: Sandbox, elsewhere: Portable) -> None:
    s = inproc.session(guarded=False, env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(),
                                           "SWEEP_STATUS_AGE": "600"})
    cfg = settings(idle_after="1m", grace="1s")
    out = reaper.plan(view(inproc, cfg, backend=elsewhere), cfg, only=["idle"])
    assert [a.pid for a in out.actions] == [s.pid]
    os.kill(s.pid, signal.SIGUSR1)  # the stand-in execs another program: same PID, same creation time
    wait_for(lambda: "claude" not in " ".join(psutil.Process(s.pid).cmdline()), 10, "the exec")
    reaper.execute(out, cfg, log=False)
    assert out.actions[0].outcome == "failed" and s.alive
    assert any("no longer runs Claude Code" in e for e in out.actions[0].errors)


# ----------------------------------------------------------------------------------------------------
# Clock, audit log, details


def test_linux_clocks_are_unchanged() -> None:
    assert abs(clock.awake() - time.clock_gettime(time.CLOCK_MONOTONIC)) < 0.5
    asleep = time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)
    assert abs(clock.asleep_total() - asleep) < 0.5


def test_audit_log_is_rotated_before_it_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows cannot rename an open file: the log is rotated first, and the new lines go to the new file."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    folder = Path(paths.log_dir())
    folder.mkdir(parents=True)
    log = folder / reaper.AUDIT
    log.write_bytes(b"x" * (reaper._AUDIT_LIMIT + 1))
    out = reaper.Plan()
    out.pruned = [{"pid": 4242, "start": "1", "session_id": None}]
    reaper.audit(out)
    assert (folder / (reaper.AUDIT + ".1")).stat().st_size == reaper._AUDIT_LIMIT + 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["pid"]) for e in lines] == [("pruned", 4242)]


def test_protect_takes_native_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """`protect = ['C:\\proj']` is a folder on Windows (no slash in it), not a session name."""
    monkeypatch.setattr(os, "sep", "\\")
    rules = reaper.Rules(settings(protect=["C:\\proj", "refactor", "4242"]), all_users=False)
    assert rules.pids == {4242} and rules.names == {"refactor"} and len(rules.folders) == 1


# ----------------------------------------------------------------------------------------------------
# The Windows scheduled task, against a stand-in schtasks

SCHTASKS = r'''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
store = os.environ["FAKE_STORE"]
if args[:1] == ["/Create"]:
    with open(args[args.index("/XML") + 1], "rb") as f:
        data = f.read()
    with open(store, "wb") as f:
        f.write(data)
    print("SUCCESS: The scheduled task has successfully been created.")
elif args[:1] == ["/Query"]:
    if not os.path.exists(store):
        sys.exit("ERROR: The system cannot find the file specified.")
    with open(store, "rb") as f:
        sys.stdout.write(f.read().decode("utf-16"))
elif args[:1] == ["/Delete"]:
    os.remove(store)
'''


@pytest.fixture
def schtasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    program = tmp_path / "schtasks"
    program.write_text(SCHTASKS.replace("{python}", sys.executable))
    program.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_STORE", str(tmp_path / "task.xml"))
    monkeypatch.setenv("CLAUDE_GUARD_SCHTASKS", str(program))
    # Every other backend points into tmp, empty.
    monkeypatch.setenv("CLAUDE_GUARD_SYSTEMD_DIR", str(tmp_path / "systemd"))
    monkeypatch.setenv("CLAUDE_GUARD_LAUNCHD_DIR", str(tmp_path / "LaunchAgents"))
    monkeypatch.setenv("CLAUDE_GUARD_CRONTAB", str(tmp_path / "no-crontab"))
    return tmp_path


def calls(tmp: Path) -> list[list[str]]:
    path = tmp / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def shape(element: ET.Element) -> tuple[Any, ...]:
    """An element as comparable data: tag, attributes, text, children (Description left out)."""
    kids = tuple(shape(c) for c in element if not c.tag.endswith("}Description"))
    return element.tag, element.attrib, (element.text or "").strip(), kids


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.split("?>", 1)[1] if text.startswith("<?xml") else text)


def test_task_install_status_uninstall(schtasks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "schtasks")
    assert timer.backend() == "schtasks"
    lines = timer.install(600)
    assert lines[0].startswith(f"installed scheduled task \\{timer.NAME} (every 10 min)")
    [create] = calls(schtasks)
    assert create[:4] == ["/Create", "/TN", timer.NAME, "/XML"] and create[5:] == ["/F"]
    assert not os.path.exists(create[4])  # the rendered file is removed once registered
    raw = (schtasks / "task.xml").read_bytes()
    assert raw.startswith(b"\xff\xfe")  # UTF-16 with a byte order mark, as Task Scheduler exports
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    task = parse(raw.decode("utf-16"))
    assert task.findtext("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=ns) == "PT10M"
    assert task.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns) == ME
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=ns) == timer.task_program() == sys.executable
    arguments = task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=ns) or ""
    assert arguments == timer.TASK_ARGUMENTS
    compile(arguments.split('"')[1], "<task>", "exec")  # the -c program is valid Python
    assert timer.status() == (True, True, f"scheduled task \\{timer.NAME}: enabled")
    # Disabled in Task Scheduler: installed, not active, and doctor says how to turn it back on.
    text = raw.decode("utf-16")
    disabled = text.replace("<Enabled>true</Enabled>\n    <Hidden>", "<Enabled>false</Enabled>\n    <Hidden>")
    assert disabled != text
    (schtasks / "task.xml").write_bytes(disabled.encode("utf-16"))
    assert timer.status() == (True, False, f"scheduled task \\{timer.NAME}: disabled")
    check = doctor.check_timer()
    assert not check.ok and check.fix.startswith(f"schtasks /Change /TN {timer.NAME} /ENABLE")
    assert timer.uninstall() == [f"removed scheduled task \\{timer.NAME}"]
    assert calls(schtasks)[-1] == ["/Delete", "/TN", timer.NAME, "/F"]
    assert timer.status() == (False, False, "no timer installed")
    assert timer.uninstall() == []  # nothing left: no second /Delete
    assert calls(schtasks)[-1][0] == "/Query"


def test_task_install_failure_is_reported(schtasks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GUARD_TIMER", "schtasks")
    failing = schtasks / "schtasks-fails"
    failing.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('ERROR: Access is denied.')\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CLAUDE_GUARD_SCHTASKS", str(failing))
    with pytest.raises(timer.GuardError) as e:
        timer.install(300)
    assert e.value.message == "schtasks /Create failed: ERROR: Access is denied."


def test_task_through_the_cli(schtasks: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CLAUDE_GUARD_TIMER": "schtasks", "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(tmp_path / "shim"), "--timer",
                        "--interval", "2m"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"installed scheduled task \\{timer.NAME} (every 2 min)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "claude_guard", "uninstall", "--dir", str(tmp_path / "shim")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"removed scheduled task \\{timer.NAME}" in r.stdout and not (schtasks / "task.xml").exists()


def test_repository_task_xml_is_the_rendered_one() -> None:
    """windows/claude-guard-reap.xml (registered by install.ps1) and the task `install --timer` registers
    differ only in the description and the two values install.ps1 fills in."""
    repo = (REPO / "windows" / "claude-guard-reap.xml").read_text(encoding="utf-8")
    rendered = timer.render_task("{{USER_SID}}", "{{PYTHONW}}", 300)
    assert shape(parse(repo)) == shape(parse(rendered))
    assert timer.task_minutes(30) == 1 and timer.task_minutes(7200) == 120 and timer.task_minutes(1e9) == 44640


def test_no_task_lookups_off_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CLAUDE_GUARD_SCHTASKS, Linux and macOS never run schtasks."""
    monkeypatch.delenv("CLAUDE_GUARD_SCHTASKS", raising=False)
    monkeypatch.setenv("CLAUDE_GUARD_SYSTEMD_DIR", str(tmp_path / "systemd"))
    monkeypatch.setenv("CLAUDE_GUARD_LAUNCHD_DIR", str(tmp_path / "LaunchAgents"))
    monkeypatch.setenv("CLAUDE_GUARD_CRONTAB", str(tmp_path / "no-crontab"))
    monkeypatch.setattr(timer, "_schtasks", lambda *a: pytest.fail(f"schtasks run: {a}"))
    assert timer.uninstall() == []
    assert timer.status() == (False, False, "no timer installed")
