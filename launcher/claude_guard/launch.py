"""The launch path shared by the `claude` shim, `claude-guard exec` and the SDK helpers.

    prepare()  environment cleaned, arguments repaired, call classified (pure; no I/O but PATH lookups)
    admit()    under the registry lock: prune, duplicate rule, cap rule, register (admission.py)
    start()    exec the real claude (POSIX), so the registered pid *is* claude and no guard stays resident;
               the wait-and-forward runner where exec is impossible (Windows)

Everything here is on the hot path of every `claude` start: standard library only, imported lazily
where a branch is rare. What only a session needs (the process backend, the registry) is imported when the call
is a session: a pass-through such as `claude --version` is measured against the real CLI alone.
"""

from __future__ import annotations

import os
import sys

from . import argv, environ, resolve
from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .registry import Registry
    from .settings import Settings


class Plan:
    """What will be started, and how the guard sees it."""

    __slots__ = ("args", "call", "env", "prefix", "program", "removed", "repairs")

    def __init__(self, program: str, prefix: list[str], args: list[str], env: dict[str, str],
                 call: argv.Call, repairs: list[str], removed: list[str]) -> None:
        self.program = program  # the file to execute
        self.prefix = prefix  # arguments before claude's own (`cli.js` for `node cli.js`)
        self.args = args  # claude's arguments, repaired
        self.env = env
        self.call = call
        self.repairs = repairs
        self.removed = removed

    @property
    def command(self) -> list[str]:
        return [self.program, *self.prefix, *self.args]


def prepare(program: str, prefix: list[str], args: list[str], env: Mapping[str, str],
            settings: Settings) -> Plan:
    repaired, repairs = argv.repair(list(args))
    call = argv.classify(repaired)
    clean, removed = environ.clean(env, settings.strip_env, settings.keep_env, settings.keep_markers)
    return Plan(program, prefix, repaired, clean, call, repairs, removed)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> str | None:
    """Ask the kernel to send this process SIGTERM when the thread that started it exits (Linux only; the
    request survives exec, so it reaches the real claude). Returns None when it is in force, else why not.

    Why: an SDK host that dies (kill -9, OOM) otherwise leaves its claude child running until the next sweep.
    Why only for SDK launches: ctypes costs a few milliseconds. The kernel watches the parent *thread*, so the
    request is made only when that thread is the host's main thread: asyncio starts the Python SDK's CLI from
    the loop's thread (the main thread under asyncio.run) and Node from its JavaScript thread, but anyio on trio
    spawns from a worker thread that trio retires after a few idle seconds, which would end a live conversation.
    macOS has no such request; on Windows the runner's job object ends claude with the guard.
    """
    if not sys.platform.startswith("linux"):
        return "not Linux"
    import signal

    parent = os.getppid()
    me = str(os.getpid())
    try:
        # CONFIG_PROC_CHILDREN: each thread's own children. No file, no proof: leave it to the sweep.
        with open(f"/proc/{parent}/task/{parent}/children", "rb") as f:
            if me.encode() not in f.read().split():
                return "started from a thread other than its parent's main thread"
    except OSError:
        return "cannot tell which thread of its parent started it"
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return "prctl refused"
    except (OSError, AttributeError, ImportError):
        return "no prctl in this C library"
    if os.getppid() != parent:
        # The parent died before the request took effect: the kernel will not send the signal now.
        raise SystemExit(128 + int(signal.SIGTERM))
    return None


def start(plan: Plan, on_spawn: Callable[[int], None] | None = None, unknown_batch: str = "refuse",
          with_parent: bool = False, log: Callable[[str], None] | None = None) -> int:
    """Run the plan: exec on POSIX (never returns), the wait-and-forward runner on Windows.

    `with_parent`: claude ends when its parent does (die_with_parent; POSIX exec only).

    Windows has no exec, and a `.cmd` handed to CreateProcess would put cmd.exe (and its parsing of every
    argument) between the caller and claude: win.launch.plan starts npm's shim target directly instead, and
    refuses (or, with unknown_batch = "escape", strictly escapes) any other batch file.
    """
    if os.name == "posix":
        if with_parent:
            why_not = die_with_parent()
            if why_not and log is not None:
                log(f"die_with_parent not in force: {why_not}")
        try:
            os.execve(plan.program, plan.command, plan.env)
        except OSError as e:
            raise GuardError(f"cannot run {plan.program}: {e.strerror}; check the file is an executable "
                             "Claude Code", 126) from None
    from . import runner
    from .win import launch as win_launch

    application, command_line = win_launch.plan(plan.program, [*plan.prefix, *plan.args], environ=plan.env,
                                                on_unknown_batch=unknown_batch)
    return runner.run(plan.command, plan.env, on_spawn=on_spawn, application=application,
                      command_line=command_line)


# Nested launches (a session whose Bash tool runs claude, whose Bash tool runs claude, ...) each add one to the
# depth; a wrapper that starts the guard again forks or execs without end, and this is where it stops.
_MAX_DEPTH = 8


