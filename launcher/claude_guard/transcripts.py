"""Which session `claude --continue` would open: Claude Code's own choice, read from its transcript folder.

`--continue` names no session on its command line, so without this the duplicate rule never saw it and a
`claude -c` in a folder whose newest session was still open joined that session (its turns interleaved).
Claude Code 2.1.330 picks, from `<claude dir>/projects/<escaped cwd>/<uuid>.jsonl`, the file with the newest
modification time (ties: the newer file) that passes its filters; the ones modelled here (checked against the
real CLI in tests/test_launch_real.py, read from its `--continue` code path):

- the head (first 64 KiB) says `"isSidechain":true`, or names a `teamName`: skipped;
- a `sessionKind` of `daemon`/`daemon-worker` on the first message: skipped;
- no message at all (bookkeeping only: queue operations, titles): skipped;
- a session recorded with an SDK entrypoint (`sdk-cli` is `claude -p`, `sdk-py`, `sdk-ts`) is skipped when
  the continuing call is interactive; a `-p` or SDK call continues those too;
- a session held by a live background (non-interactive) Claude process: skipped. Interactive holders (which
  includes `-p` runs) are not skipped by Claude: that is the duplicate the guard refuses.

Not modelled (rare): sessions archived or superseded by a continuation, `/loop` sessions, worktree aliases.
Where they differ the guard may judge another session than Claude opens; it still refuses only a session
that a live process holds.
Hot path: standard library only, and only read for a `--continue` launch.
"""

from __future__ import annotations

import os

HEAD = 65536
SDK_ENTRYPOINTS = frozenset({"sdk-cli", "sdk-ts", "sdk-py"})
_SCAN_LIMIT = 50  # candidates read before giving up (Claude's own list is paged the same way)
_HEX = frozenset("0123456789abcdefABCDEF")


def project_dir_name(cwd: str) -> str:
    """Claude's folder name for a working directory: every character outside [a-zA-Z0-9] becomes `-`."""
    return "".join(c if (c.isascii() and c.isalnum()) else "-" for c in cwd)


def _is_uuid(name: str) -> bool:
    if len(name) != 36:
        return False
    return all((c == "-") if i in (8, 13, 18, 23) else (c in _HEX) for i, c in enumerate(name))


def _folders(projects: str, cwd: str) -> list[str]:
    name = project_dir_name(cwd)
    if len(name) <= 200:
        return [os.path.join(projects, name)]
    # Past 200 characters Claude cuts the name and appends `-<hash>`: every folder with that prefix (the
    # transcript's recorded cwd then decides, in _fits).
    try:
        return [os.path.join(projects, n) for n in os.listdir(projects) if n.startswith(name[:200] + "-")]
    except OSError:
        return []


def _value(head: str, key: str) -> str | None:
    """The first `"key":"value"` string in the text (Claude's transcripts are compact JSON lines)."""
    marker = f'"{key}":"'
    at = head.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    end = head.find('"', start)
    return head[start:end] if end > start else None


def _fits(path: str, cwd: str, interactive: bool) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD).decode("utf-8", "replace")
    except OSError:
        return False
    if '"isSidechain":true' in head or _value(head, "teamName"):
        return False
    first = next((line for line in head.split("\n") if '"parentUuid":' in line), "")
    if _value(first, "sessionKind") in ("daemon", "daemon-worker"):
        return False
    if '"type":"user"' not in head and '"type":"assistant"' not in head:
        return False  # bookkeeping only: nothing said yet
    recorded = _value(head, "cwd")
    if recorded is not None and recorded != cwd:
        return False  # same folder name, another directory (only past 200 characters, or `a-b` vs `a/b`)
    return not (interactive and _value(head, "entrypoint") in SDK_ENTRYPOINTS)


def continued_session(claude_dir: str, cwd: str, *, interactive: bool,
                      background_held: frozenset[str] = frozenset()) -> str | None:
    """The session id `claude --continue` started in `cwd` would open, or None when it would find none."""
    candidates: list[tuple[int, float, str, str]] = []
    for folder in _folders(os.path.join(claude_dir, "projects"), cwd):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            stem = entry.name[:-6]
            if not entry.name.endswith(".jsonl") or not _is_uuid(stem):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            if not entry.is_file():
                continue
            candidates.append((st.st_mtime_ns, st.st_ctime, stem, entry.path))
    candidates.sort(reverse=True)
    for _mtime, _ctime, sid, path in candidates[:_SCAN_LIMIT]:
        if sid in background_held:
            continue
        if _fits(path, cwd, interactive):
            return sid
    return None
