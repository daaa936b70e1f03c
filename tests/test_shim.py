"""The `claude` shim end to end: real processes, real signals, real locks, a real pty.

Every test runs in a private HOME with a stand-in real claude (tests/standin.py) behind the installed shim.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from claude_guard import config, resolve
from conftest import Guard, wait_for
from standin import decode_argv, records, write_standin


def test_runs_the_real_claude_and_execs(guard: Guard) -> None:
    r = guard.run("-p", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""  # the shim never writes to stdout
    [rec] = records(guard.record)
    assert rec["argv"] == ["-p", "hi"]
    # exec, not a child: the registered pid is the stand-in itself
    [entry] = guard.registry()["sessions"]  # type: ignore[misc]
    assert entry["pid"] == rec["pid"]
    assert entry["kind"] == "print"


def test_never_recurses_with_two_shim_folders(guard: Guard, tmp_path: Path) -> None:
    second = tmp_path / "shim2"
    guard.install(second)
    env = {"PATH": os.pathsep.join([str(guard.shim_dir), str(second), str(guard.real_dir), "/usr/bin", "/bin"])}
    r = guard.run("-p", "x", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(records(guard.record)) == 1


def test_not_found_is_127_with_one_line(guard: Guard) -> None:
    env = {"PATH": os.pathsep.join([str(guard.shim_dir), "/usr/bin", "/bin"])}
    r = guard.run("-p", "x", env=env)
    assert r.returncode == 127
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "real claude was not found" in lines[0] and "CLAUDE_GUARD_REAL_CLAUDE" in lines[0]
    assert b"Traceback" not in r.stderr


def test_explicit_real_claude_pointing_at_the_shim_is_refused(guard: Guard) -> None:
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_REAL_CLAUDE": str(guard.shim)})
    assert r.returncode == 127
    assert b"is a claude-guard shim" in r.stderr


def test_explicit_real_claude_from_config(guard: Guard, tmp_path: Path) -> None:
    other = write_standin(tmp_path / "elsewhere", sys.executable)
    guard.write_config(f'real_claude = "{other}"\n')
    env = {"PATH": os.pathsep.join([str(guard.shim_dir), "/usr/bin", "/bin"])}
    r = guard.run("-p", "x", env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["mcp", "list"], ["doctor"], ["update"]])
def test_passthrough_is_never_counted_or_refused(guard: Guard, args: list[str]) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    r = guard.run(*args, env={"CLAUDE_GUARD_MAX_SESSIONS": "1"})
    assert r.returncode == 0, r.stderr
    assert [e["pid"] for e in guard.registry()["sessions"]] == [holder.pid]  # type: ignore[attr-defined]


def test_session_is_refused_at_the_cap(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1"})
    assert r.returncode == 75
    line = r.stderr.decode().strip()
    assert "\n" not in line and "refused" in line and str(holder.pid) in line and "claude-guard reap" in line
    assert r.stdout == b""


def test_unguarded_sessions_count_towards_the_cap(guard: Guard) -> None:
    bare = guard.start(env={"STANDIN_SLEEP": "60"}, cmd=guard.real)  # started around the guard
    guard.wait_recorded(bare.pid)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_COUNT_UNGUARDED": "true"})
    assert r.returncode == 75
    assert "refused" in r.stderr.decode()
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_COUNT_UNGUARDED": "false"})
    assert r.returncode == 0


def test_wrappers_are_not_holders(guard: Guard) -> None:
    # Processes whose command lines merely mention claude and the session are not claude.
    sid = str(uuid.uuid4())
    for cmd in (["sh", "-c", f"sleep 60; echo {guard.real} --resume {sid}"],
                ["timeout", "60", "sleep", "60", str(guard.real), "--resume", sid]):
        guard.procs.append(subprocess.Popen(cmd, env=guard.env))  # type: ignore[arg-type]
    wait_for(lambda: all(os.path.exists(f"/proc/{p.pid}") for p in guard.procs))
    time.sleep(0.2)
    r = guard.run("--resume", sid, "-p", "q")
    assert r.returncode == 0, r.stderr


def test_a_claude_wrapper_script_is_the_launch_itself(guard: Guard, tmp_path: Path) -> None:
    # A user's own `claude` wrapper script that ends up running the shim is not a holder of the session.
    sid = str(uuid.uuid4())
    wrapper = tmp_path / "wrap" / "claude"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\n{guard.shim} \"$@\"\nexit $?\n")
    wrapper.chmod(0o755)
    r = guard.run("--resume", sid, "-p", "q", cmd=wrapper)
    assert r.returncode == 0, r.stderr


def test_wait_for_a_slot(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "2"})
    guard.wait_recorded(holder.pid)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_ON_CAP": "wait",
                                  "CLAUDE_GUARD_WAIT_TIMEOUT": "60"})
    assert r.returncode == 0, r.stderr
    assert holder.wait(timeout=30) == 0  # the waiter ran only after the holder was gone


def test_wait_times_out_with_a_refusal(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_ON_CAP": "wait",
                                  "CLAUDE_GUARD_WAIT_TIMEOUT": "1"})
    assert r.returncode == 75
    assert re.search(rb"after waiting 1s;", r.stderr), r.stderr  # rounded: not "after waiting 1.0604s"
    assert b"waiting for a session slot" not in r.stderr  # stderr is no terminal: an SDK host may read it
    assert guard.registry()["waiters"] == []  # a waiter that gave up leaves the queue


def test_waiting_at_the_cap_says_so_on_a_terminal_ps_lists_it_and_ctrl_c_leaves(guard: Guard) -> None:
    holder = guard.start(env={"STANDIN_SLEEP": "120"})
    guard.wait_recorded(holder.pid)
    env = {**guard.env, "CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_ON_CAP": "wait"}
    pid, master = pty.fork()
    if pid == 0:  # child: `claude` typed at a real terminal, in the sandbox's folder
        os.chdir(guard.tmp)
        os.execve(str(guard.shim), [str(guard.shim)], env)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"Ctrl-C stops waiting" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        text = seen.decode()
        assert f"waiting for a session slot: 1 of 1 Claude sessions already running (PIDs {holder.pid})" in text, text
        assert "up to 5m (wait_timeout)" in text and text.count("claude-guard:") == 1
        rows = json.loads(guard.cli("ps", "--json", "--under", str(guard.tmp), check=True).stdout)
        [waiter] = [r for r in rows if r["type"] == "waiter"]
        assert waiter["pid"] == pid and waiter["position"] == 1 and waiter["waited_s"] >= 0
        table = guard.cli("ps", "--under", str(guard.tmp), check=True).stdout
        assert re.search(rf"^WAITING +POSITION +FOR\n{pid} +1 +\d+s$", table, re.MULTILINE), table
        os.write(master, b"\x03")  # Ctrl-C at the terminal: SIGINT to its foreground process group
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 130
        assert guard.registry()["waiters"] == []  # its place is given up at once, not after going stale
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


def test_with_fewer_processes_than_the_cap_a_launch_reads_no_process(guard: Guard) -> None:
    """Every session and waiter is a process: with fewer processes on the machine than the cap, no count can
    reach it, so a launch reads no process at all (not the table, not each entry). It prunes only entries whose
    PID is gone; an entry whose PID was reused stays until a launch near the cap, which checks each, prunes it."""
    from claude_guard import procs

    sleeper = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        reused = {"pid": sleeper.pid, "start": "1", "session_id": None, "kind": "print", "argv": []}  # not its start
        dead = {"pid": gone.pid, "start": "1", "session_id": None, "kind": "print", "argv": []}
        guard.state.mkdir(parents=True, exist_ok=True)
        (guard.state / "registry.json").write_text(json.dumps({"version": 1, "sessions": [reused, dead],
                                                               "waiters": []}))
        assert len(procs.BACKEND.pids() or ()) < 1_000_000
        r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1000000"})
        assert r.returncode == 0, r.stderr
        pids = [e["pid"] for e in guard.registry()["sessions"]]
        assert sleeper.pid in pids and gone.pid not in pids  # dead pruned, reused kept (and this launch's own)
        r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "2"})  # fewer than the processes: exact
        assert r.returncode == 0, r.stderr
        assert sleeper.pid not in [e["pid"] for e in guard.registry()["sessions"]]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_waiters_are_admitted_in_arrival_order(guard: Guard) -> None:
    env = {"CLAUDE_GUARD_MAX_SESSIONS": "1", "CLAUDE_GUARD_ON_CAP": "wait", "CLAUDE_GUARD_WAIT_TIMEOUT": "120",
           "STANDIN_SLEEP": "0.5"}
    holder = guard.start(env={**env, "STANDIN_SLEEP": "2"})
    guard.wait_recorded(holder.pid)
    waiters = []
    for _ in range(4):
        p = guard.start("-p", "x", env=env)
        waiters.append(p)
        wait_for(lambda p=p: any(w["pid"] == p.pid for w in guard.registry()["waiters"]))  # type: ignore[attr-defined]
    for p in waiters:
        assert p.wait(timeout=120) == 0
    started = {r["pid"]: os.stat(guard.record / f"{r['pid']}.json").st_mtime_ns for r in records(guard.record)}
    order = sorted((p.pid for p in waiters), key=lambda pid: started[pid])
    assert order == [p.pid for p in waiters]


def test_duplicate_resume_refused_guarded_holder(guard: Guard) -> None:
    sid = str(uuid.uuid4())
    holder = guard.start("--session-id", sid, env={"STANDIN_SLEEP": "60"})
    guard.wait_recorded(holder.pid)
    for args in (["--resume", sid], ["-r", sid, "-p", "x"], [f"--resume={sid}"], ["--session-id", sid]):
        r = guard.run(*args)
        assert r.returncode == 75, (args, r.stderr)
        line = r.stderr.decode()
        assert f"already open in PID {holder.pid}" in line and "--fork-session" in line
    # a fork starts a new session: allowed
    r = guard.run("--resume", sid, "--fork-session", "-p", "x")
    assert r.returncode == 0, r.stderr


def test_duplicate_resume_refused_unguarded_holder(guard: Guard) -> None:
    holder = guard.start("--resume", "abc", env={"STANDIN_SLEEP": "60"}, cmd=guard.real)
    guard.wait_recorded(holder.pid)
    r = guard.run("--resume", "abc")
    assert r.returncode == 75
    assert str(holder.pid) in r.stderr.decode()


def test_duplicate_found_through_claudes_own_session_file(guard: Guard) -> None:
    # Started with --continue (no id on its command line): only ~/.claude/sessions/<pid>.json knows the id.
    sid = str(uuid.uuid4())
    holder = guard.start("--continue", env={"STANDIN_SLEEP": "60", "STANDIN_SESSION": sid}, cmd=guard.real)
    guard.wait_recorded(holder.pid)
    r = guard.run("--resume", sid)
    assert r.returncode == 75
    assert f"PID {holder.pid}" in r.stderr.decode()


def test_stale_session_file_of_a_reused_pid_is_not_a_holder(guard: Guard) -> None:
    sid = str(uuid.uuid4())
    sessions = guard.home / ".claude" / "sessions"
    sessions.mkdir(parents=True)
    # The pid of a live process that is not that session (our own test process), wrong start time.
    (sessions / f"{os.getpid()}.json").write_text(json.dumps({"pid": os.getpid(), "sessionId": sid,
                                                                  "procStart": "1"}))
    r = guard.run("--resume", sid, "-p", "x")
    assert r.returncode == 0, r.stderr


def test_takeover_ends_the_holder_first(guard: Guard) -> None:
    holder = guard.start("--resume", "abc", env={"STANDIN_SLEEP": "60", "STANDIN_TRAP": "record"})
    guard.wait_recorded(holder.pid)
    r = guard.run("--resume", "abc", "-p", "x", env={"CLAUDE_GUARD_ON_DUPLICATE": "takeover"})
    assert r.returncode == 0, r.stderr
    assert holder.wait(timeout=30) == 128 + signal.SIGTERM


def test_environment_markers_removed_configuration_kept(guard: Guard) -> None:
    env = {"CLAUDECODE": "1", "CLAUDECODE_FOO": "x", "CLAUDE_CODE_CHILD_SESSION": "1", "CLAUDE_CODE_SESSION_ID": "s",
           "CLAUDE_CODE_ENTRYPOINT": "cli", "CLAUDE_PID": "1", "CLAUDE_CODE_USE_BEDROCK": "1",
           "CLAUDE_CODE_OAUTH_TOKEN": "t", "ANTHROPIC_API_KEY": "k", "HTTPS_PROXY": "http://p"}
    r = guard.run("-p", "x", env=env)
    assert r.returncode == 0, r.stderr
    [rec] = records(guard.record)
    seen = rec["env"]
    for gone in ("CLAUDECODE", "CLAUDECODE_FOO", "CLAUDE_CODE_CHILD_SESSION", "CLAUDE_CODE_SESSION_ID",
                 "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_PID"):
        assert gone not in seen  # type: ignore[operator]
    for kept in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "HTTPS_PROXY"):
        assert kept in seen  # type: ignore[operator]
    assert len(seen["CLAUDE_GUARD_COOKIE"]) == 32  # type: ignore[index]


def test_keep_markers_setting(guard: Guard) -> None:
    r = guard.run("-p", "x", env={"CLAUDECODE": "1", "CLAUDE_GUARD_KEEP_MARKERS": "true"})
    assert r.returncode == 0
    assert records(guard.record)[0]["env"]["CLAUDECODE"] == "1"  # type: ignore[index]


def test_argument_repairs_reach_claude_and_the_log(guard: Guard) -> None:
    r = guard.run("--setting-sources", "--permission-mode", "plan", "--model", "", "-p", "hi")
    assert r.returncode == 0
    assert records(guard.record)[0]["argv"] == ["--setting-sources", "", "--permission-mode", "plan", "-p", "hi"]
    log = (guard.state / "guard.log").read_text()
    assert "restored the empty value of --setting-sources" in log and "--model" in log
    assert r.stdout == b""


def test_undecodable_arguments_and_environment_pass_byte_for_byte(guard: Guard) -> None:
    raw = b"caf\xe9 \xff\xfe"
    r = subprocess.run([os.fsencode(str(guard.shim)), b"-p", raw],
                       env={**{k.encode(): v.encode() for k, v in guard.env.items()}, b"WEIRD": b"\xff\x00"[:1]},
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    [rec] = records(guard.record)
    assert decode_argv(rec) == [b"-p", raw]
    assert rec["env_hex"][b"WEIRD".hex()] == b"\xff".hex()  # type: ignore[index]


def test_exit_status_and_signals_are_claudes_own(guard: Guard) -> None:
    assert guard.run("-p", "x", env={"STANDIN_EXIT": "3"}).returncode == 3
    p = guard.start(env={"STANDIN_SLEEP": "60", "STANDIN_TRAP": "record"})
    rec = guard.wait_recorded(p.pid)
    assert rec["pid"] == p.pid  # exec: the shim's pid is claude's
    os.kill(p.pid, signal.SIGINT)
    assert p.wait(timeout=30) == 128 + signal.SIGINT


def test_pid_reuse_entry_is_not_counted(guard: Guard) -> None:
    # A registry entry for a live pid (this test process) with another start time: a reused pid.
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    (guard.state / "registry.json").write_text(json.dumps(
        {"version": 1, "sessions": [{"pid": os.getpid(), "start": "1"}], "waiters": []}))
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSIONS": "1"})
    assert r.returncode == 0, r.stderr
    assert [e["pid"] for e in guard.registry()["sessions"]] != [os.getpid()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("garbage", [b"", b"{", b"\xff\xfe\x00garbage", b'{"version": 1, "sessions": 5}', b"[]"])
def test_corrupt_registry_is_set_aside_and_claude_starts(guard: Guard, garbage: bytes) -> None:
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    (guard.state / "registry.json").write_bytes(garbage)
    r = guard.run("-p", "x")
    assert r.returncode == 0
    assert b"moved it to" in r.stderr and b"Traceback" not in r.stderr
    aside = list(guard.state.glob("registry.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # nothing lost
    assert len(guard.registry()["sessions"]) == 1  # type: ignore[arg-type]


def _hold_lock(guard: Guard) -> int:
    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(guard.state / "registry.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_lock_timeout_warns_and_starts(guard: Guard) -> None:
    fd = _hold_lock(guard)
    try:
        r = guard.run("-p", "x", env={"CLAUDE_GUARD_LOCK_TIMEOUT": "0.5"})
    finally:
        os.close(fd)
    assert r.returncode == 0
    assert b"still busy" in r.stderr and b"starting claude unguarded" in r.stderr
    assert len(records(guard.record)) == 1


def test_lock_timeout_under_strict_refuses(guard: Guard) -> None:
    fd = _hold_lock(guard)
    try:
        r = guard.run("-p", "x", env={"CLAUDE_GUARD_LOCK_TIMEOUT": "0.5", "CLAUDE_GUARD_STRICT": "1"})
    finally:
        os.close(fd)
    assert r.returncode == 74
    assert records(guard.record) == []


def test_lock_is_compatible_with_filelock(guard: Guard) -> None:
    import filelock

    guard.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with filelock.FileLock(str(guard.state / "registry.json.lock")):
        r = guard.run("-p", "x", env={"CLAUDE_GUARD_LOCK_TIMEOUT": "0.3"})
    assert b"still busy" in r.stderr


def test_bad_config_starts_claude_unguarded_with_one_line_naming_file_line_and_key(guard: Guard) -> None:
    # Issue 15.2: the guard never keeps claude from starting over its own input; only strict does.
    guard.write_config('on_cap = "refuse"\nmax_session = 3\n')  # a typo of max_sessions
    r = guard.run("-p", "x")
    assert r.returncode == 0
    line = r.stderr.decode().strip()
    assert "\n" not in line and f"{guard.config}:2" in line and "unknown key 'max_session'" in line
    assert "did you mean max_sessions?" in line and "starting claude unguarded" in line
    assert len(records(guard.record)) == 1  # claude ran
    assert not (guard.state / "registry.json").exists()  # unguarded: nothing registered
    version = guard.run("--version")
    assert version.returncode == 0 and version.stderr == b""  # a pass-through passes, silently
    strict = guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"})
    assert strict.returncode == 78 and f"{guard.config}:2".encode() in strict.stderr
    assert len(records(guard.record)) == 2  # --version ran, the strict launch did not
    guard.write_config('on_cap = "refuse"\nmax_sessions = "many"\n')
    r = guard.run("-p", "x")
    assert r.returncode == 0 and f"{guard.config}:2: max_sessions".encode() in r.stderr
    guard.write_config("max_sessions = [\n")
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"invalid TOML" in r.stderr and b"line" in r.stderr
    guard.write_config("")
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_ON_CAP": "sometimes"})
    assert r.returncode == 0 and b"CLAUDE_GUARD_ON_CAP" in r.stderr
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_MAX_SESSION": "3"})
    assert r.returncode == 0
    assert b"unknown variable CLAUDE_GUARD_MAX_SESSION (did you mean CLAUDE_GUARD_MAX_SESSIONS?)" in r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1


def test_unsafe_state_folder_is_refused(guard: Guard, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    guard.state.parent.mkdir(parents=True, exist_ok=True)
    guard.state.symlink_to(target)
    r = guard.run("-p", "x")
    assert r.returncode == 0 and b"symlink" in r.stderr  # claude still starts, unguarded, with a warning
    assert list(target.iterdir()) == []  # nothing written through the link
    r = guard.run("-p", "x", env={"CLAUDE_GUARD_STRICT": "1"})
    assert r.returncode == 74


def test_interactive_session_in_a_pty(guard: Guard) -> None:
    pid, master = pty.fork()
    if pid == 0:  # child: become `claude` on a real terminal
        os.execve(str(guard.shim), [str(guard.shim)], {**guard.env, "STANDIN_SLEEP": "1"})
    try:
        rec = guard.wait_recorded(pid)
        assert rec["isatty"] is True
        [entry] = guard.registry()["sessions"]  # type: ignore[misc]
        assert entry["kind"] == "interactive" and entry["tty"] == rec["tty"]
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0


def test_install_moves_a_foreign_claude_aside_and_uninstall_restores_it(guard: Guard, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    foreign = folder / "claude"
    foreign.write_text("#!/bin/sh\necho foreign\n")
    foreign.chmod(0o755)
    r = guard.cli("install", "--dir", str(folder), check=True)
    assert "moved the claude that was there" in r.stdout
    assert resolve.is_shim(str(foreign))
    # the moved-aside claude is what the shim now runs from that PATH position
    env = {"PATH": os.pathsep.join([str(folder), "/usr/bin", "/bin"])}
    out = guard.run(env=env, cmd=foreign)
    assert out.returncode == 0 and b"foreign" in out.stdout
    guard.cli("uninstall", "--dir", str(folder), check=True)
    assert foreign.read_text() == "#!/bin/sh\necho foreign\n"
    assert not (folder / "claude.pre-claude-guard").exists()


def test_install_prints_the_path_line_when_the_shim_comes_too_late(guard: Guard, tmp_path: Path) -> None:
    folder = tmp_path / "late"
    env = {"PATH": os.pathsep.join([str(guard.real_dir), str(folder), "/usr/bin", "/bin"]), "SHELL": "/bin/bash"}
    r = guard.cli("install", "--dir", str(folder), env=env, check=True)
    assert f'export PATH="{folder}:$PATH"' in r.stdout and "~/.bashrc" in r.stdout
    r = guard.cli("install", "--dir", str(folder), env={**env, "PATH": f"{folder}:{guard.real_dir}"}, check=True)
    assert "export PATH" not in r.stdout


def test_uninstall_leaves_a_foreign_file_alone(guard: Guard, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "claude").write_text("#!/bin/sh\n")
    r = guard.cli("uninstall", "--dir", str(folder), check=False)
    assert r.returncode == 1 and "not a claude-guard shim" in r.stderr
    assert (folder / "claude").exists()


def test_config_command_shows_values_and_sources(guard: Guard) -> None:
    guard.write_config('max_sessions = 3\n')
    r = guard.cli("config", env={"CLAUDE_GUARD_ON_CAP": "wait"}, check=True)
    assert f"{guard.config}:1" in r.stdout
    assert "env CLAUDE_GUARD_ON_CAP" in r.stdout
    data = json.loads(guard.cli("config", "--json", check=True).stdout)
    assert data["max_sessions"] == {"value": 3, "source": f"{guard.config}:1"}


def test_config_command_prints_toml_a_config_file_takes(guard: Guard) -> None:
    """Values in the units a person writes (not `1800.0` or `268435456`), the two empty-means-find settings as
    found, columns aligned, and the whole listing valid TOML that reads back to the same settings."""
    import tomllib

    guard.write_config('idle_after = "45m"\nmemory_floor = "2GiB"\nmemory_margin = "10%"\ngrace = 2.5\n'
                       'protect = ["a b", "quote\\"d"]\n')
    out = guard.cli("config", check=True).stdout
    lines = out.splitlines()
    def shown(key: str, value: str) -> bool:
        return re.search(rf"^{key} +{re.escape(' = ' + value)} ", out, re.MULTILINE) is not None

    assert shown("idle_after", '"45m"') and shown("memory_floor", '"2GiB"') and shown("grace", '"2.5s"')
    assert shown("memory_margin", '"10%"') and shown("cpu_window", '"5m"') and "1800" not in out
    assert shown("real_claude", f'"{guard.real}"') and "# default: the first claude on PATH" in out
    assert shown("state_dir", f'"{guard.state}"')
    assert len({line.index(" = ") for line in lines[1:]}) == 1  # the keys line up
    columns = {line.index("# ") for line in lines[1:] if len(line.split(" = ", 1)[1]) < 60}
    assert len(columns) == 1  # the source column lines up (past the widest short value)
    shown = tomllib.loads(out)
    data = json.loads(guard.cli("config", "--json", check=True).stdout)
    for key, spec in config.KEYS.items():
        assert spec.parse(shown[key]) == data[key].get("resolved", data[key]["value"]), key
    assert data["real_claude"] == {"value": "", "source": "default", "resolved": str(guard.real)}
