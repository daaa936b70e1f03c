"""The attacks of the sweep-safety issue, each reproduced with real processes and, where the attack crosses
users, real users: run as root, a test creates throwaway users (useradd), runs the victim's and the
attacker's processes as them (setpriv), and removes the users afterwards. Without root those tests skip.

Every test names the processes it started; the sweep runs with `--under` a folder of the test's own, and
only ever as a dry run when it looks at more than the test's own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs
from conftest import Guard
from standin import HOST, records, write_standin
from sweepkit import Sandbox, Standin, box, new_id, ppid, wait_for

__all__ = ["box"]  # the fixture, imported for pytest

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SYSTEM_PYTHON = "/usr/bin/python3"  # other users cannot run the test's venv interpreter (under /root)
cross_user = pytest.mark.skipif(
    not (ROOT and shutil.which("useradd") and shutil.which("setpriv") and os.path.exists(SYSTEM_PYTHON)),
    reason="cross-user attacks need root (to create throwaway users), useradd, setpriv and /usr/bin/python3")


# ----------------------------------------------------------------------------------------------------
# Throwaway users and a world they can reach


class User:
    def __init__(self, name: str, uid: int, gid: int, home: Path) -> None:
        self.name, self.uid, self.gid, self.home = name, uid, gid, home

    def argv(self, *command: str) -> list[str]:
        """`command` run as this user (setpriv execs it: the pid stays the same)."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *command]

    def python(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(self.argv(SYSTEM_PYTHON, "-c", code, *args), capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL, cwd="/")
        assert r.returncode == 0, r.stderr
        return r


class World:
    """A folder every throwaway user can reach (the test's own tmp is root's, mode 0700), with the stand-in
    claude and the host there, and two users: A the victim, B the attacker."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.root = Path(tempfile.mkdtemp(prefix="cg-attack-", dir="/tmp"))
        self.root.chmod(0o755)
        self.bin = self.root / "bin"
        self.bin.mkdir(mode=0o755)
        self.claude = write_standin(self.bin, SYSTEM_PYTHON)
        self.claude.chmod(0o755)
        self.host = self.bin / "host.py"
        self.host.write_text(HOST.read_text())
        self.host.chmod(0o755)
        self.record = self.root / "record"
        self.record.mkdir()
        self.record.chmod(0o1777)
        self.users: list[User] = []

    def user(self, tag: str) -> User:
        name = f"cg{tag}{uuid.uuid4().hex[:8]}"
        home = self.root / name
        subprocess.run(["useradd", "-M", "-U", "-d", str(home), "-s", "/bin/sh", name], check=True,
                       capture_output=True)
        import pwd

        pw = pwd.getpwnam(name)
        user = User(name, pw.pw_uid, pw.pw_gid, home)
        self.users.append(user)
        home.mkdir(mode=0o755)
        os.chown(home, user.uid, user.gid)
        return user

    def session(self, user: User, *args: str, env: dict[str, str] | None = None, pty: str | None = None,
                cwd: Path | None = None) -> Standin:
        """An (unguarded) stand-in claude of `user`, under a host of that user."""
        pidfile = self.record / f"host-{uuid.uuid4().hex}.pid"
        spec = {"argv": [str(self.claude), *args],
                "env": {"HOME": str(user.home), "PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C.UTF-8",
                        "SWEEP_RECORD": str(self.record), **(env or {})},
                "pty": pty, "pipes": False, "cwd": str(cwd or user.home), "pidfile": str(pidfile)}
        if pty:
            os.chown(pty, user.uid, -1)
        host = self.box.spawn(user.argv(SYSTEM_PYTHON, str(self.host), json.dumps(spec)))
        wait_for(pidfile.exists, 60, "the host to start its claude")
        pid = self.box.remember(int(pidfile.read_text()))
        record = json.loads(wait_file(self.record / f"{pid}.json").read_text())
        return Standin(self.box, pid, host, record)

    def folder(self, user: User, name: str) -> Path:
        path = user.home / name
        path.mkdir(mode=0o755, exist_ok=True)
        os.chown(path, user.uid, user.gid)
        return path

    def cleanup(self) -> None:
        # Whatever still runs as a throwaway user was started by this test (the box killed what it
        # remembered; this catches what it could not, e.g. after a failure half-way through a start).
        uids = {user.uid for user in self.users}

        def left() -> list[int]:
            return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                    if _uid(p) in uids and procs.start_token(p) and procs.alive(p, procs.start_token(p))]

        for _ in range(3):
            found = left()
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not found:
                break
            try:
                wait_for(lambda: not left(), 10, "the users' processes to end")
            except AssertionError:
                continue  # try again; the users are removed below in any case
        for user in self.users:
            subprocess.run(["userdel", user.name], capture_output=True)
            subprocess.run(["groupdel", user.name], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def wait_file(path: Path, timeout: float = 60) -> Path:
    wait_for(path.exists, timeout, f"{path.name} to be written")
    return path


@pytest.fixture
def world(box: Sandbox) -> Iterator[World]:
    w = World(box)
    try:
        yield w
    finally:
        box.cleanup()  # the users' processes go first (cleanup is idempotent for the box fixture)
        w.cleanup()


def root_cli(box: Sandbox, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = box.cli(*args, timeout=timeout)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    return r


def ps_all(box: Sandbox, under: Path) -> dict[int, dict[str, Any]]:
    r = root_cli(box, "ps", "--json", "--all-users", "--under", str(under), timeout=60)
    assert r.returncode == 0, r.stderr
    return {row["pid"]: row for row in json.loads(r.stdout)}


def reap_all(box: Sandbox, under: Path, *args: str) -> dict[str, Any]:
    r = root_cli(box, "reap", "--json", "--all-users", "--under", str(under), *args, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    return report


def planned(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {a["pid"]: a for a in report["actions"]}


# ----------------------------------------------------------------------------------------------------
# 10.1: duplicates across users; 16.2: the duplicate policy ends the copy in use


@cross_user
def test_another_users_copy_of_a_session_id_never_makes_yours_a_duplicate(box: Sandbox, world: World) -> None:
    a, b = world.user("a"), world.user("b")
    sid = new_id()  # readable by anyone in /proc/<pid>/cmdline
    master, slave = os.openpty()
    try:
        attacker = world.session(b, "--resume", sid)  # older, detached
        victim = world.session(a, "--resume", sid, pty=os.ttyname(slave))  # newer, attached
        os.close(slave)
        rows = ps_all(box, world.root)
        assert rows[victim.pid]["duplicate_of"] is None and rows[victim.pid]["state"] != "duplicate"
        assert rows[attacker.pid]["duplicate_of"] is None
        report = reap_all(box, world.root, "--dry-run", "--min-age", "0", "--only", "duplicate",
                          "--reap-attached")
        assert report["actions"] == []
    finally:
        os.close(master)


def test_duplicate_keeps_the_attached_copy_in_use(box: Sandbox) -> None:
    sid = new_id()
    master, slave = os.openpty()
    try:
        older = box.session("--resume", sid, guarded=False)  # detached: nobody types in it
        newer = box.session("--resume", sid, guarded=False, pty=os.ttyname(slave))  # the picker's copy, in use
        os.close(slave)
        report = box.reap("--dry-run", "--min-age", "0")
        got = planned(report)
        assert newer.pid not in got
        assert got[older.pid]["reason"] == "duplicate" and str(newer.pid) in got[older.pid]["detail"]
        assert box.ps_row(older.pid)["duplicate_of"] == newer.pid
        assert box.ps_row(newer.pid)["duplicate_of"] is None
    finally:
        os.close(master)


def test_attached_copies_are_kept_without_reap_attached_then_the_least_active_goes(box: Sandbox) -> None:
    sid = new_id()
    m1, s1 = os.openpty()
    m2, s2 = os.openpty()
    try:
        busy = box.session("--resume", sid, guarded=False, pty=os.ttyname(s1),
                           env={"SWEEP_STATUS": "busy", "SWEEP_SESSION": sid})
        quiet = box.session("--resume", sid, guarded=False, pty=os.ttyname(s2),
                            env={"SWEEP_STATUS": "idle", "SWEEP_STATUS_AGE": "600", "SWEEP_SESSION": sid})
        os.close(s1)
        os.close(s2)
        report = box.reap("--dry-run", "--min-age", "0", "--only", "duplicate")
        assert report["actions"] == []
        kept = {k["pid"]: k for k in report["skipped"]}
        assert "attached" in kept[quiet.pid]["why"]
        report = box.reap("--dry-run", "--min-age", "0", "--only", "duplicate", "--reap-attached")
        assert [a["pid"] for a in report["actions"]] == [quiet.pid]  # the newer one: age decides nothing here
        assert busy.alive and quiet.alive
    finally:
        os.close(m1)
        os.close(m2)


def test_duplicate_keeps_the_copy_whose_transcript_was_written_last(box: Sandbox) -> None:
    # Two detached copies working in two folders: Claude keeps a transcript per folder
    # (projects/<folder with every character outside [A-Za-z0-9] as '-'>/<id>.jsonl); the older copy wrote last.
    sid = new_id()
    here, there = box.tmp / "here", box.tmp / "there"
    here.mkdir()
    there.mkdir()
    older = box.session("--resume", sid, guarded=False, cwd=here)
    newer = box.session("--resume", sid, guarded=False, cwd=there)
    for folder, age in ((here, 0), (there, 600)):
        transcript = box.claude_dir / "projects" / "".join(c if c.isalnum() else "-" for c in str(folder)) \
            / f"{sid}.jsonl"
        transcript.parent.mkdir(parents=True, exist_ok=True)
        transcript.write_text("{}\n")
        stamp = transcript.stat().st_mtime - age
        os.utime(transcript, (stamp, stamp))
    report = box.reap("--dry-run", "--min-age", "0", "--only", "duplicate")
    assert [a["pid"] for a in report["actions"]] == [newer.pid]
    assert "active more recently" in report["actions"][0]["detail"] and str(older.pid) in report["actions"][0]["detail"]


def test_duplicate_with_nothing_to_tell_keeps_the_newer_as_takeover_does(box: Sandbox) -> None:
    sid = new_id()
    older = box.session("--resume", sid, guarded=False)
    newer = box.session("--resume", sid, guarded=False)
    report = box.reap("--dry-run", "--min-age", "0")
    assert [(a["pid"], a["reason"]) for a in report["actions"]] == [(older.pid, "duplicate")]
    assert str(newer.pid) in report["actions"][0]["detail"]


# ----------------------------------------------------------------------------------------------------
# 10.2: forged session files; 10.3: session files that hang, crash or leak


@cross_user
def test_forged_session_file_of_another_user_is_ignored_by_a_root_sweep(box: Sandbox, world: World) -> None:
    a, b = world.user("a"), world.user("b")
    project = world.folder(a, "project")
    victim = world.session(a, cwd=project)
    config = world.folder(b, "cfg")
    attacker = world.session(b, env={"CLAUDE_CONFIG_DIR": str(config)})
    forged = new_id()
    # B writes, in a folder B chose, a session file naming A's process (its start time is world-readable):
    # idle since 1970, working elsewhere, so that protect-by-folder misses it.
    b.python("import json, os, sys; os.makedirs(sys.argv[1], exist_ok=True); "
             "open(os.path.join(sys.argv[1], sys.argv[2] + '.json'), 'w').write(sys.argv[3])",
             str(config / "sessions"), str(victim.pid),
             json.dumps({"pid": victim.pid, "procStart": victim.start, "sessionId": forged, "status": "idle",
                         "statusUpdatedAt": 1000, "cwd": str(world.root), "kind": "interactive"}))
    rows = ps_all(box, world.root)
    assert rows[victim.pid]["session_id"] != forged and rows[victim.pid]["status"] is None
    assert rows[victim.pid]["cwd"] == str(project)
    assert attacker.pid in rows
    report = reap_all(box, world.root, "--dry-run", "--min-age", "0", "--protect", str(project))
    assert victim.pid not in planned(report)


@cross_user
def test_hostile_session_files_neither_hang_nor_crash_nor_leak_under_root(box: Sandbox, world: World) -> None:
    b = world.user("b")
    config = world.folder(b, "cfg")
    attacker = world.session(b, env={"CLAUDE_CONFIG_DIR": str(config)})
    secret = world.root / "secret.json"  # root's, mode 0600: B cannot read it, and root must not for B
    secret.write_text(json.dumps({"pid": attacker.pid, "procStart": attacker.start, "sessionId": "SECRET-ID",
                                  "status": "busy"}))
    secret.chmod(0o600)
    b.python("import os, sys; d = os.path.join(sys.argv[1], 'sessions'); os.makedirs(d, exist_ok=True); "
             "os.mkfifo(os.path.join(d, '999999.json')); "
             "open(os.path.join(d, '999998.json'), 'w').write('[' * 100000); "
             "os.symlink(sys.argv[2], os.path.join(d, sys.argv[3] + '.json'))",
             str(config), str(secret), str(attacker.pid))
    rows = ps_all(box, world.root)  # a FIFO would hang it (the subprocess timeout turns that into a failure)
    assert rows[attacker.pid]["session_id"] != "SECRET-ID"
    reap_all(box, world.root, "--dry-run", "--min-age", "0")


def test_hostile_session_files_never_hang_a_launch(guard: Guard) -> None:
    folder = guard.home / ".claude" / "sessions"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "999999.json")
    (folder / "999998.json").write_text("[" * 100000)
    r = guard.run("--resume", new_id(), "-p", "x", timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"internal error" not in r.stderr


# ----------------------------------------------------------------------------------------------------
# 10.6: a session started directly by a live tini (or systemd) is not an orphan


def test_session_started_directly_by_a_live_tini_is_not_an_orphan(box: Sandbox) -> None:
    tini = box.tmp / "init" / "tini"
    tini.parent.mkdir()
    tini.symlink_to(sys.executable)  # the kernel names the process after the link: comm "tini"
    pidfile = box.tmp / "tini-child.pid"
    spec = {"argv": [str(box.claude), "-p", "--output-format", "stream-json", "--input-format", "stream-json"],
            "env": box.env, "pipes": True, "cwd": str(box.tmp), "pidfile": str(pidfile)}
    parent = box.spawn([str(tini), str(box.host), json.dumps(spec)])
    wait_for(pidfile.exists, 60, "tini to start its claude")
    child = box.remember(int(pidfile.read_text()))
    box.wait_file(f"{child}.json")
    assert Path(f"/proc/{parent}/comm").read_text().strip() == "tini"
    row = box.ps_row(child)
    assert row["parent"] == "tini" and row["orphan"] is False and row["state"] != "orphan"
    assert child not in planned(box.reap("--dry-run", "--min-age", "0"))


def test_session_adopted_before_the_first_sweep_is_still_an_orphan(box: Sandbox) -> None:
    # Its host led a session of its own (a login shell, a service): the host dies before any sweep saw
    # it, so neither the registry nor the ledger knows the old parent; the session it was born in does.
    pidfile = box.tmp / "led.pid"
    spec = {"argv": [str(box.claude), "-p", "--output-format", "stream-json"], "env": box.env, "pipes": True,
            "cwd": str(box.tmp), "pidfile": str(pidfile)}
    host = box.spawn([sys.executable, "-c", "import os, sys; os.setsid(); os.execv(sys.executable, "
                      "[sys.executable, *sys.argv[1:]])", str(box.host), json.dumps(spec)])
    wait_for(pidfile.exists, 60, "the host to start its claude")
    child = box.remember(int(pidfile.read_text()))
    box.wait_file(f"{child}.json")
    os.kill(host, signal.SIGKILL)
    wait_for(lambda: ppid(child) == box.nursery.pid, 30, "the claude to be adopted")
    row = box.ps_row(child)
    assert row["orphan"] is True and row["state"] == "orphan"


# ----------------------------------------------------------------------------------------------------
# 10.8: a reap whose registry write fails has ended sessions all the same: report and audit them


def test_reap_reports_and_audits_what_it_ended_when_the_registry_lock_is_frozen(box: Sandbox) -> None:
    s = box.session(env={"SWEEP_SESSION": new_id()})
    box.orphan(s)
    code = ("import fcntl, os, signal, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)")
    holder = box._popen([sys.executable, "-c", code, str(box.state / "registry.json.lock")],
                        stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    r = box.cli("reap", "--min-age", "0", "--grace", "5", "--under", str(box.tmp),
                env={"CLAUDE_GUARD_LOCK_TIMEOUT": "1"})
    assert not s.alive
    assert f"ended PID {s.pid}" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert r.returncode == 1 and "registry" in r.stderr
    audit = box.state / "log" / "audit.jsonl"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(line["pid"] == s.pid and line["event"] == "ended" for line in lines)


# ----------------------------------------------------------------------------------------------------
# 10.9 and 10.11: waiters


def waiting(guard: Guard) -> list[int]:
    found: Any = guard.registry().get("waiters") or []
    return [int(w["pid"]) for w in found]


def test_a_stopped_waiter_does_not_keep_a_free_slot(guard: Guard) -> None:
    env = {"CLAUDE_GUARD_MAX_SESSIONS": "2", "CLAUDE_GUARD_ON_CAP": "wait", "CLAUDE_GUARD_WAIT_TIMEOUT": "120",
           "STANDIN_SLEEP": "600"}
    holders = [guard.start("-p", "hold", env=env) for _ in range(2)]
    for h in holders:
        guard.wait_recorded(h.pid)
    w1 = guard.start("-p", "w1", env=env)
    wait_for(lambda: w1.pid in waiting(guard), 60, "W1 to queue")
    os.kill(w1.pid, signal.SIGSTOP)  # Ctrl-Z
    try:
        w2 = guard.start("-p", "w2", env=env)
        wait_for(lambda: w2.pid in waiting(guard), 60, "W2 to queue")
        holders[0].kill()
        holders[0].wait()
        guard.wait_recorded(w2.pid, timeout=100)  # admitted: the stopped waiter lost its place
    finally:
        os.kill(w1.pid, signal.SIGCONT)


def test_waiters_that_are_not_guard_processes_count_for_nothing(guard: Guard) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    guard.procs.append(sleeper)
    guard.state.mkdir(parents=True, mode=0o700)
    start = procs.start_token(sleeper.pid)
    (guard.state / "registry.json").write_text(json.dumps(
        {"version": 1, "sessions": [], "waiters": [{"pid": sleeper.pid, "start": start, "since": 0}] * 5}))
    (guard.state / "registry.json").chmod(0o600)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "2"})
    assert r.returncode == 0, r.stderr
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "2", "CLAUDE_GUARD_ON_CAP": "wait",
                                  "CLAUDE_GUARD_WAIT_TIMEOUT": "30"})
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------------------------------
# 10.7: a live session's stray with a cookie root's registry never held is not "left behind"


@cross_user
def test_live_sessions_stray_is_not_left_behind_under_a_root_sweep(box: Sandbox, world: World) -> None:
    """User A's guarded session (its cookie in its environment; root's registry never held it) has an MCP
    server's helper that left the tree (no CLAUDE_PID, reparented). A root `reap --all-users` matches it to
    the live session by its session id and leaves it running, even with `--strays all`."""
    a = world.user("a")
    sid = new_id()
    s = world.session(a, env={"CLAUDE_GUARD_COOKIE": uuid.uuid4().hex, "SWEEP_SESSION": sid,
                              "SWEEP_STATUS": "busy", "SWEEP_HELPER": "orphaned"})  # with its session file
    helper_child = box.remember(int(s.record["kids"]["helper_child"]))
    start = procs.start_token(helper_child)
    wait_for(lambda: ppid(helper_child) == box.nursery.pid, 10, "the helper's child to leave the tree")
    report = reap_all(box, world.root, "--min-age", "0", "--grace", "1", "--strays", "all")
    assert helper_child not in planned(report) and s.pid not in planned(report)
    assert {k["pid"]: k["owner_pid"] for k in report["kept_strays"]}[helper_child] == s.pid
    assert procs.alive(helper_child, start) and s.alive


@cross_user
def test_registry_writable_by_others_is_refused_not_obeyed(box: Sandbox, world: World) -> None:
    b = world.user("b")
    holder = world.session(b)  # B's own live process, to make fake waiters that pass a liveness test
    state_home = world.root / "victim-state"
    state = state_home / "claude-guard"
    state.mkdir(parents=True, mode=0o755)
    state_home.chmod(0o755)
    state.chmod(0o755)  # a 0755 folder: not writable by others, so the folder check passes
    registry = state / "registry.json"
    registry.write_text(json.dumps({"version": 1, "sessions": [], "waiters": []}))
    registry.chmod(0o666)  # ... but the file is
    fake = [{"pid": holder.pid, "start": holder.start, "since": 0}] * 100
    b.python("import json, sys; open(sys.argv[1], 'w').write(json.dumps({'version': 1, 'sessions': [], "
             "'waiters': json.loads(sys.argv[2])}))", str(registry), json.dumps(fake))
    # Only this registry decides (not the other Claude sessions of root on this machine).
    env = {"XDG_STATE_HOME": str(state_home), "SWEEP_SLEEP": "0", "CLAUDE_GUARD_COUNT_UNGUARDED": "false",
           "CLAUDE_GUARD_MAX_SESSIONS": "40"}
    r = box.cli("exec", "--", str(box.claude), "-p", "x", env=env)
    assert r.returncode == 0 and "refused" not in r.stderr, r.stderr
    assert "writable by group or others" in r.stderr
    r = box.cli("exec", "--strict", "--", str(box.claude), "-p", "x", env=env)
    assert r.returncode == 74 and "writable by group or others" in r.stderr, r.stderr


# ----------------------------------------------------------------------------------------------------
# 10.10: a deeply nested registry


def test_deeply_nested_registry_is_set_aside_and_claude_starts(guard: Guard) -> None:
    guard.state.mkdir(parents=True, mode=0o700)
    path = guard.state / "registry.json"
    path.write_text("[" * 200000 + "]" * 200000)
    path.chmod(0o600)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"})
    assert r.returncode == 0 and b"internal error" not in r.stderr, r.stderr
    assert len(records(guard.record)) == 1
    assert list(guard.state.glob("registry.json.corrupt-*"))
    assert guard.registry()["version"] == 1
    path.write_text("[" * 200000 + "]" * 200000)
    ps = guard.cli("ps", check=False)
    assert ps.returncode == 0 and "internal error" not in ps.stderr, ps.stderr


# ----------------------------------------------------------------------------------------------------
# Also: a real_claude wrapper that runs `claude` by name; a state folder on a read-only file system


@pytest.mark.parametrize("form", ["exec", "fork"])
def test_real_claude_wrapper_that_runs_claude_by_name_stops_with_127(guard: Guard, form: str) -> None:
    wrapper = guard.tmp / "wrapper" / "claude-wrapper"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\n" + ("exec " if form == "exec" else "") + 'claude "$@"\n')
    wrapper.chmod(0o755)
    # A cap well above the depth at which the loop is stopped, so the cap's refusal does not stop it first.
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_REAL_CLAUDE": str(wrapper), "CLAUDE_GUARD_MAX_SESSIONS": "100"},
                  timeout=60)
    assert r.returncode == 127, r.stderr
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "claude-wrapper" in lines[0], lines


def test_nested_claude_started_by_a_real_session_is_not_a_loop(guard: Guard) -> None:
    # A real claude whose Bash tool runs `claude` again: the guard sees itself twice, once per launch, and
    # both start (the marker names the outer launch, which by then runs Claude Code, not a wrapper).
    outer = guard.tmp / "outer" / "claude"
    outer.parent.mkdir()
    outer.write_text(f"#!{sys.executable}\nimport os, subprocess, sys\n"
                     "if not os.environ.get('NESTED'):\n"
                     "    os.environ['NESTED'] = '1'\n"
                     f"    sys.exit(subprocess.run([{str(guard.shim)!r}, '-p', 'inner']).returncode)\n"
                     f"os.execv({str(guard.real)!r}, [{str(guard.real)!r}, *sys.argv[1:]])\n")
    outer.chmod(0o755)
    r = guard.run("-p", "outer", env={"CLAUDE_GUARD_REAL_CLAUDE": str(outer)})
    assert r.returncode == 0, r.stderr
    assert [rec["argv"] for rec in records(guard.record)] == [["-p", "inner"]]


def test_state_folder_missing_on_a_read_only_file_system_is_a_state_error(guard: Guard, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755,ro", "tmpfs", str(ro)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        env = {"XDG_STATE_HOME": str(ro / "state")}
        r2 = guard.run("-p", "x", env={**env, "CLAUDE_GUARD_STRICT": "1"})
        assert r2.returncode == 74, r2.stderr
        assert b"internal error" not in r2.stderr and b"Read-only file system" in r2.stderr
        r3 = guard.run("-p", "x", env=env)
        assert r3.returncode == 0 and b"internal error" not in r3.stderr, r3.stderr
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


# ----------------------------------------------------------------------------------------------------
# Second pass: closed stdio, unbounded registry, resume hint, root's launch scan, summary line


def test_closed_stdout_still_cleans_the_environment_repairs_arguments_and_holds_strict(guard: Guard) -> None:
    env = {**guard.env, "CLAUDE_GUARD_STRICT": "1", "CLAUDECODE": "1"}
    r = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", str(guard.shim), "-p", "--model", "", "hi"], env=env,
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and b"internal error" not in r.stderr, r.stderr
    (rec,) = records(guard.record)
    env_seen: Any = rec["env"]
    assert "CLAUDECODE" not in env_seen
    assert rec["argv"] == ["-p", "hi"]
    assert env_seen.get("CLAUDE_GUARD_COOKIE")


def test_closed_stderr_refusal_still_exits_75(guard: Guard) -> None:
    env = {"CLAUDE_GUARD_MAX_SESSIONS": "1", "STANDIN_SLEEP": "60"}
    holder = guard.start("-p", "hold", env=env)
    guard.wait_recorded(holder.pid)
    r = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", str(guard.shim), "-p", "hi"],
                       env={**guard.env, **env}, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 75
    assert len(records(guard.record)) == 1


def test_registry_entry_stores_a_bounded_summary_of_argv(guard: Guard) -> None:
    big = "x" * 131000
    env = {"STANDIN_SLEEP": "60", "CLAUDE_GUARD_MAX_SESSIONS": "50"}
    launched = [guard.start("-p", *([big] * 12), env=env) for _ in range(4)]
    for p in launched:
        guard.wait_recorded(p.pid)
    size = (guard.state / "registry.json").stat().st_size
    assert size < 64 * 1024, size
    entries: Any = guard.registry()["sessions"]
    assert len(entries) == 4
    assert entries[0]["argv"][0] == "-p" and entries[0]["argv"][1].endswith("...[130800 more characters]")


def test_resume_hint_quotes_every_part(box: Sandbox) -> None:
    sid = "x;id;echo"
    s = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid})
    project = box.claude_dir / "projects" / "-tmp-x"
    project.mkdir(parents=True)
    (project / f"{sid}.jsonl").write_text("{}\n")
    box.orphan(s)
    r = box.cli("reap", "--min-age", "0", "--grace", "5", "--under", str(box.tmp))
    assert r.returncode == 0, r.stderr
    assert f"resume with: cd {box.tmp} && claude --resume 'x;id;echo'" in r.stdout


@cross_user
def test_roots_launch_scan_reads_no_command_line_of_another_user(box: Sandbox, world: World,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    b = world.user("b")
    long_args = ["claude " + "y" * 100000] * 10  # 1 MB of command line that says claude
    other = box.spawn(b.argv(SYSTEM_PYTHON, "-c", "import time; time.sleep(600)", *long_args))
    wait_for(lambda: procs.read(other) is not None and procs.read(other).uid == b.uid, 30,  # type: ignore[union-attr]
             "B's process to run as B")
    # Its /proc files too: while setpriv changes users the process is not dumpable and /proc shows its files as
    # root's, and a file's owner is refreshed on its own lookup (once seen flaky: the scan found it as root's).
    wait_for(lambda: os.stat(f"/proc/{other}/cmdline").st_uid == b.uid, 30, "B's command line to be B's")
    opened: dict[int, str] = {}
    read_from_other = []
    real_open, real_read = os.open, os.read

    def spy_open(path: Any, *a: Any, **k: Any) -> int:
        fd = real_open(path, *a, **k)
        opened[fd] = str(path)
        return fd

    def spy_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if opened.get(fd) == f"/proc/{other}/cmdline":
            read_from_other.append(len(data))
        return data

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "read", spy_read)
    found = [p.pid for p in procs.scan(0, b"claude")]
    monkeypatch.undo()
    assert other not in found
    assert read_from_other == [], "root's scan read another user's command line"


def test_summary_counts_stray_groups_alone(box: Sandbox) -> None:
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_SESSION": new_id()}, guarded=False)
    child, start = s.kid("child")
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    # `--strays all`: a stand-in's grandchild is not a crashed tool call (docs/sweep.md), so by default it is kept.
    r = box.cli("reap", "--min-age", "0", "--grace", "5", "--only", "stray", "--strays", "all", "--under", str(box.tmp))
    assert r.returncode == 0, r.stderr
    last = r.stdout.splitlines()[-1]
    assert last.startswith("ended 1 of 1 stray group,"), last
    assert not procs.alive(child, start)