def launcher_mark(env: Mapping[str, str]) -> str:
    """The LAUNCHER value for what this launch starts: this process, and one more level than it was given."""
    depth = env.get(environ.LAUNCHER, "").rpartition(":")[2]
    level = int(depth) + 1 if depth.isdigit() else 1
    return f"{os.getpid()}:{_own_start()}:{level}"


def _own_start() -> str:
    """This process's start token. On Linux read here from /proc/self/stat (field 22, after the parenthesised
    name), as proc.linux reads it: a pass-through such as `claude --version` then loads no process backend."""
    if sys.platform.startswith("linux"):
        try:
            fd = os.open("/proc/self/stat", os.O_RDONLY)
            try:
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
            return data[data.rfind(b")") + 2:].split()[19].decode()
        except (OSError, IndexError):
            return ""
    from .proc import native

    return native().start_token(os.getpid()) or ""


def reentered(env: Mapping[str, str]) -> bool:
    """This launch was started by what a launch of the guard started, in a loop: the very process that
    launched before (an exec chain: shim, wrapper, `exec claude`, shim) or too many levels deep (a wrapper
    that forks). A real claude whose tool runs `claude` is one level per session, and passes."""
    mark = env.get(environ.LAUNCHER, "")
    if not mark:
        return False
    pid, start, depth = [*mark.split(":"), "", "", ""][:3]
    if pid == str(os.getpid()) and start:
        from .proc import native

        if start == native().start_token(os.getpid()):
            return True
    return depth.isdigit() and int(depth) >= _MAX_DEPTH


def _say(text: str) -> None:
    from .output import message  # only when there is something to say: a launch that goes well says nothing

    message(text)


def run_guarded(program: str | None, prefix: list[str], args: list[str], *, self_path: str | None = None,
                env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
                warn: Callable[[str], None] | None = None, settings: Settings | None = None) -> int:
    """The whole launch: settings, real claude, plan, admission, start. Returns an exit status (or execs).

    `program` None means "the real claude" (the shim); otherwise it is what `claude-guard exec` was given.
    `settings`: already loaded by the caller (else loaded here from `env` and `overrides`).
    The guard's own failures never keep claude from starting unless `strict` is set.
    """
    say = warn or _say
    env = os.environ if env is None else env
    if settings is None:
        # The shim (program None) takes the settings the config cache made of the file: importing the TOML parser
        # would cost every `claude` start more than a bare interpreter does, and the key table and its parsers
        # about a third of what the guard adds to a launch.
        if program is None:
            from . import configcache

            settings = configcache.load(env, overrides, lenient=True)
        else:
            from . import config

            settings = config.load(env, overrides, lenient=True)
    if reentered(env):
        what = settings.real_claude or "the claude it found"
        raise GuardError(f"claude-guard was started again by what it started ({what} runs `claude` by name, which is "
                         "this shim): a loop. Point real_claude (CLAUDE_GUARD_REAL_CLAUDE) at Claude Code itself, "
                         "or have the wrapper run it by its full path", ExitCode.NOT_FOUND)
    if program is None:
        program = resolve.find_real_claude(settings.real_claude, env.get("PATH"), self_path, pathext=env.get("PATHEXT"))
    plan = prepare(program, prefix, args, env, settings)
    plan.env[environ.LAUNCHER] = launcher_mark(env)
    registry: Registry | None = None
    guarded = plan.call.session
    if settings.problems and plan.call.session:
        # The guard's own input is wrong: claude still starts (unguarded: no cap, no duplicate rule, nothing
        # registered), with one line saying what to fix; `strict` (if it could be read) keeps it from starting.
        more = f" (and {len(settings.problems) - 1} more)" if len(settings.problems) > 1 else ""
        if settings.strict:
            raise GuardError(f"{settings.problems[0]}{more}; strict = true, so claude was not started",
                             ExitCode.CONFIG)
        say(f"{settings.problems[0]}{more}; starting claude unguarded until this is fixed "
            "(`claude-guard doctor` checks the config)")
        guarded = False
    if guarded:
        from .admission import admit
        from .registry import Registry

        registry = Registry(settings.registry_dir(), settings.lock_timeout)
        try:
            admit(plan, settings, registry)
        except GuardError as e:
            if e.exit_code == ExitCode.REFUSED or settings.strict:
                raise
            say(f"{e.message}; starting claude unguarded")
            registry = None
        except Exception as e:
            if settings.strict:
                raise GuardError(f"internal error ({type(e).__name__}: {e}); strict = true, so claude was not "
                                 "started. Please report this with ~/.local/state/claude-guard/guard.log",
                                 ExitCode.INTERNAL) from None
            say(f"internal error ({type(e).__name__}: {e}); starting claude unguarded. Please report this")
            registry = None
        if registry is not None:
            for warning in registry.warnings:
                say(warning)
            for note in plan.repairs:
                registry.log("repair: " + note)
            if plan.removed:
                registry.log("removed from the environment: " + ", ".join(plan.removed))
    reg = registry

    def on_spawn(child: int) -> None:
        if reg is not None:
            from .admission import update_pid

            update_pid(reg, os.getpid(), child)

    if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
        sys.stdout.flush()
    with_parent = settings.die_with_parent and plan.call.kind == "sdk"
    return start(plan, on_spawn, settings.unknown_batch, with_parent, reg.log if reg is not None else None)
