"""`claude`: the shim's entry point. Guards the launch, then becomes the real claude (exec).

Hot path: this runs on every `claude` start, so it imports only what `launch` needs (standard library,
no psutil, filelock, platformdirs or argparse), and it never writes to stdout: SDK hosts read claude's
stdout as a JSON stream. A refusal is an exit status (75) and one line on stderr; the Node adapter
(shims/guard-spawn.mjs, installed as claude_guard.shims) turns that line into the SDK's own error inside the host.
"""

from __future__ import annotations

import os
import sys

from .errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .settings import Settings


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    self_path = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    try:
        from . import launch

        return launch.run_guarded(None, [], args, self_path=self_path)
    except GuardError as e:
        message(e.message)
        return e.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as e:
        settings = _settings()
        if settings is None or settings.strict:
            message(f"internal error ({type(e).__name__}: {e}); strict = true, so claude was not started. "
                    "Please report this")
            return ExitCode.INTERNAL
        message(f"internal error ({type(e).__name__}: {e}); starting claude unguarded. Please report this")
        return _unguarded(args, self_path, settings)


def message(text: str) -> None:
    """output.message, imported only when there is something to say (a launch that goes well says nothing)."""
    from .output import message

    message(text)


def _settings() -> Settings | None:
    """The settings for the fail-open path. When the configuration itself is what failed: the defaults, with
    strict as CLAUDE_GUARD_STRICT says; None (do not start) when that is on or cannot be read."""
    from . import config

    try:
        return config.load()
    except Exception:
        pass
    try:
        if config.parse_bool(os.environ.get("CLAUDE_GUARD_STRICT") or "false"):
            return None
        return config.load({"CLAUDE_GUARD_CONFIG": os.devnull})
    except Exception:
        return None


def _unguarded(args: list[str], self_path: str | None, settings: Settings) -> int:
    """Start the real claude without the registry: the environment is still cleaned and the arguments
    repaired (the guard's fault must not hand claude the markers or an orphaned flag)."""
    try:
        from . import argv, environ, resolve

        real = resolve.find_real_claude(str(settings.real_claude or ""), os.environ.get("PATH"), self_path)
        repaired, _ = argv.repair(list(args))
        env, _ = environ.clean(os.environ, settings.strip_env, settings.keep_env, bool(settings.keep_markers))
        try:
            from .launch import launcher_mark

            env[environ.LAUNCHER] = launcher_mark(os.environ)  # a wrapper looping back is still caught
        except Exception:
            pass  # whatever failed above may fail here too; the mark is a safeguard, not a condition
        if sys.platform == "win32":
            # Windows has no exec: os.execv there joins the arguments unquoted and cannot start npm's
            # claude.cmd. The runner starts it as a guarded launch would, only without the registry.
            from . import runner

            return runner.run([real, *repaired], env)
        os.execve(real, [real, *repaired], env)
    except GuardError as e:
        message(e.message)
        return e.exit_code
    except OSError as e:
        message(f"cannot run the real claude: {e.strerror}")
        return 126
    return ExitCode.INTERNAL  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main())
