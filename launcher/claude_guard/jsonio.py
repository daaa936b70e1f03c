"""JSON for the hot path, through the C accelerator `_json` directly.

`import json` costs as much as the rest of a `claude` launch (it imports `re` for its pure-Python
fallbacks), while `_json` is the same C scanner and encoder that `json` uses underneath. When `_json`
is missing (another interpreter), the standard module is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON here")


class _Context:
    # The attributes `_json.make_scanner` reads from a JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 - the C scanner keeps its own memo; this is only read


def _no_default(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


try:
    import _json

    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _encode = _json.make_encoder(
        None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False
    )

    def loads(text: str) -> Any:
        """Parse one JSON document; ValueError on anything else (trailing garbage included, and nesting deeper
        than the interpreter's recursion limit: `[[[[...` would otherwise raise RecursionError, which no
        caller expects from bad input)."""
        stripped = text.strip(" \t\r\n")
        try:
            value, end = _scan(stripped, 0)
        except Exception:
            # Malformed input: the bare scanner's error reporting is not meant to be called on its own (it
            # can raise StopIteration or even SystemError), so let the full module say what is wrong.
            import json

            try:
                return json.loads(stripped)
            except RecursionError:
                raise ValueError("JSON nested too deeply") from None
        if end != len(stripped):
            raise ValueError("extra data after the JSON document")
        return value

    def dumps(value: Any) -> str:
        """Compact ASCII JSON (lone surrogates from undecodable argv bytes survive as \\udcXX escapes)."""
        return "".join(_encode(value, 0))

except ImportError:  # pragma: no cover - CPython always has _json
    import json

    def loads(text: str) -> Any:
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    def dumps(value: Any) -> str:
        return json.dumps(value, allow_nan=False)
