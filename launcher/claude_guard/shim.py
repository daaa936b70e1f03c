"""`claude`: the shim's entry point. Guards the launch, then becomes the real claude (exec).

Hot path: this runs on every `claude` start, so it imports only what `launch` needs (standard library,
no psutil, filelock, platformdirs or argparse), and it never writes to stdout: SDK hosts read claude's
stdout as a JSON stream. A refusal is an exit status (75) and one line on stderr; the Node adapter
(claude_guard/shims/guard-spawn.mjs) turns that line into the SDK's own error inside the host.
"""

from __future__ import annotations

import os
import sys

from .errors import ExitCode, GuardError
from .output import message


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
        message(f"internal error ({type(e).__name__}: {e}); starting claude unguarded. Please report this")
        return _unguarded(args, self_path)


def _unguarded(args: list[str], self_path: str | None) -> int:
    try:
        from . import resolve

        real = resolve.find_real_claude(os.environ.get("CLAUDE_GUARD_REAL_CLAUDE", ""), os.environ.get("PATH"),
                                        self_path)
        os.execv(real, [real, *args])
    except GuardError as e:
        message(e.message)
        return e.exit_code
    except OSError as e:
        message(f"cannot run the real claude: {e.strerror}")
        return 126
    return ExitCode.INTERNAL  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
