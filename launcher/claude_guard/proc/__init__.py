"""Processes: one interface, one backend per system, chosen once (`native()`).

    linux.Linux        reads /proc directly (stdlib only: the `claude` shim's launch path runs on every start,
                       and importing psutil costs several times a bare interpreter start)
    portable.Portable  psutil, for macOS and Windows; `Portable(windows=True)` adds Windows' semantics (owners
                       are account names, consoles instead of terminals, parent PIDs that outlive their process)

Both run on Linux, so tests pass `Portable(...)` to run the other systems' code against live processes.
A fix for one system goes into its backend; what every system shares (which process is Claude Code) is here.

Identity is (pid, start token), never the pid alone: a pid is reused after its process dies. The token is the
backend's own: Linux's is field 22 of /proc/PID/stat (clock ticks since boot, the value Claude Code writes as
`procStart` in ~/.claude/sessions/<PID>.json); psutil's is the creation time in epoch seconds. Tokens of two
backends never compare equal, so one sweep uses one backend throughout.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

LINUX = sys.platform.startswith("linux")
WINDOWS = sys.platform == "win32"

# Basenames of the real CLI's executable: the native build (npm links it as bin/claude.exe) and the
# node entry of older npm releases.
CLAUDE_NAMES = frozenset({"claude", "claude.exe"})
NODE_ENTRIES = ("cli.js", "cli.mjs")
# Interpreters whose first script argument is the program they run (a `#!` script runs as
# `interpreter script args`; node runs cli.js, a test's `python3 claude` a stand-in). A `bash -c '...'`
# wrapper has `-c` there, so it never matches.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish"})
INTERPRETERS = SHELLS | {"node", "nodejs", "bun", "deno", "python", "perl", "ruby"}
GONE_STATES = ("Z", "X")  # a zombie awaiting its parent, or dead
_DELETED = " (deleted)"


def strip_deleted(target: str) -> str:
    """A /proc link's target without the mark the kernel adds when the file was replaced (an update while
    the program runs)."""
    return target[: -len(_DELETED)] if target.endswith(_DELETED) else target


def same_user(a: str | None, b: str | None) -> bool:
    """Windows account names compare without case (`DOMAIN\\user`)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


