"""The one place that writes to the terminal: data to stdout, messages to stderr.

The `claude` shim only ever uses `message` (stderr): SDK hosts read claude's stdout as a JSON stream, so
nothing of ours may appear there. Colour (colorama) is loaded only by the commands that print tables.
"""

from __future__ import annotations

import os
import sys

PREFIX = "claude-guard: "


def message(line: str) -> None:
    """One line on stderr, prefixed so a user can tell it from claude's own output."""
    # Started with stderr closed (`2>&-`), Python sets sys.stderr to None. Nothing is written then: fd 2
    # may since have been reused by a file of ours (the registry lock), which must not receive the line.
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(PREFIX + line.replace("\n", " ") + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must not turn into a traceback or a refused launch


def data(text: str) -> None:
    """Command output (tables, JSON, config listings) on stdout (dropped when stdout was closed: `>&-`)."""
    stream = sys.stdout
    if stream is None:
        return
    stream.write(text if text.endswith("\n") or not text else text + "\n")
    stream.flush()


def use_colour(stream: object = None) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str) -> str:
    """`text` in a colorama Fore colour name (`RED`, `GREEN`, ...) when colour is on."""
    if not use_colour():
        return text
    import colorama

    if sys.platform == "win32":
        colorama.just_fix_windows_console()
    return f"{getattr(colorama.Fore, colour)}{text}{colorama.Style.RESET_ALL}"
