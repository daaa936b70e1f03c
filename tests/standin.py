"""A stand-in `claude` for tests: a small script that records what it was given and behaves on demand.

Behaviour comes from environment variables (inherited through the shim unchanged, since they are not
nesting markers):
  STANDIN_RECORD   folder: writes <pid>.json with argv (as bytes, hex), env, isatty, tty, ppid
  STANDIN_SLEEP    seconds to stay alive (default 0)
  STANDIN_EXIT     exit status (default 0)
  STANDIN_TRAP     "term": ignore SIGTERM (a process that must be SIGKILLed); "record": record signals and
                   exit 128+N
  STANDIN_SESSION  write a Claude-style ~/.claude/sessions/<pid>.json holding this session id
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SCRIPT = r'''#!{python}
import json, os, signal, sys, time
rec = os.environ.get("STANDIN_RECORD")
def record(extra=None):
    if not rec:
        return
    data = {
        "pid": os.getpid(), "ppid": os.getppid(),
        "argv_hex": [a.hex() for a in map(os.fsencode, sys.argv[1:])],
        "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items()},
        "env_hex": {k.hex(): v.hex() for k, v in os.environb.items()},
        "isatty": os.isatty(0), "tty": os.ttyname(0) if os.isatty(0) else None,
    }
    data.update(extra or {})
    tmp = os.path.join(rec, f".{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, os.path.join(rec, f"{os.getpid()}.json"))
trap = os.environ.get("STANDIN_TRAP", "")
if trap == "term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif trap == "record":
    def on_signal(signum, frame):
        record({"signal": signum})
        os._exit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
session = os.environ.get("STANDIN_SESSION")
sessions_dir = None
if session:
    home = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
    sessions_dir = os.path.join(home, "sessions")
    os.makedirs(sessions_dir, exist_ok=True)
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    with open(os.path.join(sessions_dir, f"{os.getpid()}.json"), "w") as f:
        json.dump({"pid": os.getpid(), "sessionId": session, "procStart": start, "status": "idle",
                   "statusUpdatedAt": int(time.time() * 1000), "cwd": os.getcwd(), "kind": "interactive",
                   "startedAt": int(time.time() * 1000)}, f)
record()
deadline = time.monotonic() + float(os.environ.get("STANDIN_SLEEP", "0"))
while time.monotonic() < deadline:
    time.sleep(0.05)
if sessions_dir:
    try:
        os.unlink(os.path.join(sessions_dir, f"{os.getpid()}.json"))
    except OSError:
        pass
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
'''


def write_standin(folder: Path, python: str, name: str = "claude") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(SCRIPT.replace("{python}", python))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def records(folder: Path) -> list[dict[str, object]]:
    import json

    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def decode_argv(record: dict[str, object]) -> list[bytes]:
    return [bytes.fromhex(h) for h in record["argv_hex"]]  # type: ignore[union-attr]


def env_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    return dict(os.fsdecode(kv).partition("=")[::2] for kv in raw.split(b"\0") if kv)
