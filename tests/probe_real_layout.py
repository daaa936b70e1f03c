"""Probe the real CLI's process layout (research for the sweep's stray rules; see docs/real-claude-layout.md).

Not a test: run `CLAUDE_GUARD_TEST_CACHE=... .venv/bin/python tests/probe_real_layout.py OUT.json [SCENARIO ...]`.
For each scenario a real session (claude -p, or interactive in a pty) is given a scripted Bash tool call or an MCP
server; the probe records the target process's layout while claude lives, then ends the session one way (the
turn's end, a normal exit, SIGTERM or SIGKILL to claude: only the PID this probe started) and records what became
of the target. Everything the probe's sessions started is ended by PID at the end (Leftovers).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from realclaude import (
    TOOL_ARGS,
    FakeAnthropic,
    InteractiveClaude,
    Leftovers,
    PrintRun,
    bash,
    is_alive,
    mcp_server_entry,
    offline_env,
    pid_command,
    wait_for_file,
    write_mcp_config,
    write_mcp_server,
)

SETTLE = 3.0  # seconds to let the CLI finish its own cleanup before looking (research, not a test)


def _field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def snapshot(pid: int, claude_pid: int | None, base_env: dict[str, str]) -> dict[str, Any]:
    """Layout facts of one process: ancestry, group, session, terminal, SIGHUP disposition, added environment."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return {"pid": pid, "state": "zombie"}
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        chain = [f"{p.pid}:{p.name()}" for p in [proc, *proc.parents()]]
        environ = proc.environ()
        ignored = int(_field(pid, "SigIgn") or "0", 16)
        added = {k: v for k, v in environ.items() if base_env.get(k) != v}
        return {
            "pid": pid,
            "state": proc.status(),
            "cmdline": proc.cmdline(),
            "chain": chain,
            "ppid": proc.ppid(),
            "pgid": os.getpgid(pid),
            "sid": os.getsid(pid),
            "tty_nr": int(stat[4]),
            "tpgid": int(stat[5]),
            "descendant_of_claude": claude_pid is not None and any(p.pid == claude_pid for p in proc.parents()),
            "sighup_ignored": bool(ignored & (1 << (signal.SIGHUP - 1))),
            "sigign": _field(pid, "SigIgn"),
            "added_env": added,
        }
    except (psutil.NoSuchProcess, ProcessLookupError, FileNotFoundError):
        return {"pid": pid, "state": "gone"}


def _wrap(kind: str, pidfile: Path) -> Any:
    cmd = pid_command(pidfile, "sleep 3456")
    return {
        "fg": bash(cmd),
        "bg": bash(cmd, background=True),
        "setsid": bash(f"setsid nohup {cmd} >/dev/null 2>&1 &"),
        "amp": bash(f"{cmd} >/dev/null 2>&1 &"),
        "amp-noredirect": bash(f"{cmd} &"),
        "nohup-amp": bash(f"nohup {cmd} >/dev/null 2>&1 &"),
    }[kind]


