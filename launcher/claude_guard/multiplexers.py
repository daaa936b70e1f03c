"""Terminal multiplexers (tmux, GNU screen): is anyone looking at the terminal a session runs in?

A session inside tmux or screen keeps its controlling terminal (the pane's pty) after its user detached and
left, so by the terminal alone it is attached forever and the idle rules never reach it. This module asks the
multiplexer whether a client is attached to the session's own multiplexer session.

What counts as evidence, and what is only a hint: the session's `TMUX`/`STY` variables name the server and its
socket, but a variable is a hint. The server must be a live process of the session's owner and an ancestor of
the session (the pane's shell is its child), and the socket must be a socket owned by that user. Then:
  - tmux sets the user-execute bit of its socket while any client is attached to any of its sessions; with the
    bit clear, no one is attached. With it set, tmux itself is asked which sessions have clients
    (`list-panes -a`), only when the sweep runs as that very user (root does not drive another user's server).
  - screen keeps one socket per session, with the user-execute bit set while a client is attached.
Whatever is unclear (a check fails, tmux does not answer in time, another user's tmux with clients) leaves the
session attached, which keeps it.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .proc import Backend, Proc

# The variables a multiplexer sets in every pane or window (read from the session's environment).
ENV = ("TMUX", "TMUX_PANE", "STY", "SCREENDIR")
_TMUX_TIMEOUT = 2.0


def unattended(row: Proc, rows: dict[int, Proc], backend: Backend,
               asked: dict[str, dict[str, int] | None] | None = None) -> str | None:
    """"tmux" or "screen" when `row` (a session with a controlling terminal) runs in a session of that
    multiplexer that no client is attached to; None when someone may be looking (or it cannot be told).
    `asked`: what each tmux server said in this pass (one `list-panes` per server, not per session)."""
    if sys.platform == "win32":
        return None
    env = backend.environment(row.pid, ENV) or {}
    if env.get("TMUX") and env.get("TMUX_PANE"):
        # TMUX=<socket>,<server pid>,<session index>; the socket path may itself hold commas.
        socket_path, server, _index = [*env["TMUX"].rsplit(",", 2), "", ""][:3]
        if server.isdigit() and _server_ok(int(server), row, rows) and \
                _attached_tmux(socket_path, env["TMUX_PANE"], row.uid, {} if asked is None else asked) is False:
            return "tmux"
    if env.get("STY"):
        pid_text = env["STY"].split(".", 1)[0]
        if pid_text.isdigit() and _server_ok(int(pid_text), row, rows) and \
                _attached_screen(env["STY"], env.get("SCREENDIR"), row.uid) is False:
            return "screen"
    return None


def _server_ok(server: int, row: Proc, rows: dict[int, Proc]) -> bool:
    """The multiplexer's server is a live process of the session's owner, and the session descends from it."""
    owner = rows.get(server)
    if owner is None or owner.uid != row.uid:
        return False
    seen: set[int] = set()
    pid = row.ppid
    while pid > 1 and pid not in seen:
        if pid == server:
            return True
        seen.add(pid)
        parent = rows.get(pid)
        if parent is None:
            return False
        pid = parent.ppid
    return False


def _socket(path: str, uid: int) -> os.stat_result | None:
    """The stat of `path` when it is a socket (not followed through a link) owned by `uid`."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return None
    return st if stat.S_ISSOCK(st.st_mode) and st.st_uid == uid else None


def _attached_tmux(socket_path: str, pane: str, uid: int, asked: dict[str, dict[str, int] | None]) -> bool | None:
    st = _socket(socket_path, uid)
    if st is None:
        return None
    if not st.st_mode & stat.S_IXUSR:
        return False  # no client on any session of this server
    if not hasattr(os, "geteuid") or os.geteuid() != uid:
        return None  # clients somewhere on another user's server: which session, only that user asks
    if socket_path not in asked:
        asked[socket_path] = _clients_by_pane(socket_path)
    clients = (asked[socket_path] or {}).get(pane)
    return None if clients is None else clients > 0


def _clients_by_pane(socket_path: str) -> dict[str, int] | None:
    """{pane id: clients attached to its session} as the tmux server at `socket_path` says; None if it does not."""
    import shutil
    import subprocess

    tmux = shutil.which("tmux", path=os.environ.get("PATH") or os.defpath)
    if not tmux:
        return None
    try:
        out = subprocess.run([tmux, "-S", socket_path, "list-panes", "-a", "-F", "#{pane_id} #{session_attached}"],
                             check=False, capture_output=True, text=True, timeout=_TMUX_TIMEOUT,
                             stdin=subprocess.DEVNULL,
                             env={"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    panes = {}
    for line in out.stdout.splitlines():
        pane_id, _, clients = line.partition(" ")
        if clients.strip().isdigit():
            panes[pane_id] = int(clients)
    return panes


def _attached_screen(sty: str, screendir: str | None, uid: int) -> bool | None:
    """screen's socket for the session is `<dir>/<STY>`: $SCREENDIR, else the folder screen was built with
    (/run/screen/S-<user> on Debian, /var/run/screen/... elsewhere), else ~/.screen."""
    if sys.platform == "win32" or "/" in sty or sty in (".", ".."):
        return None
    folders = [screendir] if screendir else []
    try:
        import pwd

        user = pwd.getpwuid(uid)
        folders += [f"/run/screen/S-{user.pw_name}", f"/var/run/screen/S-{user.pw_name}",
                    os.path.join(user.pw_dir, ".screen")]
    except (KeyError, ImportError):
        pass
    for folder in folders:
        st = _socket(os.path.join(folder, sty), uid)
        if st is not None:
            return bool(st.st_mode & stat.S_IXUSR)
    return None