class Proc:
    """One process as a backend read it. `cmdline` may be read on first use (the sweep's pass reads it only
    for processes that can be Claude Code)."""

    __slots__ = ("_cmdline", "comm", "cpu", "created", "exe", "pid", "ppid", "rss", "start", "state", "tty", "tty_nr",
                 "uid", "user")

    def __init__(self, pid: int, ppid: int, state: str, start: str, uid: int, tty_nr: int, cmdline: list[str] | None,
                 exe: str | None, *, comm: str = "", rss: int = 0, cpu: float = 0.0, created: float = 0.0,
                 user: str | None = None, tty: str | None = None) -> None:
        self.pid = pid
        self.ppid = ppid
        self.state = state  # one letter, as in /proc/PID/stat (Z: zombie)
        self.start = start  # the backend's start token
        self.uid = uid  # -1 where there are no uids (Windows: see `user`)
        self.tty_nr = tty_nr  # controlling terminal; 0: none
        self._cmdline = cmdline  # None: not read yet
        self.exe = exe
        self.comm = comm  # the process name
        self.rss = rss  # bytes (the sweep's pass only)
        self.cpu = cpu  # user + system seconds (the sweep's pass only)
        self.created = created  # epoch seconds
        self.user = user  # account name: read with Windows semantics only
        self.tty = tty  # the terminal's name when the backend gave it (/proc gives only tty_nr)

    @property
    def cmdline(self) -> list[str]:
        if self._cmdline is None:
            self._cmdline = self._read_cmdline()
        return self._cmdline

    @property
    def cmdline_read(self) -> bool:
        """The command line was read in the pass (a process that may be Claude Code)."""
        return self._cmdline is not None

    def _read_cmdline(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"Proc(pid={self.pid}, ppid={self.ppid}, state={self.state!r}, cmdline={self._cmdline!r})"


def program_name(path: str, windows: bool = WINDOWS) -> str:
    """The name a program file goes by: its file name; with Windows semantics compared as Windows does,
    without case, trailing dots or spaces, or the extension Windows adds (`node.exe` is node,
    `CLAUDE.EXE` and npm's `claude.cmd` are claude)."""
    if not windows:
        return os.path.basename(path)
    import ntpath  # already loaded on Windows (it is os.path there)

    name = ntpath.basename(path).rstrip(". ").lower()
    root, ext = ntpath.splitext(name)
    return root if ext in _WINDOWS_PROGRAMS else name


_WINDOWS_PROGRAMS = (".exe", ".com", ".cmd", ".bat")


def claude_args(proc: Proc, is_shim: Callable[[str], bool] | None = None, *,
                windows: bool = WINDOWS) -> list[str] | None:
    """If `proc` runs Claude Code, the arguments it was given; else None.

    Matches the executable, not the name: the native binary by its file name, a script (node `cli.js`, or
    a `claude` script such as a test stand-in) by the script its interpreter runs. A wrapper whose command
    line merely mentions claude (`timeout 40 claude ...`, `bash -c "claude ..."`) is not Claude Code, and
    neither is a claude-guard shim still deciding whether to launch (`is_shim(path)` says which files are
    ours). With Windows semantics names compare as Windows compares them (`program_name`), and our shim is
    itself an executable named claude.exe (pip's launcher, alive as the guard's ancestor while claude runs):
    `is_shim` tells it apart from the real one.
    """
    if proc.state in GONE_STATES or not proc.cmdline:
        return None
    cmdline = proc.cmdline
    exe = proc.exe or cmdline[0]
    exe_name = program_name(exe, windows)
    if exe_name in CLAUDE_NAMES:
        if windows and is_shim is not None and is_shim(exe):
            return None
        return cmdline[1:]
    base = exe_name.rstrip("0123456789.")  # python3.11, node20, ...
    if base not in INTERPRETERS:
        return None
    for i in range(1, len(cmdline)):
        script = cmdline[i]
        if script.startswith("-"):
            if _runs_code(base, script):
                return None  # the program is on the command line (`python3 -c "... #/claude"`): no script
            continue
        name = program_name(script, windows)
        if name in CLAUDE_NAMES:
            if is_shim is not None and is_shim(script):
                return None
            return cmdline[i + 1 :]
        if name in NODE_ENTRIES and "claude-code" in (script.lower() if windows else script):
            return cmdline[i + 1 :]
        return None
    return None


def _runs_code(interpreter: str, option: str) -> bool:
    """`option` makes `interpreter` run code given on its command line (or stdin, or a module), so no later
    argument is the program it runs: `sh -c`, `python3 -c` / `-m` / `-`, `perl -e` / `-ne`, `ruby -e`,
    `node -e` / `-p` / `--eval` / `--print`."""
    if option == "-":
        return True
    if interpreter in SHELLS:
        return option == "-c"
    if interpreter in ("node", "nodejs", "bun", "deno"):
        return option in ("-e", "-p", "--eval", "--print", "-pe")
    if option.startswith("--"):
        return False
    letters = option[1:]
    if interpreter == "python":
        return "c" in letters or "m" in letters  # options cluster: python3 -Bc '...'
    return "e" in letters or "E" in letters  # perl and ruby: -e, -E, -ne, -lane


class Backend:
    """The interface every backend gives. Results never raise for a process that vanished or cannot be read:
    None, False or an empty result says so."""

    name = "base"
    windows = False  # Windows semantics: account names, consoles, parent PIDs that outlive their process
    ticks = False  # start tokens are /proc clock ticks, the format of Claude's own `procStart`

    def start_token(self, pid: int) -> str | None:
        """The start time that, with the pid, identifies a process; None if it is gone."""
        raise NotImplementedError

    def alive(self, pid: int, start: str | None) -> bool:
        """True while that very process runs: same start token, and not a zombie awaiting its parent."""
        raise NotImplementedError

    def read(self, pid: int) -> Proc | None:
        """One process (command line and executable read), or None when it is gone or unreadable."""
        raise NotImplementedError

    def scan(self, uid: int | None, needle: bytes = b"") -> Iterator[Proc]:
        """The launch side's pass: every process of `uid` (None: every user) whose command line contains
        `needle`. Processes that vanish mid-scan are skipped."""
        raise NotImplementedError

    def table(self, uid: int | None, user: str | None = None) -> Iterator[Proc]:
        """The sweep's pass: every process of `uid` (with Windows semantics: of account `user`; None: of every
        user) with name, memory, CPU and creation time; kernel threads left out."""
        raise NotImplementedError

    def ppid(self, pid: int) -> int | None:
        raise NotImplementedError

    def environment(self, pid: int, wanted: Iterable[str]) -> dict[str, str] | None:
        """The `wanted` variables of a process's environment ({} when it has none of them); None when it cannot
        be read. Nothing else of it (tokens, keys) is ever held."""
        raise NotImplementedError

    def cwd(self, pid: int) -> str | None:
        """A process's working folder, None when unreadable."""
        raise NotImplementedError

    def terminal(self, proc: Proc, kind: str | None = None) -> tuple[str | None, bool]:
        """(terminal, live): the process's controlling terminal, if it still has one.

        The kernel takes the controlling terminal away from the whole session when the terminal hangs up (its
        window or master side closed, or the shell that led the session died), so a process that still has
        one is still in someone's terminal. Stdio on a pty without a controlling terminal (a host that set the
        pty up by hand) does not count: nothing hangs it up when its user leaves.
        """
        if not proc.tty_nr:
            return None, False
        return proc.tty or "tty", True

    def whoami(self) -> tuple[int | None, str | None]:
        """(uid, account name) of this process; the name only with Windows semantics, the uid only where
        there are uids."""
        return (os.getuid() if hasattr(os, "getuid") else None), None

    def owner(self, proc: Proc) -> str:
        """Who owns `proc`, for messages."""
        return f"uid {proc.uid}"

    def parent_gone(self, proc: Proc, rows: dict[int, Proc]) -> bool:
        """The parent PID `proc` carries no longer names its parent. Only Windows keeps a dead parent's PID
        (see Portable); elsewhere a dead parent is replaced by an adopter, which the sweep sees."""
        return False

    def signal(self, pid: int, start: str, sig: int, *, owner_ok: Callable[[int, str | None], bool] | None = None,
               claude: bool = False, is_shim: Callable[[str], bool] | None = None) -> str:
        """Send `sig` to that very process, re-checked right before: same start token, not a zombie, an owner
        `owner_ok` accepts, and (with `claude`) still running Claude Code. Returns "sent", "gone", or
        "refused: <why>"."""
        raise NotImplementedError

    def session(self, pid: int) -> tuple[int, int] | None:
        """(process group, session) of a process; None when it is gone or the system has neither."""
        if sys.platform == "win32":  # spelled out so that mypy knows getsid and getpgid are POSIX-only
            return None
        try:
            return os.getpgid(pid), os.getsid(pid)
        except OSError:
            return None

    def ids(self, pid: int) -> tuple[int, int, int] | None:
        """(real, effective, saved) user ids; None when unknown (Windows has none)."""
        return None

    def ignores_hangup(self, pid: int) -> bool | None:
        """SIGHUP is ignored (`nohup`); None when unknown."""
        return None

    def listening(self, pids: Iterable[int]) -> dict[int, list[int]]:
        """The TCP ports each of `pids` listens on, where they can be read ({} elsewhere)."""
        return {}

    def tell(self, proc: Proc, line: str) -> str | None:
        """Write `line` (printable text, one line) where the person or program behind `proc` reads it, before the
        guard ends it: its controlling terminal, or with none its stderr when that is a pipe (an SDK host reads
        the CLI's stderr). Unprintable characters are replaced. Returns where it went, or None (not possible here,
        or nowhere safe). Never blocks."""
        return None

    def pids(self) -> set[int] | None:
        """Every process ID on the machine (anyone's), as cheaply as the system lists them; None where unknown."""
        return None

    def population(self) -> int | None:
        """At least as many as the processes on the machine, as cheaply as the system can say (it may say
        more, never fewer); None where unknown."""
        pids = self.pids()
        return None if pids is None else len(pids)

    def exists(self, pid: int) -> bool:
        """Some process (anyone's, a zombie included) has this PID now."""
        pids = self.pids()
        return pids is not None and pid in pids

    def ancestors(self, pid: int) -> list[int]:
        """Parent, grandparent, ... up to (not including) pid 1 / 0."""
        out: list[int] = []
        seen = {pid}
        while True:
            parent = self.ppid(pid)
            if parent is None or parent <= 1 or parent in seen:
                return out
            out.append(parent)
            seen.add(parent)
            pid = parent

    def _refusal(self, proc: Proc, owner_ok: Callable[[int, str | None], bool] | None, claude: bool,
                 is_shim: Callable[[str], bool] | None) -> str | None:
        """The signal's last check on a process already known to be the one meant."""
        if owner_ok is not None and not owner_ok(proc.uid, proc.user):
            return f"refused: now owned by {self.owner(proc)}"
        ids = self.ids(proc.pid)
        if ids is not None and len(set(ids)) > 1:
            # A set-user-id program runs as its owner with its caller's environment (markers included).
            return "refused: set-user-id (its real, effective and saved user ids differ)"
        if claude and claude_args(proc, is_shim) is None:
            return "refused: no longer runs Claude Code"
        return None


_native: Backend | None = None


def native() -> Backend:
    """This system's backend, made once."""
    global _native
    if _native is None:
        if sys.platform.startswith("linux"):  # spelled out so that mypy checks each system's branch
            from .linux import Linux

            _native = Linux()
        else:
            from .portable import Portable

            _native = Portable(windows=sys.platform == "win32")
    return _native
