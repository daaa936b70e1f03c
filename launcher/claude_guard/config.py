"""Settings: defaults, then the TOML file, then `CLAUDE_GUARD_<KEY>` variables, each value with its source.

The `claude` shim, `ps` and `reap` take their settings from the config cache when it holds what this module made of
the same file (configcache.load); this module is on their path when it does not: the TOML parser is imported only
when a config file exists and the cache has no parse of it. Every key is declared once in `KEYS` (type, default,
help), which also drives `claude-guard config` and the README table.
"""

from __future__ import annotations

import os
import sys

from . import configcache, paths
from .environ import MARKERS
from .errors import ExitCode, GuardError
from .settings import OTHER_PREFIXES, OTHER_VARS, Settings, config_path, only_file

# The hot path must not import typing, re or dataclasses (each costs about a bare interpreter start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
# Size units, case-insensitive: `[kmgt]i?b?|b|%` or none (bytes).
_SIZE_UNITS = frozenset({"", "b", "%", *(p + i + b for p in "kmgt" for i in ("", "i") for b in ("", "b"))})


class BadValue(ValueError):
    """A value that does not fit its key; the message says what would."""


def _number_unit(text: str) -> tuple[float, str] | None:
    """`<number> <unit>` as in `^\\s*(\\d+(?:\\.\\d+)?)\\s*([a-z%]*)\\s*$` (the unit still to be checked), or None.

    Hand-written rather than a regular expression: `import re` costs the `claude` hot path about a third of
    a bare interpreter start, and durations and sizes are read on every launch (config file, variables).
    """
    text = text.strip()
    end = 0
    while end < len(text) and text[end].isdecimal():
        end += 1
    if end == 0:
        return None
    if end < len(text) and text[end] == ".":
        frac = end + 1
        while frac < len(text) and text[frac].isdecimal():
            frac += 1
        if frac == end + 1:
            return None  # "1." is not a number here
        end = frac
    unit = text[end:].lstrip()
    if not all(c.isascii() and (c.isalpha() or c == "%") for c in unit):
        return None
    return float(text[:end]), unit


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise BadValue("expected a duration such as 90, \"90s\", \"30m\" or \"2h\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        parsed = _number_unit(str(value))
        if parsed is None or (parsed[1] or None) not in _DURATION_UNITS:
            raise BadValue("expected a duration such as 90, \"90s\", \"30m\" or \"2h\"")
        seconds = parsed[0] * _DURATION_UNITS[parsed[1] or None]
    if not seconds >= 0:  # also rejects NaN
        raise BadValue("a duration cannot be negative")
    if seconds > _LONGEST:  # inf or 1e309: a wait that never ends, or a sleep that overflows
        raise BadValue("a duration is at most 36500d (inf is not a duration)")
    return seconds


_LONGEST = 36500 * 86400.0  # a century: "never" for any rule, and below every sleep's and timer's own limit


def parse_percent(value: object) -> float:
    """A CPU percentage: 1.0, "2", "2%". A time unit (`1h`) is refused rather than read as 3600%."""
    problem = "expected a CPU percentage such as 1.0 or \"2%\" (a number, no time unit)"
    if isinstance(value, bool):
        raise BadValue(problem)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        text = text[:-1].strip() if text.endswith("%") else text
        try:
            number = float(text)
        except ValueError:
            raise BadValue(problem) from None
    if not 0 <= number < float("inf"):  # also rejects NaN
        raise BadValue("a CPU percentage is a finite number of at least 0")
    return number


def parse_size(value: object) -> float:
    """Bytes (`2G`, `512MiB`, `1073741824`) or a share of total memory (`10%`, returned as a negative
    fraction so the caller can tell the two apart: -0.10)."""
    if isinstance(value, bool):
        raise BadValue("expected a size such as \"2GiB\", \"512M\", a number of bytes, or \"10%\"")
    if isinstance(value, (int, float)):
        if not 0 <= value < float("inf"):  # negative, NaN, inf (TOML's `inf`, or `1e309`)
            raise BadValue("a size is a finite number of bytes, at least 0")
        return float(value)
    parsed = _number_unit(str(value))
    unit = parsed[1].lower() if parsed else ""
    if parsed is None or unit not in _SIZE_UNITS:
        raise BadValue("expected a size such as \"2GiB\", \"512M\", a number of bytes, or \"10%\"")
    number = parsed[0]
    if unit == "%":
        if number > 100:
            raise BadValue("a percentage is at most 100%")
        return -number / 100.0
    base = 1024 if "i" in unit else 1000
    power = "bkmgt".index(unit[0]) if unit else 0
    size = float(number * base**power)
    if size == float("inf"):  # 400 digits
        raise BadValue("a size is a finite number of bytes")
    return size


def _parse_int(minimum: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise BadValue(f"expected a whole number of at least {minimum}")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise BadValue(f"expected a whole number of at least {minimum}") from None
        if number < minimum:
            raise BadValue(f"expected a whole number of at least {minimum}")
        return number

    return parse


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise BadValue("expected true or false")


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = str(value).strip().lower()
        if isinstance(value, str) and text in choices:
            return text
        raise BadValue("expected one of " + ", ".join(choices))

    return parse


def parse_list(value: object) -> list[str]:
    """A TOML array of strings, or (from a variable) a comma-separated list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadValue("expected a list of strings, e.g. [\"a\", \"b\"] (in a variable: a,b)")


def parse_path(value: object) -> str:
    if not isinstance(value, str):
        raise BadValue("expected a path as a string")
    return os.path.expanduser(value) if value else ""


def _default_max_sessions() -> int:
    """About 300 MB a session, within half the RAM, and at least 2."""
    try:
        if sys.platform == "win32":  # no sysconf; psutil is cheap next to what a Windows launch imports anyway
            import psutil

            total = int(psutil.virtual_memory().total)
        else:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8
    return max(2, int(total // 2 // (300 * 1024 * 1024)))


# The markers a running session plants in its children's environment: environ.MARKERS, derived from a real session.
DEFAULT_STRIP = list(MARKERS)


class Key:
    """One setting: its parser, default and help; which side reads it; the commands taking it as a flag."""

    __slots__ = ("default", "flags", "help", "parse", "side")

    def __init__(self, parse: Callable[[object], Any], default: Callable[[], Any], help: str, *,
                 side: str = "sweep", flags: tuple[str, ...] = ()) -> None:
        self.parse = parse
        self.default = default
        self.help = help
        self.side = side  # "launch" (the shim, exec, the SDK helpers) or "sweep" (ps, reap)
        self.flags = flags  # commands with a --flag of this name: "exec" (kept off claude's environment), "reap"


_LAUNCH = "launch"
_EXEC = ("exec",)
_REAP = ("reap",)

KEYS: dict[str, Key] = {
    # launch side
    "max_sessions": Key(_parse_int(1), _default_max_sessions, "live sessions allowed per user (all, guarded or not)",
                        side=_LAUNCH, flags=("exec", "reap")),
    "on_cap": Key(_choice("refuse", "wait"), lambda: "refuse", "at the cap: refuse now, or wait for a slot",
                  side=_LAUNCH, flags=_EXEC),
    "wait_timeout": Key(parse_duration, lambda: 300.0, "with on_cap = wait: how long to wait for a slot",
                        side=_LAUNCH, flags=_EXEC),
    "on_duplicate": Key(_choice("refuse", "takeover"), lambda: "refuse",
                        "a session already open elsewhere: refuse, or end that process gracefully first",
                        side=_LAUNCH, flags=_EXEC),
    "count_unguarded": Key(parse_bool, lambda: True,
                           "count claude sessions started around the guard towards max_sessions", side=_LAUNCH),
    "strict": Key(parse_bool, lambda: False, "refuse to start claude when the guard itself fails", side=_LAUNCH,
                  flags=_EXEC),
    "real_claude": Key(parse_path, lambda: "", "path of the real claude; empty: first non-shim `claude` on PATH",
                       side=_LAUNCH),
    "state_dir": Key(parse_path, lambda: "", "where the registry lives; empty: the user's state folder", side=_LAUNCH),
    "lock_timeout": Key(parse_duration, lambda: 10.0, "longest wait for the registry lock", side=_LAUNCH),
    "keep_markers": Key(parse_bool, lambda: False, "keep nesting markers (CLAUDECODE, ...) for nested behaviour",
                        side=_LAUNCH),
    "strip_env": Key(parse_list, lambda: list(DEFAULT_STRIP), "variables removed before claude starts (* = prefix)",
                     side=_LAUNCH),
    "keep_env": Key(parse_list, lambda: [], "variables never removed, even when strip_env matches them", side=_LAUNCH),
    "die_with_parent": Key(parse_bool, lambda: True,
                           "SDK launches (Linux): claude ends when the program that started it dies", side=_LAUNCH),
    "unknown_batch": Key(_choice("refuse", "escape"), lambda: "refuse",
                         "Windows: a claude .cmd that is not npm's shim: refuse, or run it with strict escaping",
                         side=_LAUNCH),
    # sweep side
    "idle_after": Key(parse_duration, lambda: 1800.0, "a session idle this long may be reaped", flags=_REAP),
    "idle_cpu": Key(parse_percent, lambda: 1.0,
                    "without Claude's own status: idle means CPU below this percent over cpu_window", flags=_REAP),
    "cpu_window": Key(parse_duration, lambda: 300.0, "the window over which idle CPU is judged", flags=_REAP),
    "reap_attached": Key(parse_bool, lambda: False, "also reap idle and duplicate sessions attached to a live terminal",
                         flags=_REAP),
    "multiplexer_detached": Key(parse_bool, lambda: True,
                                "a tmux or screen session with no client attached counts as detached (idle rules)"),
    "grace": Key(parse_duration, lambda: 10.0, "SIGTERM, then SIGKILL after this long", flags=_REAP),
    "min_age": Key(parse_duration, lambda: 60.0, "never end a session younger than this", flags=_REAP),
    "max_age": Key(parse_duration, lambda: 0.0, "end sessions older than this (0: off)", flags=_REAP),
    "memory_floor": Key(parse_size, lambda: 0.0, "end idle sessions while available memory is under this (0: off)",
                        flags=_REAP),
    "memory_margin": Key(parse_size, lambda: 256 * 1024 * 1024, "reap until available memory is floor + margin",
                         flags=_REAP),
    "protect": Key(parse_list, lambda: [], "never end these: session ids, names, PIDs, or cwd prefixes", flags=_REAP),
    "strays": Key(_choice("collateral", "all", "none"), lambda: "collateral",
                  "strays of ended sessions that reap ends: collateral (leaks), all (also jobs left on purpose), "
                  "none", flags=_REAP),
    "interval": Key(parse_duration, lambda: 60.0, "reap --watch: seconds between sweeps", flags=_REAP),
    "cooldown": Key(parse_duration, lambda: 15.0, "reap --watch: pause after ending something under memory pressure",
                    flags=_REAP),
}


# Derived from KEYS: the settings a launch reads (the SDK helpers take exactly these), and the flags of
# `claude-guard exec` and `claude-guard reap`.
LAUNCH_KEYS = tuple(k for k, spec in KEYS.items() if spec.side == "launch")
EXEC_FLAGS = tuple(k for k, spec in KEYS.items() if "exec" in spec.flags)
REAP_FLAGS = tuple(k for k, spec in KEYS.items() if "reap" in spec.flags)


def _line_of(text: str, key: str) -> int | None:
    import re

    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _parse_toml(path: str, text: str) -> dict[str, tuple[Any, int | None]]:
    """{key: (TOML value, line)} of the file's top-level keys."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser, before it joined the standard library
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GuardError(f"config {path}: invalid TOML: {e}; fix that line", ExitCode.CONFIG) from None
    return {key: (value, _line_of(text, key)) for key, value in data.items()}


def _valid(keys: dict[str, tuple[Any, int | None]]) -> bool:
    """Every key known and every value accepted: only such a parse is cached, or taken from the cache."""
    for key, (value, _line) in keys.items():
        if key not in KEYS:
            return False
        try:
            KEYS[key].parse(value)
        except BadValue:
            return False
    return True


def _file_keys(path: str, cache_dir: str | None) -> tuple[dict[str, tuple[Any, int | None]], _Cacheable | None]:
    """{key: (TOML value, line)} of the config file (empty when there is none), and with `cache_dir` (the shim,
    ps, reap) what load needs to cache it: a parse cached there for these very bytes is reused instead of importing
    the TOML parser (configcache.py says why that is safe); a file with any problem is never cached, so its
    problems are found by a full parse every time."""
    found = configcache.read_config(path)
    text, st = found if found is not None else ("", None)
    if cache_dir:
        record = configcache.lookup(cache_dir, path, st, text)
        if record is not None and _valid(record.keys):
            return record.keys, _Cacheable(cache_dir, path, st, text, record)
    keys = _parse_toml(path, text) if found is not None else {}
    return keys, _Cacheable(cache_dir, path, st, text, None) if cache_dir and _valid(keys) else None


class _Cacheable:
    """A valid config file (or none) as load read it, and its record in the cache if it had one."""

    def __init__(self, folder: str, path: str, st: os.stat_result | None, text: str,
                 record: configcache.Record | None) -> None:
        self.folder, self.path, self.st, self.text, self.record = folder, path, st, text, record

    def store(self, keys: dict[str, tuple[Any, int | None]], settings: Settings | None) -> None:
        """Cache the parse when it was not cached, and the settings made of it (given when plain: nothing but the
        file and the defaults went into them) when the cache does not hold exactly those, for this context."""
        record = self.record
        if record is None or (settings is not None and (
                record.context != configcache.context()
                or record.values != {k: (v, settings.sources[k]) for k, v in settings.values.items()})):
            configcache.store(self.folder, self.path, self.st, self.text, keys, settings)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """CLAUDE_GUARD_* names in `env` that the guard does not read (`CLAUDE_GUARD_MAX_SESSION=3`)."""
    known = {"CLAUDE_GUARD_" + key.upper() for key in KEYS}
    return sorted(name for name in env if name.startswith("CLAUDE_GUARD_") and name not in known
                  and name not in OTHER_VARS and not name.startswith(OTHER_PREFIXES))


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` was most likely meant to be (a mistyped key, variable or option), if any is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = closest(word, choices)
    return f" (did you mean {close}?)" if close else ""


def load(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None, *,
         lenient: bool = False, cache: bool = False) -> Settings:
    """Defaults < config file < CLAUDE_GUARD_<KEY> variables < `overrides` (command-line options).

    A problem in the file or the variables (unreadable or invalid file, unknown key or variable, bad value) is a
    GuardError (CONFIG) naming file, line and key, or the variable. With `lenient` (a launch: the guard must not
    take claude away over its own input) nothing is raised: each problem goes to `settings.problems`, and the
    key it concerns keeps its default. A bad command-line option is always a USAGE error.

    `cache`: reuse the parse of an unchanged, valid config file kept in the state folder (the `claude` hot path,
    ps and reap; Linux only, see configcache.py).
    """
    env = os.environ if environ is None else environ
    path = config_path(env)
    problems: list[str] = []
    cacheable: _Cacheable | None = None
    try:
        keys, cacheable = _file_keys(path, paths.state_dir() if cache and configcache.ENABLED else None)
    except GuardError as e:
        if not lenient:
            raise
        problems.append(e.message)
        keys = {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (value, line) in keys.items():
        where = f"{path}:{line}" if line else path
        if key not in KEYS:
            problems.append(f"config {where}: unknown key {key!r}{_did_you_mean(key, KEYS)}; "
                            "`claude-guard config` lists the keys")
            continue
        try:
            values[key] = KEYS[key].parse(value)
        except BadValue as e:
            problems.append(f"config {where}: {key} = {value!r}: {e}")
            continue
        sources[key] = where
    # One pass over the environment, then plain dict lookups: each `in` on os.environ encodes the name again.
    ours = {name: value for name, value in env.items() if name.startswith("CLAUDE_GUARD_")}
    for key, spec in KEYS.items() if ours else ():
        var = "CLAUDE_GUARD_" + key.upper()
        if var in ours:
            try:
                values[key] = spec.parse(ours[var])
            except BadValue as e:
                problems.append(f"{var}={ours[var]!r}: {e}; fix or unset the variable")
                continue
            sources[key] = f"env {var}"
    known = ["CLAUDE_GUARD_" + key.upper() for key in KEYS]
    for var in unknown_variables(ours):
        problems.append(f"unknown variable {var}{_did_you_mean(var, known)}; the guard reads no such setting "
                        "(`claude-guard config` lists them): rename or unset it")
    if problems and not lenient:
        more = f" (and {len(problems) - 1} more: `claude-guard doctor` lists them)" if len(problems) > 1 else ""
        raise GuardError(problems[0] + more, ExitCode.CONFIG)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        try:
            values[key] = KEYS[key].parse(value)
        except BadValue as e:
            raise GuardError(f"--{key.replace('_', '-')} {value!r}: {e}", ExitCode.USAGE) from None
        sources[key] = "command line"
    for key, spec in KEYS.items():
        if key not in values:
            values[key] = spec.default()
            sources[key] = "default"
    settings = Settings(values, sources)
    settings.problems = problems
    if cacheable is not None:
        cacheable.store(keys, settings if not problems and only_file(env, overrides) else None)
    return settings
