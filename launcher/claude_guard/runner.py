"""Running claude as a child: start it, report its PID, pass signals on, wait, and return its exit status.

Windows has no exec, so the guard runs claude this way there (launch.start); on POSIX the launch execs claude
and never comes here. The POSIX half serves no launch: it is kept, and tested on Linux, while the Windows half
is being proven under Wine (tests/test_runner.py runs on both); removing it is left to that work. The runner
never writes to stdout or stderr: SDK hosts read claude's stdout, and errors are raised as GuardError for the
caller to report.

Exit status: the child's exit code. A POSIX child killed by signal N gives 128 + N, as shells report it. The
runner does not kill itself with the same signal instead, because its caller still has work to do after the
child ends (unregistering the session), which a process killed by its own signal could not do.

POSIX signals. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to the runner are sent on
to the child; the runner itself does not die of them, so claude decides how to end. A signal the runner
inherited as ignored (nohup, a background job's SIGINT) is left ignored, and so stays ignored for the child.
Keys pressed at a terminal (Ctrl-C, Ctrl-\\) and window resizes make the kernel signal the whole foreground
process group, which already includes the child; passing those on as well would give claude two SIGINTs for one
Ctrl-C, and claude exits on a second Ctrl-C. On Linux the runner therefore reads each signal's origin
(sigtimedwait) and does not pass on SIGINT, SIGQUIT or SIGWINCH that the kernel sent while the child shares the
runner's process group. Elsewhere there is no origin to read, and those three are not passed on while the
runner is in the terminal's foreground group with the child.

On Linux the child also gets PR_SET_PDEATHSIG = SIGKILL, so if the runner is killed (SIGKILL, OOM killer) the
child dies with it instead of running on unguarded; the child checks its parent after setting it, in case the
runner died first. Call run() from the thread that will wait (PDEATHSIG follows the thread that started the
child), ideally the main thread of a process without other threads: the signals are blocked only in the calling
thread, and a signal another thread takes first is still passed on by a handler, but later.

Windows. The child is started suspended, put into a Job Object that kills its whole tree when the guard's
handle closes (guard exit or guard killed), registered through on_spawn, then resumed. It shares the console,
so Ctrl-C and Ctrl-Break reach claude directly; the runner ignores both while it waits, so claude decides.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from claude_guard.errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import FrameType
    from typing import Any

    _Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

# Signal names passed on to the child on POSIX.
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")
# Signals a terminal sends to its whole foreground process group (keys, window size).
_TERMINAL_SIGNALS = ("SIGINT", "SIGQUIT", "SIGWINCH")
_PR_SET_PDEATHSIG = 1
# How long one wait for a signal lasts; SIGCHLD normally ends it at once, this only bounds a missed one.
_WAIT_SECONDS = 0.5
# Linux reads each signal's origin; tests set this to False to exercise the portable path.
_USE_SIGINFO = sys.platform.startswith("linux") and hasattr(signal, "sigtimedwait")


def run(
    argv: list[str],
    env: dict[str, str],
    *,
    on_spawn: Callable[[int], None] | None = None,
    command_line: str | None = None,
    application: str | None = None,
) -> int:
    """Start `argv` with environment `env`, call `on_spawn(pid)`, wait, and return the exit status.

    `application` is the program file to start (default argv[0]); argv[0] is still what the child sees.
    `command_line` (Windows only) is the exact CreateProcess command line. On Windows with neither given,
    win.launch.plan decides both from argv[0] (an npm claude.cmd is started through its target; any other
    batch file is refused); pass plan()'s result explicitly to choose on_unknown_batch. If on_spawn raises,
    the child is killed and reaped and the exception propagates. Raises GuardError: exit 127 when the
    program cannot be started, 75 when Windows cannot be given the arguments safely.
    """
    if not argv:
        raise GuardError("no program to start: the argument list is empty", ExitCode.INTERNAL)
    if sys.platform == "win32":
        return _run_windows(argv, env, on_spawn, command_line, application)
    else:  # a block of its own, so that mypy checks each platform's names on that platform only
        if command_line is not None:
            raise GuardError("a command line string is a Windows notion; pass argv on POSIX", ExitCode.INTERNAL)
        return _run_posix(argv, env, on_spawn, application)


def exit_status(returncode: int) -> int:
    """A Popen returncode as a process exit status: -N (killed by signal N) becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _cannot_start(program: str, exc: OSError) -> GuardError:
    return GuardError(f"cannot start {program}: {exc.strerror or exc}", ExitCode.NOT_FOUND)


