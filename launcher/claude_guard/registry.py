"""The per-user registry of guarded sessions: one JSON file under a lock, in a private folder.

Layout (all in `state_dir`, a folder of mode 0700 owned by the user):
  registry.json        {"version": 1, "sessions": [entry...], "waiters": [waiter...]}
  registry.json.lock   the lock file (flock; the same lock `filelock.FileLock` takes, so the sweep can use it)
  guard.log            one line per launch decision and repair

Why each rule:
- Writes go through files.atomic_write (a temp file renamed over the old one), so a launch killed at any
  moment leaves either the old or the new registry, never half of one. Not fsynced: the registry lists live
  processes, and none of them outlives a crash of the system, so its content after a reboot is worth nothing
  either way (a torn file is set aside as below); an fsync on every launch is worth a lot of milliseconds on a
  busy disk.
- A registry that does not parse is renamed aside (`registry.json.corrupt-<time>`, nothing lost) and
  rebuilt; the guard must never keep `claude` from starting because of its own state.
- A folder or file that is a symlink, owned by someone else, or writable by others is refused: it would
  let another user plant entries (and so steer what the reaper signals) or redirect our writes.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time

from . import files, jsonio
from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .records import RegistryData

if sys.platform != "win32":
    import fcntl

REGISTRY = "registry.json"
LOCK = REGISTRY + ".lock"
LOG = "guard.log"
VERSION = 1
_LOG_LIMIT = 1 << 20  # rotate guard.log past 1 MiB, keeping one old file


class LockTimeout(GuardError):
    def __init__(self, path: str, waited: float) -> None:
        super().__init__(
            f"registry lock {path} still busy after {waited:g}s (another launch, or a process frozen while "
            "holding it); raise lock_timeout, or find the holder with `fuser` / `lsof`", ExitCode.STATE)


def _unsafe(path: str, st: os.stat_result, what: str) -> GuardError:
    return GuardError(
        f"{what} {path} is {describe_unsafe(st) or 'unsafe'}; remove it or set state_dir to a private folder",
        ExitCode.STATE)


def describe_unsafe(st: os.stat_result, windows: bool = sys.platform == "win32") -> str | None:
    """Why a file or folder of ours must not be trusted, or None when it is fine.

    With Windows semantics only a symlink is refused: Windows has no owner or mode bits to read here (os.stat
    makes the bits up, 0o777 for every folder), access is in ACLs, and the state folder sits in the user's
    own profile, which other accounts cannot write by default (doctor reports it so)."""
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if windows:
        return None
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def ensure_dir(path: str) -> None:
    """Create the state folder (0700) or check that an existing one is safe to use."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        try:
            if parent:
                os.makedirs(parent, mode=0o755, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass  # a concurrent launch made it; checked below
            st = os.lstat(path)
        except OSError as e:  # a read-only file system, a parent that is a file, no permission
            raise GuardError(f"cannot create state folder {path}: {e.strerror}; set state_dir to a private "
                             "folder on a writable file system", ExitCode.STATE) from None
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise GuardError(f"state folder {path} is not a folder; remove it or set state_dir", ExitCode.STATE)
    problem = describe_unsafe(st)
    if problem:
        raise _unsafe(path, st, "state folder")


class Lock:
    """An exclusive lock with a bounded wait.

    POSIX: flock(2) on `registry.json.lock`, opened exactly as filelock's UnixFileLock opens it, so the
    two interoperate and the kernel drops the lock when its holder dies (no stale lock after SIGKILL).
    Windows: filelock itself.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._other: Any = None

    def __enter__(self) -> Lock:
        if sys.platform == "win32":  # filelock's msvcrt lock; this branch is not on a POSIX hot path
            import filelock

            self._other = filelock.FileLock(self.path, timeout=self.timeout)
            try:
                self._other.acquire()
            except filelock.Timeout:
                raise LockTimeout(self.path, self.timeout) from None
            return self
        else:  # the same branch test lets mypy check each platform's half on its own
            deadline = time.monotonic() + self.timeout
            delay = 0.001
            while True:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                                 0o600)
                except OSError as e:
                    raise GuardError(f"cannot open registry lock {self.path}: {e.strerror}; remove it if it is a "
                                     "symlink, or set state_dir to a private folder", ExitCode.STATE) from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    os.close(fd)
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockTimeout(self.path, self.timeout) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
                    continue
                if os.fstat(fd).st_nlink == 0:  # the file was unlinked while we waited: lock the new one
                    os.close(fd)
                    continue
                self._fd = fd
                return self

    def __exit__(self, *exc: object) -> None:
        if self._other is not None:
            self._other.release()
        elif self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


class Registry:
    """The registry of one user. Use `with registry.locked():` around read-modify-write."""

    def __init__(self, folder: str, lock_timeout: float = 10.0) -> None:
        self.folder = folder
        self.path = os.path.join(folder, REGISTRY)
        self.lock_timeout = lock_timeout
        self.warnings: list[str] = []  # said once on stderr by the caller (the shim prints nothing itself)

    def locked(self) -> Lock:
        ensure_dir(self.folder)
        return Lock(os.path.join(self.folder, LOCK), self.lock_timeout)

    def load(self) -> RegistryData:
        """The registry's content; a missing file is an empty registry, a bad one is set aside."""
        try:
            return self.read()
        except _MALFORMED as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not a valid registry"
            return self._set_aside(reason)

    def peek(self) -> RegistryData:
        """The registry for reading only (ps, the sweep's planning): the same safety checks as `load` (an unsafe
        folder or file raises GuardError), no lock needed (it is replaced by rename), and nothing moved: a file
        that does not parse reads as empty, and the next launch sets it aside."""
        try:
            st = os.lstat(self.folder)
        except FileNotFoundError:
            return _empty()
        if describe_unsafe(st) or not stat.S_ISDIR(st.st_mode):
            raise _unsafe(self.folder, st, "state folder")
        try:
            return self.read()
        except _MALFORMED:
            return _empty()

    def read(self) -> RegistryData:
        """The file's content, checked on every read: missing reads as empty; a symlink, another user's file
        or one writable by group or others (anyone who could have written into it) raises GuardError;
        anything unreadable or malformed raises (one of _MALFORMED) for the caller to handle."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return _empty()
        if stat.S_ISLNK(st.st_mode):
            raise _unsafe(self.path, st, "registry")
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)  # the file actually opened, not the name looked at before
            # Mode bits mean nothing on Windows (Python reports 0o666 for any writable file): the profile
            # folder's ACL keeps other accounts out there.
            if hasattr(os, "geteuid") and describe_unsafe(st):
                raise _unsafe(self.path, st, "registry")
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            return _validate(jsonio.loads(f.read(64 << 20).decode("utf-8")))

    def _set_aside(self, reason: str) -> RegistryData:
        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        try:
            os.rename(self.path, aside)
            self.warnings.append(f"registry {self.path} was {reason}; moved it to {aside} and started a new one")
        except OSError as e:
            self.warnings.append(f"registry {self.path} was {reason} and could not be moved aside "
                                 f"({e.strerror}); starting a new one")
        return _empty()

    def save(self, data: RegistryData) -> None:
        """Atomically replace the registry (files.atomic_write: temp file, rename; not durable, see above)."""
        data["version"] = VERSION
        try:
            files.atomic_write(self.path, jsonio.dumps(data).encode("ascii"), durable=False)
        except OSError as e:
            raise GuardError(f"cannot write registry {self.path}: {e.strerror}; free disk space or fix the "
                             "folder's permissions", ExitCode.STATE) from None
        remove_stale_temps(self.path)

    def log(self, line: str) -> None:
        """Append one line to guard.log (never to stdout: SDK hosts read claude's stdout)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            files.append(os.path.join(self.folder, LOG), f"{stamp} pid={os.getpid()} {line}\n", _LOG_LIMIT)
        except OSError:
            pass  # the log is a record, not a reason to fail a launch


def remove_stale_temps(path: str) -> None:
    """A writer killed between creating its temp file (files.atomic_write) and the rename leaves the file
    behind; its pid is in the name. Only temps of this very file whose writer is gone are removed: another
    file in the folder (the sweep's ledger) is saved under another lock, and the lock alone must not be what
    keeps a live writer's temp file safe."""
    folder, prefix = os.path.dirname(path), os.path.basename(path) + ".tmp-"
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    from .proc import native

    for name in names:
        pid = name[len(prefix):]
        # Any process with that pid keeps it (a zombie's temp file goes at a later save).
        if not pid.isdigit() or int(pid) == os.getpid() or native().start_token(int(pid)) is not None:
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


# What a registry that cannot be used looks like, all set aside and rebuilt by `load`: unreadable, not UTF-8,
# not JSON (nested too deeply included: jsonio says ValueError) or not our shape.
_MALFORMED = (OSError, ValueError, KeyError, TypeError)


def _empty() -> RegistryData:
    return {"version": VERSION, "sessions": [], "waiters": []}


def _validate(data: Any) -> RegistryData:
    """Accept only the shape we write; anything else counts as corrupt."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError("unknown registry format")
    sessions = data.get("sessions", [])
    waiters = data.get("waiters", [])
    if not isinstance(sessions, list) or not isinstance(waiters, list):
        raise ValueError("unknown registry format")
    for entry in (*sessions, *waiters):
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int) \
                or not isinstance(entry.get("start"), str):
            raise ValueError("unknown registry entry")
    data.setdefault("sessions", sessions)
    data.setdefault("waiters", waiters)
    return data  # type: ignore[return-value]
