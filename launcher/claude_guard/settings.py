"""Settings: the effective value of every configuration key, and where each came from.

Apart from config.py (the keys, their parsers and defaults, the file and the variables) so that a `claude` launch,
`ps` or `reap` whose settings the config cache holds (configcache.load) loads none of those.
"""

from __future__ import annotations

from . import paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


# CLAUDE_GUARD_* variables that are not settings but are read elsewhere (tests and benchmarks use their own
# CLAUDE_GUARD_TEST_/BENCH_/SOAK_/FAULT_ prefixes). Any other CLAUDE_GUARD_* name is a typo worth a warning.
OTHER_VARS = frozenset({
    "CLAUDE_GUARD_CONFIG", "CLAUDE_GUARD_COOKIE", "CLAUDE_GUARD_BIN", "CLAUDE_GUARD_SHIM_DIR", "CLAUDE_GUARD_LAUNCHER",
    "CLAUDE_GUARD_TIMER", "CLAUDE_GUARD_CRONTAB", "CLAUDE_GUARD_SYSTEMCTL", "CLAUDE_GUARD_SYSTEMD_DIR",
    "CLAUDE_GUARD_LAUNCHCTL", "CLAUDE_GUARD_LAUNCHD_DIR", "CLAUDE_GUARD_SCHTASKS", "CLAUDE_GUARD_MEM_AVAILABLE_FILE",
})
OTHER_PREFIXES = ("CLAUDE_GUARD_TEST_", "CLAUDE_GUARD_BENCH_", "CLAUDE_GUARD_SOAK_", "CLAUDE_GUARD_FAULT_")


def only_file(env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> bool:
    """Nothing but the config file and the defaults would go into the settings: no command-line value, and no
    CLAUDE_GUARD_* variable in `env` that is, or may be meant as, a setting (a typo is warned about)."""
    return not any(value is not None for value in (overrides or {}).values()) and not any(
        name.startswith("CLAUDE_GUARD_") and name not in OTHER_VARS and not name.startswith(OTHER_PREFIXES)
        for name in env)


def config_path(env: Mapping[str, str]) -> str:
    """The config file: CLAUDE_GUARD_CONFIG, else the user's config folder's config.toml."""
    return env.get("CLAUDE_GUARD_CONFIG") or paths.config_file()


class Settings:
    """Effective values (`settings.max_sessions`) and where each came from (`settings.sources[key]`).

    Every key of KEYS is an attribute of the type its parser returns (a duration or a size is a float)."""

    # launch side
    real_claude: str
    max_sessions: int
    count_unguarded: bool
    on_cap: str
    wait_timeout: float
    on_duplicate: str
    strict: bool
    state_dir: str
    lock_timeout: float
    keep_markers: bool
    strip_env: list[str]
    keep_env: list[str]
    die_with_parent: bool
    unknown_batch: str
    # sweep side
    idle_after: float
    idle_cpu: float
    cpu_window: float
    reap_attached: bool
    multiplexer_detached: bool
    grace: float
    min_age: float
    max_age: float
    memory_floor: float  # bytes, or a negative share of total memory (parse_size)
    memory_margin: float
    protect: list[str]
    strays: str
    interval: float
    cooldown: float

    def __init__(self, values: dict[str, Any], sources: dict[str, str]) -> None:
        self.values = values
        self.sources = sources
        self.problems: list[str] = []  # what load(lenient=True) set aside: each a message naming where
        for key, value in values.items():
            setattr(self, key, value)

    def replace(self, source: str, **changes: Any) -> Settings:
        """A copy with `changes` (already parsed values) taken from `source`; this one is left as it is."""
        copy = Settings({**self.values, **changes}, {**self.sources, **dict.fromkeys(changes, source)})
        copy.problems = list(self.problems)
        return copy

    def registry_dir(self) -> str:
        return self.state_dir or paths.state_dir()