@contextlib.contextmanager
def _reaped_on_error(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill and reap the child if anything fails before it ends, so no unregistered claude is left."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        raise


if sys.platform == "win32":

    def _run_windows(
        argv: list[str],
        env: dict[str, str],
        on_spawn: Callable[[int], None] | None,
        command_line: str | None,
        application: str | None,
    ) -> int:
        from claude_guard.win.job import CREATE_SUSPENDED, KillOnCloseJob, resume_process

        if command_line is None and application is None:
            # The safe plan for argv[0]: .exe/.com directly, npm's claude.cmd through its target, other
            # batch files refused.
            from claude_guard.win.launch import plan

            program, line = plan(argv[0], argv[1:], environ=env)
        else:
            from claude_guard.win.cmdline import build_command_line

            line = command_line if command_line is not None else build_command_line(argv)
            # Always name the program file: with no application name CreateProcess would search for the first
            # word of the line, current folder first.
            program = application if application is not None else argv[0]
        # SIG_IGN here makes the C runtime's console handler report Ctrl-C / Ctrl-Break as handled for this
        # process only; the flag is not inherited, so claude still gets and handles them.
        previous: dict[int, _Handler] = {}
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            for sig in (signal.SIGINT, signal.SIGBREAK):
                previous[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            with KillOnCloseJob() as job:
                try:
                    proc = subprocess.Popen(line, executable=program, env=env, creationflags=CREATE_SUSPENDED)
                except OSError as exc:
                    raise _cannot_start(program, exc) from exc
                with _reaped_on_error(proc):
                    job.assign(proc.pid)
                    # Registered while still suspended: claude runs no code before the guard knows its PID.
                    if on_spawn is not None:
                        on_spawn(proc.pid)
                    resume_process(proc.pid)
                    # Leaving the job's with-block closes it, which ends whatever claude left running.
                    return proc.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

else:

    class _Forwarder:
        """Passes signals on to the child; before the child exists, keeps them until it does."""

        def __init__(self, terminal: frozenset[int]) -> None:
            self.proc: subprocess.Popen[bytes] | None = None
            self.pending: list[int] = []
            self.terminal = terminal

        def handler(self, signum: int, frame: object) -> None:
            """Python-level handler, with no origin to read (not Linux, or another thread took it)."""
            if self.proc is None:
                self.pending.append(signum)
            elif signum not in self.terminal or not _terminal_reached_child(self.proc.pid):
                _send(self.proc, signum)

        def siginfo(self, signum: int, code: int) -> None:
            """Pass on a signal taken by sigtimedwait, whose origin (si_code) is known."""
            assert self.proc is not None
            # si_code <= 0: sent by a process (kill, sigqueue, tgkill), so only the runner got it.
            if code > 0 and signum in self.terminal and _shares_group(self.proc.pid):
                return
            _send(self.proc, signum)

    def _run_posix(
        argv: list[str],
        env: dict[str, str],
        on_spawn: Callable[[int], None] | None,
        application: str | None,
    ) -> int:
        forwarded = [
            sig
            for sig in (getattr(signal, name) for name in FORWARDED_SIGNALS)
            if signal.getsignal(sig) is not signal.SIG_IGN
        ]
        forwarder = _Forwarder(frozenset(getattr(signal, name) for name in _TERMINAL_SIGNALS))
        # Handlers go in first, so a signal between now and the child's start is kept, not fatal. Only the
        # main thread may set them; from another thread the blocked-signal path alone has to do.
        previous: dict[int, _Handler] = {}
        with contextlib.suppress(ValueError):
            for sig in forwarded:
                previous[sig] = signal.signal(sig, forwarder.handler)
        waited = {*forwarded, signal.SIGCHLD}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited) if _USE_SIGINFO else None
        try:
            try:
                proc = subprocess.Popen(
                    argv,
                    executable=application,
                    env=env,
                    # Only a ctypes prctl and a signal mask run there; see the module note on threads.
                    preexec_fn=_child_setup(os.getpid(), old_mask),  # noqa: PLW1509
                )
            except OSError as exc:
                raise _cannot_start(application or argv[0], exc) from exc
            with _reaped_on_error(proc):
                forwarder.proc = proc
                if on_spawn is not None:
                    on_spawn(proc.pid)
                for signum in forwarder.pending:
                    forwarder.handler(signum, None)
                if old_mask is None:
                    proc.wait()  # handlers run during the wait (PEP 475 resumes it)
                else:
                    _wait_with_origin(proc, forwarder, waited)
            return exit_status(proc.returncode)
        finally:
            if old_mask is not None:
                _drop_pending(forwarded)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    if sys.platform.startswith("linux"):

        def _wait_with_origin(proc: subprocess.Popen[bytes], forwarder: _Forwarder, waited: set[int]) -> None:
            while proc.poll() is None:
                info = signal.sigtimedwait(waited, _WAIT_SECONDS)
                if info is not None and info.si_signo != signal.SIGCHLD:
                    forwarder.siginfo(info.si_signo, info.si_code)

        def _drop_pending(signals: list[int]) -> None:
            # Signals that came after the child ended have no one left to reach; drop them rather than let
            # them hit the runner once unblocked. SIGCHLD stays pending for whoever else wants it.
            while signals and signal.sigtimedwait(signals, 0) is not None:
                pass

    else:

        def _wait_with_origin(proc: subprocess.Popen[bytes], forwarder: _Forwarder, waited: set[int]) -> None:
            raise AssertionError("sigtimedwait is used on Linux only")

        def _drop_pending(signals: list[int]) -> None:
            pass

    def _child_setup(parent: int, mask: Iterable[int] | None) -> Callable[[], None] | None:
        """What the child runs between fork and exec: PDEATHSIG on Linux, and the original signal mask."""
        prctl = _prctl()
        if prctl is None and mask is None:
            return None

        def setup() -> None:
            if prctl is not None:
                prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                # If the runner died before prctl took effect, the child was already handed to another
                # parent and no signal will come: end now rather than run unguarded.
                if os.getppid() != parent:
                    os.kill(os.getpid(), signal.SIGKILL)
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

        return setup

    def _prctl() -> Callable[..., int] | None:
        if not sys.platform.startswith("linux"):
            return None
        import ctypes  # only here: the rest of the runner does not need it

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
        prctl.restype = ctypes.c_int
        return prctl

    def _send(proc: subprocess.Popen[bytes], signum: int) -> None:
        # send_signal does nothing once the child is reaped, so a reused PID is never signalled.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    def _shares_group(pid: int) -> bool:
        try:
            return os.getpgid(pid) == os.getpgrp()
        except OSError:
            return False

    def _terminal_reached_child(pid: int) -> bool:
        """Whether a terminal signal to the runner's group reached the child too (no origin to read)."""
        if not _shares_group(pid):
            return False
        for fd in (0, 1, 2):
            try:
                return os.tcgetpgrp(fd) == os.getpgrp()
            except OSError:
                continue
        return False
