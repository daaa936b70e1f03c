"""`claude-guard kill <pid|session id|name>` with stand-in sessions, and the line a session gets before the
guard ends it (on its terminal, or an SDK host's stderr pipe): real processes, real ptys, real signals."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from claude_guard import procs
from sweepkit import Sandbox, box, new_id

__all__ = ["box"]


def transcript(box: Sandbox, sid: str) -> None:
    """A transcript for `sid`, so the conversation can be resumed (the resume hint needs one)."""
    project = box.claude_dir / "projects" / "-anywhere"
    project.mkdir(parents=True, exist_ok=True)
    (project / f"{sid}.jsonl").write_text("{}\n")


def alive(pid: int, start: str | None) -> bool:
    return bool(start) and procs.alive(pid, start or "")


def read_terminal(master: int, want: str, timeout: float = 30) -> str:
    """What was written to the terminal whose master side is `master`, until `want` shows (or the timeout)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while want.encode() not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    return seen.decode("utf-8", "replace")


def test_kill_by_pid_ends_the_whole_tree_and_tells_its_terminal(box: Sandbox) -> None:
    sid = new_id()
    transcript(box, sid)
    master, slave = os.openpty()
    try:
        # Young (no min_age for a person's own choice) and attached to a live terminal (the one they look at).
        s = box.session(pty=os.ttyname(slave), env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid,
                                                   "SWEEP_GRANDCHILD": "1"})
        os.close(slave)
        kids = [s.kid(name) for name in s.record["kids"]]
        assert kids
        r = box.cli("kill", str(s.pid), env={"CLAUDE_GUARD_GRACE": "5"})
        assert r.returncode == 0, r.stderr
        assert f"ended PID {s.pid} session {sid} [kill]: asked for by hand" in r.stdout
        assert f"resume with: cd {box.tmp} && claude --resume {sid}" in r.stdout
        assert not s.alive and not any(alive(pid, start) for pid, start in kids)  # the whole tree
        said = read_terminal(master, "--resume")
        assert "claude-guard: claude-guard kill (run by " in said and "is ending this Claude session (kill:" in said
        assert f"Resume it with: cd {box.tmp} && claude --resume {sid}" in said
    finally:
        os.close(master)
    audit = [json.loads(line) for line in (box.state / "log" / "audit.jsonl").read_text().splitlines()]
    assert [(a["pid"], a["reason"]) for a in audit if a["event"] == "ended"] == [(s.pid, "kill")]
    metrics = box.cli("metrics", check=True).stdout
    assert 'claude_guard_sessions_ended_total{reason="kill"} 1' in metrics
    assert "claude_guard_reap_sweeps_total 0" in metrics  # a kill by hand is not the unattended sweep


def test_kill_by_session_id_prefix_and_by_name(box: Sandbox) -> None:
    first, second = new_id(), new_id()
    a = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": first, "SWEEP_NAME": "release-notes"})
    b = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": second})
    dry = box.cli("kill", "--dry-run", "--json", "release-notes")
    assert dry.returncode == 0, dry.stderr
    assert [x["pid"] for x in json.loads(dry.stdout)["actions"]] == [a.pid] and a.alive
    r = box.cli("kill", "release-notes", env={"CLAUDE_GUARD_GRACE": "5"})
    assert r.returncode == 0 and f"ended PID {a.pid}" in r.stdout
    r = box.cli("kill", second[:8], env={"CLAUDE_GUARD_GRACE": "5"})
    assert r.returncode == 0 and f"ended PID {b.pid} session {second}" in r.stdout
    assert not a.alive and not b.alive


def test_a_session_id_prefix_of_digits_is_not_taken_for_a_pid(box: Sandbox) -> None:
    """One UUID in 40 starts with eight digits: a number that is no session's PID is tried as an id prefix
    (and as a name) before kill says there is no such process."""
    digits = "76906269" + new_id()[8:]
    a = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": digits})
    b = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id(), "SWEEP_NAME": "20261204"})
    r = box.cli("kill", digits[:8], env={"CLAUDE_GUARD_GRACE": "5"})
    assert r.returncode == 0 and f"ended PID {a.pid} session {digits}" in r.stdout, r.stderr
    r = box.cli("kill", "20261204", env={"CLAUDE_GUARD_GRACE": "5"})  # a name of digits too
    assert r.returncode == 0 and f"ended PID {b.pid}" in r.stdout, r.stderr
    assert not a.alive and not b.alive


