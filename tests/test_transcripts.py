"""transcripts.continued_session: which session `claude --continue` opens, from real files on disk.

The rule itself is checked against the real CLI in tests/test_launch_real.py; these cover the filters with
files written the way Claude writes them."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from claude_guard import transcripts


def _write(folder: Path, *, mtime: float, entrypoint: str = "cli", sidechain: bool = False,
           said: bool = True, cwd: str = "/work/p") -> str:
    sid = str(uuid.uuid4())
    lines = [{"type": "queue-operation", "operation": "enqueue", "sessionId": sid}]
    if said:
        lines.append({"parentUuid": None, "isSidechain": sidechain, "type": "user", "entrypoint": entrypoint,
                      "cwd": cwd, "sessionId": sid, "message": {"role": "user", "content": "hi"}})
    path = folder / f"{sid}.jsonl"
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    os.utime(path, (mtime, mtime))
    return sid


def test_newest_by_mtime_wins_and_filters_apply(tmp_path: Path) -> None:
    folder = tmp_path / "projects" / transcripts.project_dir_name("/work/p")
    folder.mkdir(parents=True)
    assert folder.name == "-work-p"
    old = _write(folder, mtime=1000)
    newer_print = _write(folder, mtime=2000, entrypoint="sdk-cli")
    _write(folder, mtime=3000, sidechain=True)
    _write(folder, mtime=4000, said=False)
    _write(folder, mtime=5000, cwd="/work-p")  # same folder name, another directory
    (folder / "notes.jsonl").write_text("{}\n")  # not a session id: ignored
    pick = transcripts.continued_session
    assert pick(str(tmp_path), "/work/p", interactive=True) == old
    assert pick(str(tmp_path), "/work/p", interactive=False) == newer_print
    assert pick(str(tmp_path), "/work/p", interactive=False, background_held=frozenset({newer_print})) == old
    assert pick(str(tmp_path), "/elsewhere", interactive=True) is None
    os.utime(folder / f"{old}.jsonl", (9000, 9000))
    assert pick(str(tmp_path), "/work/p", interactive=False) == old
