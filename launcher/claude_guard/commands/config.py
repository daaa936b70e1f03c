"""`claude-guard config`: every effective setting and where it came from, printed as TOML a config file takes."""

from __future__ import annotations

import argparse
import json

from .. import config, output
from ..errors import ExitCode, GuardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..settings import Settings

# The widest value the source column waits for; a longer value (strip_env) pushes its own source out.
_VALUE_COLUMN = 34


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="show every effective setting and its source",
                       description="Show every setting as the config file would spell it, with where it came "
                                   "from (default, file:line, or CLAUDE_GUARD_<KEY>). Empty real_claude and "
                                   "state_dir show what they resolve to.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from .. import paths

    settings = config.load()
    resolved = _resolved(settings)
    if args.json:
        shown: dict[str, dict[str, Any]] = {}
        for key in config.KEYS:
            shown[key] = {"value": settings.values[key], "source": settings.sources[key]}
            if key in resolved:
                shown[key]["resolved"] = resolved[key][0]
        output.data(json.dumps(shown, indent=2))
        return ExitCode.OK
    path = os.environ.get("CLAUDE_GUARD_CONFIG") or paths.config_file()
    exists = "" if os.path.exists(path) else " (not present: defaults apply)"
    lines = [f"# config file: {path}{exists}"]
    rows = []
    for key in config.KEYS:
        source = settings.sources[key]
        if key in resolved:
            value, how = resolved[key]
            rows.append((key, toml_value(value), f"{source}: {how}" if source == "default" else source))
        else:
            rows.append((key, show(key, settings.values[key]), source))
    key_width = max(len(key) for key, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows if len(value) <= _VALUE_COLUMN)
    for key, value, source in rows:
        lines.append(f"{key.ljust(key_width)} = {value.ljust(value_width)}  # {source}")
    output.data("\n".join(lines))
    return ExitCode.OK


def _resolved(settings: Settings) -> dict[str, tuple[str, str]]:
    """The two settings whose empty default means "find it": what it finds, and how ({key: (value, how)})."""
    import os

    from .. import resolve

    found: dict[str, tuple[str, str]] = {"state_dir": (settings.registry_dir(), "the user's state folder")}
    if settings.real_claude:
        found["real_claude"] = (settings.real_claude, "")
        return found
    try:
        real = resolve.find_real_claude("", os.environ.get("PATH"), None)
    except GuardError:
        found["real_claude"] = ("", "no claude on PATH (`claude-guard doctor` says how to fix)")
    else:
        found["real_claude"] = (real, "the first claude on PATH that is not a shim")
    return found


def show(key: str, value: Any) -> str:
    """A value as the config file would spell it: durations and sizes in units (`"30m"`, `"256MiB"`), not as the
    float they are held in."""
    parse = config.KEYS[key].parse
    if parse is config.parse_duration:
        return toml_value(duration(value))
    if parse is config.parse_size:
        return toml_value(size(value))
    if parse is config.parse_percent:
        return toml_value(f"{value:g}%")
    return toml_value(value)


def duration(seconds: float) -> str | int:
    """`1800.0` -> `"30m"`: the largest unit that holds it whole; 0 stays 0."""
    if seconds == 0:
        return 0
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % length == 0:
            return f"{int(seconds // length)}{unit}"
    return f"{seconds:g}s"


def size(n: float) -> str | int:
    """`268435456.0` -> `"256MiB"`; a share of memory (a negative fraction, see config.parse_size) -> `"10%"`."""
    if n < 0:
        return f"{-n * 100:g}%"
    if n == 0:
        return 0
    for unit, length in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
                         ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n % length == 0:
            return f"{int(n // length)}{unit}"
    return int(n)


def toml_value(value: Any) -> str:
    """TOML's spelling of a str, bool, number or list of str (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value) if isinstance(value, str) else str(value)
