"""Strays and the trees a plan would signal, with stand-ins (fast; the real-CLI twins are in test_strays_real.py).

- collateral strays (a tool shell still running when its claude died, claude's own helpers) are ended by
  default; kept ones (a job that left its session's tree while the session was alive) are listed and kept;
- never-end rules hold for every process a plan would signal, not only its head (a marked daemon above a live
  session, a protected nested session);
- a stray of a live session is matched to it by its session id when its cookie is unknown;
- a reaper that left its session's tree (nohup'd from a Bash tool) never ends that session;
- a set-user-id process with planted markers is never signalled;
- a session launched with parent 1 is detached, not orphaned, guarded or not;
- code given to an interpreter on its command line is not a Claude session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from claude_guard import procs
from sweepkit import Sandbox, box, new_id, ppid, wait_for

__all__ = ["box"]


def actions(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {a["pid"]: a for a in report["actions"]}


def kept(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {k["pid"]: k for k in report["kept_strays"]}


def skips(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {k["pid"]: k for k in report["skipped"]}


def stray_rows(box: Sandbox) -> dict[int, dict[str, Any]]:
    return {r["pid"]: r for r in box.ps() if r.get("type") == "stray"}


def spawn_in(box: Sandbox, env: dict[str, str], *argv: str, cwd: Path | None = None) -> tuple[int, str]:
    """Start `argv` under the nursery with exactly `env`, working in `cwd` (default: the sandbox)."""
    script = 'cd "$0" && exec "$@"'
    pid = box.spawn(["env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", "-c", script,
                     str(cwd or box.tmp), *argv])
    wait_for(lambda: (procs.read(pid) or procs.Proc(0, 0, "", "", 0, 0, ["sh"], None)).cmdline[:1] == [argv[0]],
             30, f"PID {pid} to exec {argv[0]}")
    start = procs.start_token(pid)
    assert start
    return pid, start


# ----------------------------------------------------------------------------------------------------
# Collateral or kept


def test_tool_shell_of_a_dead_session_is_collateral_a_job_it_left_is_kept(box: Sandbox) -> None:
    """The stand-in twin of the real-CLI tests: SIGKILLed claude, its tool shell still running (collateral),
    and a job that left the tree while claude was alive (kept)."""
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    left = box.session(env={"SWEEP_GRANDCHILD": "orphaned", "SWEEP_SESSION": new_id()})
    shell, shell_start = s.kid("child")
    job, job_start = left.kid("grandchild")
    wait_for(lambda: ppid(job) == box.nursery.pid, 10, "the job to leave its tree")
    # A sweep while its session lives: the job is its session's (listed with it), never ended on its own.
    report = box.reap("--min-age", "0", "--strays", "all")
    assert job not in actions(report) and kept(report)[job]["owner_pid"] == left.pid
    for dead in (s, left):
        os.kill(dead.pid, signal.SIGKILL)
        wait_for(lambda d=dead: not d.alive, 10, "the stand-in to die")

    report = box.reap("--min-age", "0", "--grace", "5")
    a = actions(report)[shell]
    assert a["reason"] == "stray" and "collateral" in a["detail"] and a["outcome"] == "ended"
    assert not procs.alive(shell, shell_start)
    assert job not in actions(report) and procs.alive(job, job_start)
    k = kept(report)[job]
    assert k["how"] == "kept" and k["owner_pid"] is None
    assert "left its session's tree while the session was alive" in k["why"]
    row = stray_rows(box)[job]
    assert row["state"] == "kept" and row["end"] == f"kill {job}"
    text = box.cli("reap", "--dry-run", "--min-age", "0", "--under", str(box.tmp)).stdout
    assert f"kept PID {job}" in text and "claude-guard ps" in text

    assert box.reap("--min-age", "0", "--strays", "none")["actions"] == []
    report = box.reap("--min-age", "0", "--grace", "5", "--strays", "all")
    assert actions(report)[job]["outcome"] == "ended" and not procs.alive(job, job_start)


def test_ledger_knows_a_child_of_claude_that_does_not_look_like_a_tool_shell(box: Sandbox) -> None:
    """The sweep's own record beats the layout: a direct child of claude seen by an earlier sweep is collateral
    once claude dies, whatever it looks like; the same process never seen so is kept (evidence unclear)."""
    seen = box.session(env={"SWEEP_GRANDCHILD": "plain", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    child, start = seen.kid("child")
    assert box.reap("--min-age", "0")["actions"] == []  # notes claude's children
    unseen = box.session(env={"SWEEP_GRANDCHILD": "plain", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    other, other_start = unseen.kid("child")
    for s in (seen, unseen):
        os.kill(s.pid, signal.SIGKILL)
        wait_for(lambda s=s: not s.alive, 10, "the stand-in to die")
    report = box.reap("--min-age", "0", "--grace", "5")
    a = actions(report)[child]
    assert "collateral" in a["detail"] and "earlier sweep" in a["detail"] and not procs.alive(child, start)
    assert other not in actions(report) and kept(report)[other]["how"] == "kept" and procs.alive(other, other_start)


def test_tool_call_left_by_a_normal_end_is_kept(box: Sandbox) -> None:
    """"Move to background and exit": claude exits normally (its session file removed) and leaves a tool call
    running on purpose. Only a claude that died without cleaning up leaves collateral tool calls."""
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    shell, start = s.kid("child")
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    (box.claude_dir / "sessions" / f"{s.pid}.json").unlink()  # as a normal exit does
    report = box.reap("--min-age", "0", "--grace", "5")
    assert shell not in actions(report) and procs.alive(shell, start)
    assert "ended normally" in kept(report)[shell]["why"]


def test_strays_setting_in_the_config_file(box: Sandbox) -> None:
    s = box.session(env={"SWEEP_GRANDCHILD": "1", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    shell, start = s.kid("child")
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    config = box.home / ".config" / "claude-guard" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('strays = "none"\n')
    report = box.reap("--min-age", "0")
    assert shell not in actions(report) and kept(report)[shell]["how"] == "collateral"
    assert procs.alive(shell, start)
    config.write_text('strays = "sometimes"\n')
    r = box.cli("reap", "--dry-run")
    assert r.returncode == 78 and "strays" in r.stderr and "Traceback" not in r.stderr


def test_helper_of_a_dead_session_is_collateral(box: Sandbox) -> None:
    """Claude's own helper (no CLAUDE_PID: an MCP server) outliving a SIGKILLed claude is ended."""
    s = box.session(env={"SWEEP_HELPER": "1", "SWEEP_SESSION": new_id()})
    helper, start = s.kid("helper")
    os.kill(s.pid, signal.SIGKILL)
    wait_for(lambda: not s.alive, 10, "the stand-in to die")
    report = box.reap("--min-age", "0", "--grace", "5")
    a = actions(report)[helper]
    assert "collateral" in a["detail"] and a["outcome"] == "ended" and not procs.alive(helper, start)


