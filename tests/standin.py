"""Installing the stand-in `claude` (tests/fixtures/standin/claude.py, whose options are listed at its top), and
reading what it recorded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fixtures" / "standin" / "claude.py"
HOST = SCRIPT.parent / "host.py"
HELP = Path(__file__).resolve().parent / "fixtures" / "realclaude" / "help-2.1.330.txt"


def write_standin(folder: Path, python: str, name: str = "claude") -> Path:
    """The stand-in as an executable `folder/name` run by `python`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{python}\nHELP = {str(HELP)!r}\n" + SCRIPT.read_text())
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