def test_kill_says_what_it_cannot_end(box: Sandbox) -> None:
    one, two = new_id(), new_id()
    a = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": one, "SWEEP_NAME": "twin",
                         "SWEEP_GRANDCHILD": "plain"})
    b = box.session(env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": two, "SWEEP_NAME": "twin"})
    r = box.cli("kill", "no-such-session")
    assert r.returncode == 1 and "no Claude session of yours has the PID, session id or name 'no-such-session'" \
        in r.stderr
    r = box.cli("kill", "twin")
    assert r.returncode == 2 and "'twin' names 2 sessions" in r.stderr
    assert f"PID {a.pid} session {one}" in r.stderr and f"PID {b.pid} session {two}" in r.stderr
    child, _ = a.kid(next(iter(a.record["kids"])))
    r = box.cli("kill", str(child))
    assert r.returncode == 1 and f"not a Claude session but a process in the tree of session PID {a.pid}" in r.stderr
    r = box.cli("kill", str(a.pid), env={"CLAUDE_GUARD_PROTECT": "twin"})
    assert r.returncode == 1 and f"PID {a.pid} was not ended: matches protect; --force ends it anyway" in r.stderr
    assert r.stdout == "" and a.alive and b.alive
    r = box.cli("kill", "--force", str(a.pid), env={"CLAUDE_GUARD_PROTECT": "twin", "CLAUDE_GUARD_GRACE": "5"})
    assert r.returncode == 0 and not a.alive and b.alive
    assert box.cli("kill", "--dryrun", str(b.pid)).returncode == 2


def test_a_duplicate_is_told_where_its_conversation_stays_and_gets_no_resume_hint(box: Sandbox) -> None:
    """Resuming a duplicate whose other copy is open would be refused: neither its terminal nor reap's report
    offers it."""
    sid = new_id()
    transcript(box, sid)
    m1, s1 = os.openpty()
    m2, s2 = os.openpty()
    try:
        older = box.session("--resume", sid, pty=os.ttyname(s1), env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid,
                                                                     "SWEEP_STATUS_AGE": "600"})
        # Around the guard (through it, the second would be refused as a duplicate).
        newer = box.session("--resume", sid, guarded=False, pty=os.ttyname(s2),
                            env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid})
        os.close(s1)
        os.close(s2)
        report = box.reap("--only", "duplicate", "--reap-attached", "--min-age", "0", "--grace", "5")
        [action] = report["actions"]
        ended, kept = (older, newer) if action["pid"] == older.pid else (newer, older)
        assert action["reason"] == "duplicate" and action["outcome"] == "ended" and action["resume"] is None
        assert action["told"] == "its terminal" and kept.alive and not ended.alive
        said = read_terminal(m1 if ended is older else m2, "stays open in PID")
        assert f"(duplicate: session {sid} is also open in PID {kept.pid}" in said
        assert f"the conversation stays open in PID {kept.pid}" in said and "--resume" not in said
        text = box.cli("reap", "--under", str(box.tmp), "--min-age", "0").stdout
        assert "resume with" not in text
    finally:
        os.close(m1)
        os.close(m2)


def test_a_takeover_tells_the_copy_it_ends_where_the_conversation_goes_on(box: Sandbox) -> None:
    sid = new_id()
    master, slave = os.openpty()
    try:
        older = box.session("--resume", sid, pty=os.ttyname(slave), env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": sid})
        os.close(slave)
        newer = box.start("--resume", sid, env={"CLAUDE_GUARD_ON_DUPLICATE": "takeover", "CLAUDE_GUARD_GRACE": "5"})
        said = read_terminal(master, "goes on there")
        assert f"claude-guard: session {sid} was opened again in PID {newer.pid} (on_duplicate = takeover): " \
               "ending this copy; the conversation goes on there" in said
        assert "--resume" not in said.split("claude-guard:", 1)[1]
        box.wait_recorded(newer.pid)
        assert not older.alive
    finally:
        os.close(master)


def test_an_sdk_session_is_told_on_its_stderr_pipe(box: Sandbox) -> None:
    """No terminal: the line goes to the CLI's stderr when that is a pipe, which an SDK host reads (never to
    stdout, the host's JSON stream)."""
    host = box.start("-p", "--output-format", "stream-json", env={"SWEEP_RECORD": str(box.record)})
    box.wait_recorded(host.pid)
    r = box.cli("kill", str(host.pid), env={"CLAUDE_GUARD_GRACE": "5"})
    assert r.returncode == 0, r.stderr
    out, err = host.communicate(timeout=30)
    assert b"claude-guard kill (run by " in err and b"is ending this Claude session (kill:" in err
    assert b"claude-guard" not in out


def test_kill_of_a_pid_that_is_gone(box: Sandbox) -> None:
    p = subprocess.Popen(["true"])
    p.wait()
    r = box.cli("kill", str(p.pid))
    assert r.returncode == 1 and (f"no process {p.pid}" in r.stderr or "is not a Claude session" in r.stderr)


def test_the_line_is_printable_and_only_goes_to_the_sessions_own_controlling_terminal(box: Sandbox) -> None:
    from claude_guard import proc

    backend = proc.native()
    master, slave = os.openpty()
    other_master, other_slave = os.openpty()
    try:
        s = box.session(pty=os.ttyname(slave), env={"SWEEP_STATUS": "idle", "SWEEP_SESSION": new_id()})
        row = backend.read(s.pid)
        assert row is not None and row.tty_nr
        assert backend.tell(row, "a\x1b]0;title\x07b\x1b[2Jc") == "its terminal"
        said = read_terminal(master, "2Jc")
        assert "a?]0;title?b?[2Jc" in said and "\x1b" not in said
        # A terminal on its stdio that is not its controlling terminal (tty_nr 0): nothing is written.
        loose = subprocess.Popen(["sleep", "60"], stdin=other_slave, stdout=other_slave, stderr=other_slave,
                                 start_new_session=True)
        box.popens.append(loose)
        box.remember(loose.pid)
        row = backend.read(loose.pid)
        assert row is not None and row.tty_nr == 0
        assert backend.tell(row, "hello") is None
        assert read_terminal(other_master, "hello", 1) == ""
        stale = backend.read(s.pid)
        assert stale is not None
        stale.start = "1"  # another process by now: same PID, other start time
        assert backend.tell(stale, "reused") is None
    finally:
        for fd in (master, slave, other_master, other_slave):
            try:
                os.close(fd)
            except OSError:
                pass