def scenario(name: str, out: dict[str, Any], claude: str) -> None:
    # name = "<mode>:<kind>:<end>", mode print|pty, kind fg|bg|setsid|amp|amp-noredirect|mcp|mcp-sh(+linger), end
    # turn|normal|term|kill|hup
    mode, kind, end = name.split(":")
    record: dict[str, Any] = {"scenario": name}
    out[name] = record
    with tempfile.TemporaryDirectory(prefix="layout-") as tmp, FakeAnthropic("ok") as api, Leftovers() as left:
        base = Path(tmp)
        project = base / "project"
        project.mkdir()
        env = offline_env(base / "home", api.url, trust=[project])
        pidfile, release = base / "target.pid", base / "release"
        args = list(TOOL_ARGS)
        if kind.startswith("mcp"):
            server = write_mcp_server(base / "mcp")
            entry = mcp_server_entry(server, pidfile, wrapper="sh" in kind, linger="linger" in kind)
            args += ["--mcp-config", str(write_mcp_config(base / "mcp.json", {"kit": entry}))]
            hold = f"while [ ! -e {release} ]; do sleep 0.1; done"
            api.script("go", bash(hold), "done")
        else:
            api.script("go", _wrap(kind, pidfile), "done")
        session: PrintRun | InteractiveClaude
        record["mode"] = {"print": "claude -p", "pty": "interactive, pty without controlling tty",
                          "tty": "interactive, pty as controlling tty"}[mode]
        if mode == "print":
            session = PrintRun(["-p", "go", *args], env, project, base / "logs", command=[claude])
            claude_pid = session.pid
        else:
            session = InteractiveClaude([claude, *args], env=env, cwd=project, controlling_tty=mode == "tty").start()
            session.wait_ready(60)
            claude_pid = session.claude_pid
            session.write("go")
            time.sleep(0.5)
            session.write(b"\r")
        try:
            text = wait_for_file(pidfile, 60)
            target = int(text.split()[0])
            left.track(target)
            tproc = psutil.Process(target)
            # the wrapper of an MCP server, the tool shell of a tool command
            parent = tproc.ppid()
            if parent not in (1, claude_pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    left.track(parent)
            time.sleep(1.0)
            record["claude_pid"] = claude_pid
            record["claude"] = snapshot(claude_pid, None, env)
            record["during"] = snapshot(target, claude_pid, env)
            record["during_parent"] = snapshot(parent, claude_pid, env) if parent not in (1, claude_pid) else None
            if end == "turn":
                if kind.startswith("mcp"):
                    release.touch()
                time.sleep(SETTLE)
                alive = psutil.pid_exists(claude_pid) and is_alive(psutil.Process(claude_pid))
                record["claude_alive_after_turn"] = alive
            elif end in ("normal", "exit-stop", "exit-keep"):
                release.touch()
                if isinstance(session, PrintRun):
                    try:
                        record["claude_rc"] = session.wait(20)
                    except Exception:
                        record["claude_rc"] = "still running 20 s after the turn's end"
                else:
                    session.write("/exit")
                    time.sleep(0.5)
                    session.write(b"\r")
                    if end != "normal":  # the "Background work is running" dialog: 1. stop tasks, 2. keep them
                        time.sleep(2.0)
                        session.write(b"\x1b[B" if end == "exit-keep" else b"")
                        time.sleep(1.0)
                        session.write(b"\r")
                    try:
                        record["claude_rc"] = session.proc.wait(20) if session.proc else None
                    except Exception:
                        record["claude_rc"] = "still running 20 s after /exit"
                time.sleep(SETTLE)
            else:
                sig = {"term": signal.SIGTERM, "kill": signal.SIGKILL, "hup": signal.SIGHUP}[end]
                os.kill(claude_pid, sig)  # the PID this probe started
                time.sleep(SETTLE)
            record["after"] = snapshot(target, claude_pid, env)
            record["after_parent"] = snapshot(parent, None, env) if record["during_parent"] else None
            try:
                record["claude_after"] = "alive" if is_alive(psutil.Process(claude_pid)) else "gone"
            except psutil.NoSuchProcess:
                record["claude_after"] = "gone"
            if isinstance(session, InteractiveClaude):
                record["screen"] = session.text()[-1200:]
        except Exception as error:
            record["error"] = repr(error)[:2000]
            if isinstance(session, InteractiveClaude):
                record["screen"] = session.text()[-1500:]
        finally:
            with contextlib.suppress(Exception):
                session.close(10)
            if isinstance(session, PrintRun):
                record["stderr"] = session.stderr[-500:]


def main() -> None:
    claude = _claude()
    out_path = Path(sys.argv[1])
    out: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in sys.argv[2:]:
        print("probe", name, file=sys.stderr)
        scenario(name, out, claude)
        out_path.write_text(json.dumps(out, indent=1))


def _claude() -> str:
    from realclaude import find_real_claude

    found = find_real_claude()
    if not found:
        raise SystemExit("no real claude: run scripts/install-test-deps")
    return found


if __name__ == "__main__":
    main()
