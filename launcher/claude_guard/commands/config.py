"""`claude-guard config`: every effective setting and where it came from."""

from __future__ import annotations

import argparse

from .. import config, output
from ..errors import ExitCode


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="show every effective setting and its source",
                       description="Show every setting: value, and where it came from (default, file:line, "
                                   "or CLAUDE_GUARD_<KEY>).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from .. import paths

    settings = config.load()
    if args.json:
        import json

        output.data(json.dumps({k: {"value": settings.values[k], "source": settings.sources[k]}
                                for k in config.KEYS}, indent=2))
        return ExitCode.OK
    path = os.environ.get("CLAUDE_GUARD_CONFIG") or paths.config_file()
    exists = "" if os.path.exists(path) else " (not present: defaults apply)"
    lines = [f"# config file: {path}{exists}", f"# registry folder: {settings.registry_dir()}"]
    width = max(map(len, config.KEYS))
    for key in config.KEYS:
        value = settings.values[key]
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        lines.append(f"{key.ljust(width)} = {shown}    [{settings.sources[key]}]")
    output.data("\n".join(lines))
    return ExitCode.OK
