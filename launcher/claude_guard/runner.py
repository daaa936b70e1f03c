"""Running claude as a child on Windows: start it, report its PID, wait, and return its exit status.

Windows has no exec, so the guard runs claude this way there (launch.start, and the shim's unguarded fallback).
POSIX never comes here: the launch execs claude, keeping its PID, terminal, signals and exit status (an earlier
POSIX half of this module served no launch and was removed once the Windows half ran under Wine). The runner
never writes to stdout or stderr: SDK hosts read claude's stdout, and errors are raised as GuardError for the
caller to report.

The child is started suspended, put into a Job Object that kills its whole tree when the guard's handle closes
(guard exit or guard killed), registered through on_spawn, then resumed. It shares the console, so Ctrl-C and
Ctrl-Break reach claude directly; the runner ignores both while it waits, so claude decides. Exit status: the
child's exit code (TerminateProcess's code for a killed child: Windows has no "killed by signal").
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

from claude_guard.errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType
    from typing import Any

    _Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


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
    raise GuardError("the runner starts claude on Windows only; POSIX execs it (launch.start)", ExitCode.INTERNAL)


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