# ----------------------------------------------------------------------------------------------------
# Every process a plan would signal


def test_marked_daemon_above_a_live_protected_session_is_never_ended(box: Sandbox) -> None:
    """Issue 10.4: `CLAUDE_PID=999999 CLAUDE_CODE_SESSION_ID=... CLAUDECODE=1 tmux new-session -d "claude
    --name important-work"`: the tmux server carries markers of a session that is gone, outside every live
    tree, and the live session runs inside it."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    socket = box.tmp / "tmux.sock"
    env = {**box.env, "CLAUDE_PID": "999999", "CLAUDE_CODE_SESSION_ID": "0badc0de-0000-4000-8000-000000000000",
           "CLAUDECODE": "1", "SWEEP_SESSION": new_id(), "TMUX_TMPDIR": str(box.tmp)}
    r = subprocess.run([tmux, "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", "work", "-c",
                        str(box.tmp), f"{box.shim_dir / 'claude'} --name important-work"], env=env,
                       capture_output=True, text=True, timeout=30, cwd=box.tmp)
    assert r.returncode == 0, r.stderr
    try:
        server = int(subprocess.run([tmux, "-S", str(socket), "display-message", "-p", "#{pid}"], env=env,
                                    capture_output=True, text=True, timeout=30).stdout)
        box.remember(server)
        inner = int(subprocess.run([tmux, "-S", str(socket), "display-message", "-p", "#{pane_pid}"], env=env,
                                   capture_output=True, text=True, timeout=30).stdout)
        box.remember(inner)
        box.wait_file(f"{inner}.json")
        server_start, inner_start = procs.start_token(server), procs.start_token(inner)
        for extra in ([], ["--protect", str(inner), "--protect", "important-work"]):
            report = box.reap("--min-age", "0", "--grace", "5", "--strays", "all", *extra)
            assert server not in actions(report) and inner not in actions(report)
            assert "live session" in kept(report)[server]["why"] or "live session" in skips(report)[server]["why"]
        assert procs.alive(server, server_start) and procs.alive(inner, inner_start)
    finally:
        subprocess.run([tmux, "-S", str(socket), "kill-server"], env=env, capture_output=True, timeout=30)


def test_protected_nested_session_keeps_its_parents_tree(box: Sandbox) -> None:
    """Issue 10.5: an orphaned outer session holds a nested session protected by PID and by id."""
    nested_id = new_id()
    command = ["env", "-u", "SWEEP_RUN", f"SWEEP_SESSION={nested_id}", "SWEEP_STATUS=idle",
               str(box.shim_dir / "claude"), "--name", "nested"]
    outer = box.session(env={"SWEEP_RUN": json.dumps(command), "SWEEP_SESSION": new_id()})
    (box.record / f"{outer.pid}.go").touch()

    def nested_pid() -> int | None:
        for path in box.record.glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("ppid") == outer.pid:
                return int(data["pid"])
        return None

    wait_for(nested_pid, 30, "the nested session to start")
    nested = box.remember(nested_pid() or 0)
    nested_start = procs.start_token(nested)
    box.orphan(outer)
    for protect in (str(nested), nested_id):
        text = box.cli("reap", "--dry-run", "--min-age", "0", "--protect", protect, "--under", str(box.tmp)).stdout
        assert f"kept PID {nested}" in text, text
        assert f"would end PID {outer.pid}" not in text and f"would end PID {nested}" not in text
        report = box.reap("--min-age", "0", "--grace", "5", "--protect", protect)
        assert outer.pid not in actions(report) and nested not in actions(report)
        assert "protect" in skips(report)[outer.pid]["why"]
    assert outer.alive and procs.alive(nested, nested_start)


def test_live_sessions_stray_with_an_unknown_cookie_is_its_sessions(box: Sandbox, tmp_path: Path) -> None:
    """Issue 10.7: the reaper does not know the session's cookie (root's registry under --all-users holds no
    other user's cookies; here, another state folder): the stray is matched to the live session by its
    session id, and not ended as left behind."""
    s = box.session(env={"SWEEP_HELPER": "orphaned", "SWEEP_SESSION": new_id(), "SWEEP_STATUS": "busy"})
    helper_child, start = s.kid("helper_child")
    wait_for(lambda: ppid(helper_child) == box.nursery.pid, 10, "the helper's child to leave the tree")
    other = {"XDG_STATE_HOME": str(tmp_path / "other-state")}
    args = ["--min-age", "0", "--grace", "5", "--strays", "all"]
    if os.geteuid() == 0:
        args.append("--all-users")
    report = box.reap(*args, env=other)
    assert helper_child not in actions(report) and s.pid not in actions(report)
    assert kept(report)[helper_child]["owner_pid"] == s.pid
    assert procs.alive(helper_child, start) and s.alive


def test_reaper_that_left_its_sessions_tree_never_ends_it(box: Sandbox) -> None:
    """Issue 10.12: `nohup claude-guard reap ... &` from a Bash tool: the reaper carries the session's cookie
    and CLAUDE_PID, but is no longer in its tree."""
    out = box.record / "reaper.out"
    reap = " ".join([sys.executable, "-m", "claude_guard", "reap", "--json", "--min-age", "0", "--grace", "5",
                     "--under", str(box.tmp)])
    command = ["sh", "-c", f"setsid nohup {reap} >{out}.tmp 2>&1 && mv {out}.tmp {out} &"]
    s = box.session(env={"SWEEP_RUN": json.dumps(command), "SWEEP_SESSION": new_id()})
    box.orphan(s)
    (box.record / f"{s.pid}.go").touch()
    wait_for(out.exists, 60, "the detached reaper's report")
    report = json.loads(out.read_text())
    assert s.pid not in actions(report)
    assert "reaper" in skips(report)[s.pid]["why"]
    assert s.alive


def test_setuid_stray_is_never_signalled_even_by_root_all_users(box: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: a set-user-id program of another user, and --all-users")
    folder = box.tmp / "suid"
    folder.mkdir()
    folder.chmod(0o755)
    program = folder / "sleeper"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", program)
    os.chown(program, 65534, 65534)
    program.chmod(0o4755)
    env = {"PATH": "/usr/bin:/bin", "CLAUDE_PID": "999999", "CLAUDECODE": "1",
           "CLAUDE_CODE_SESSION_ID": "5f3c0000-0000-4000-8000-000000000000"}
    pid, start = spawn_in(box, env, str(program), "3000")
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:4] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids[0] == "0" and uids[1] == uids[2] == "65534"  # real root, effective and saved nobody
    report = box.reap("--all-users", "--min-age", "0", "--grace", "1", "--strays", "all")
    assert pid not in actions(report)
    assert "set-user-id" in kept(report)[pid]["why"]
    time.sleep(0.2)
    assert procs.alive(pid, start)


# ----------------------------------------------------------------------------------------------------
# Parents at launch


def _launch_detached(box: Sandbox, program: str, env: dict[str, str]) -> tuple[int, str]:
    """Run `program` with parent 1 from its very start: its launcher exits first (what `setsid -f`, a
    daemonising service or `nohup ... &` from a shell that exits give)."""
    launcher = ("import os, sys, time\n"
                "if os.fork(): os._exit(0)\n"
                "os.setsid()\n"  # as `setsid -f` does: it leads its own session
                "while os.getppid() != 1: time.sleep(0.01)\n"
                "os.chdir(sys.argv[1]); os.execve(sys.argv[2], sys.argv[2:], dict(os.environ))\n")
    p = subprocess.Popen([sys.executable, "-c", launcher, str(box.tmp), program], env=env, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait()
    found: list[int] = []

    def started() -> bool:
        for path in box.record.glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("ppid") == 1 and data["pid"] not in found:
                found.append(int(data["pid"]))
                return True
        return False

    wait_for(started, 30, "the detached session to start")
    pid = box.remember(found[0])
    start = procs.start_token(pid)
    assert start
    return pid, start


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_session_launched_with_parent_1_is_detached_not_orphaned(box: Sandbox, guarded: bool) -> None:
    program = str(box.shim_dir / "claude") if guarded else str(box.claude)
    pid, start = _launch_detached(box, program, {**box.env, "SWEEP_SESSION": new_id()})
    if guarded:
        assert [e["ppid"] for e in box.registry()["sessions"] if e["pid"] == pid] == [1]
    row = box.ps_row(pid)
    assert row["state"] != "orphan" and row["orphan"] is False and row["detached"] is True
    assert "detached" in row["note"]
    text = box.cli("ps", "--under", str(box.tmp)).stdout
    assert "detached" in text
    dry = box.cli("reap", "--dry-run", "--min-age", "0", "--under", str(box.tmp)).stdout
    assert f"kept PID {pid}" in dry and "not an orphan" in dry
    report = box.reap("--min-age", "0", "--grace", "5")
    assert pid not in actions(report) and procs.alive(pid, start)
    os.kill(pid, signal.SIGKILL)  # its parent is PID 1: nobody of ours reaps it


# ----------------------------------------------------------------------------------------------------
# Code arguments


def test_code_arguments_are_not_claude_sessions(box: Sandbox) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    python = spawn_in(box, env, "python3", "-c", "import time; time.sleep(3000) #/claude")
    jobs = [python]
    if shutil.which("perl"):
        jobs.append(spawn_in(box, env, "perl", "-e", "sleep 3000; # /claude"))
    assert not {pid for pid, _ in jobs} & {r["pid"] for r in box.ps()}
    wait_for(lambda: all(ppid(pid) == box.nursery.pid for pid, _ in jobs), 10, "the jobs to run")
    report = box.reap("--only", "orphan", "--min-age", "0")
    assert report["actions"] == []
    assert all(procs.alive(*job) for job in jobs)


@pytest.mark.parametrize("argv", [
    ["python3", "-c", "import time; time.sleep(3000) #/claude"],
    ["perl", "-e", "sleep 3000; # /claude"],
    ["perl", "-E", "say 1; # /x/claude"],
    ["ruby", "-e", "sleep 3000 # /claude"],
    ["node", "-e", "setTimeout(()=>{}, 3e6) // /claude"],
    ["node", "--eval", "1 // /claude"],
    ["node", "-p", "1 // /claude"],
    ["python3", "-m", "claude"],
    ["python3", "-", "/claude"],
    ["bash", "-c", "sleep 3000 # /claude"],
])
def test_interpreter_code_is_not_a_script(argv: list[str]) -> None:
    assert procs.claude_args(procs.Proc(1234, 1, "S", "1", 0, 0, argv, f"/usr/bin/{argv[0]}")) is None


def test_interpreter_running_a_claude_script_still_is(box: Sandbox) -> None:
    for argv in (["python3", "-u", "/x/claude", "-p"], ["node", "/x/node_modules/@anthropic-ai/claude-code/cli.js"]):
        assert procs.claude_args(procs.Proc(1234, 1, "S", "1", 0, 0, argv, f"/usr/bin/{argv[0]}")) is not None
