"""The shim's cache of the parsed config file: a hit skips the TOML parser, anything odd is a miss.

Each test runs the load as the shim does (`python -I -S`, the package on sys.path, `config.load(cache=True)`)
in a child process with its own state and config folders, and compares with what a full parse gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_guard import configcache

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cache is Linux only")

CONFIG = 'max_sessions = 3\nidle_after = "45m"\nmemory_floor = "10%"\nprotect = ["a", "b"]\non_cap = "wait"\n'

PROBE = """
import sys
sys.path.insert(0, {launcher!r})
from claude_guard import configcache
from claude_guard.errors import GuardError
loaded = "claude_guard.config" in sys.modules
try:
    if {fast}:
        s = configcache.load()
        loaded = "claude_guard.config" in sys.modules
    else:
        from claude_guard import config
        s = config.load(cache={cache})
except GuardError as e:
    result = {{"error": e.message, "code": int(e.exit_code)}}
else:
    keys = ("max_sessions", "idle_after", "memory_floor", "protect", "on_cap")
    result = {{"values": {{k: s.values[k] for k in keys}}, "sources": {{k: s.sources[k] for k in keys}},
              "tomllib": "tomllib" in sys.modules or "tomli" in sys.modules, "re": "re" in sys.modules,
              "_json": "_json" in sys.modules, "all": s.values, "all_sources": s.sources, "problems": s.problems,
              "config_module": loaded}}
import json  # only now: json imports re
print(json.dumps(result))
"""


class World:
    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.state = self.home / ".local" / "state" / "claude-guard"
        self.config = self.home / ".config" / "claude-guard" / "config.toml"
        self.config.parent.mkdir(parents=True)
        self.config.write_text(CONFIG)
        self.cache = self.state / "config.cache"
        self.env = {"HOME": str(self.home), "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                    "XDG_CONFIG_HOME": str(self.home / ".config"), "PATH": os.defpath}

    def load(self, cache: bool = True, fast: bool = False, env: dict[str, str] | None = None) -> dict[str, Any]:
        """config.load(cache=...) as ps and reap ran it before, or with `fast` configcache.load() as the shim,
        ps and reap run it now (the settings the cache made of the file, else config.load(cache=True))."""
        probe = PROBE.format(launcher=str(REPO / "launcher"), cache=cache, fast=fast)
        r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], env={**self.env, **(env or {})},
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        result: dict[str, Any] = json.loads(r.stdout)
        return result

    def settings(self, result: dict[str, Any]) -> tuple[Any, Any]:
        return result["values"], result["sources"]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_second_load_reads_no_toml_parser_and_gets_the_same_settings(world: World) -> None:
    full = world.load(cache=False)
    assert full["values"]["max_sessions"] == 3 and full["values"]["memory_floor"] == -0.1
    first = world.load()
    assert first["tomllib"] and world.cache.exists()
    assert (world.cache.stat().st_mode & 0o777) == 0o600 and (world.state.stat().st_mode & 0o777) == 0o700
    second = world.load()
    assert not second["tomllib"] and not second["re"]  # neither the TOML parser nor the regex engine
    assert not second["_json"]  # nor the JSON library (a shared library to load: see configcache.py)
    assert world.settings(second) == world.settings(first) == world.settings(full)
    assert second["sources"]["idle_after"] == f"{world.config}:2"


@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_an_edit_is_seen_even_with_the_same_size_and_mtime(world: World, fast: bool) -> None:
    world.load(fast=fast)
    st = world.config.stat()
    world.config.write_text(CONFIG.replace("max_sessions = 3", "max_sessions = 5"))
    os.utime(world.config, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert world.config.stat().st_size == st.st_size
    assert world.load(fast=fast)["values"]["max_sessions"] == 5
    assert world.load(fast=fast)["values"]["max_sessions"] == 5  # and the cache now holds the new parse


def test_the_shim_takes_every_setting_from_the_cache_without_the_key_table(world: World) -> None:
    """configcache.load (the shim, ps, reap): once config.load has cached the settings made of the file, the next
    loads neither config.py (its key table and parsers) nor a TOML parser, and gets every setting, defaults
    included, with the source of each, exactly as a full parse does."""
    full = world.load(cache=False)
    first = world.load(fast=True)
    assert first["config_module"] and first["tomllib"]  # nothing cached yet: config.load parsed and cached
    second = world.load(fast=True)
    assert not second["config_module"] and not second["tomllib"] and not second["re"] and not second["_json"]
    assert second["all"] == full["all"] and second["all_sources"] == full["all_sources"]
    assert second["all_sources"]["max_sessions"] == f"{world.config}:1"
    assert second["all_sources"]["grace"] == "default" and second["problems"] == []


def test_no_config_file_is_cached_too(world: World) -> None:
    world.config.unlink()
    full = world.load(cache=False)
    world.load(fast=True)
    again = world.load(fast=True)
    assert not again["config_module"] and again["all"] == full["all"] and again["all_sources"] == full["all_sources"]
    world.config.write_text(CONFIG)  # a file that appears is read at once
    assert world.load(fast=True)["values"]["max_sessions"] == 3


def test_a_setting_variable_is_read_by_config_load_and_never_cached(world: World) -> None:
    world.load(fast=True)
    by_env = world.load(fast=True, env={"CLAUDE_GUARD_MAX_SESSIONS": "7"})
    assert by_env["config_module"] and by_env["values"]["max_sessions"] == 7
    assert by_env["sources"]["max_sessions"] == "env CLAUDE_GUARD_MAX_SESSIONS"
    after = world.load(fast=True)  # the variable's value went into no cache
    assert not after["config_module"] and after["values"]["max_sessions"] == 3
    typo = world.load(fast=True, env={"CLAUDE_GUARD_MAX_SESSION": "7"})  # config.load's to report
    assert typo["code"] == 78 and "unknown variable CLAUDE_GUARD_MAX_SESSION" in typo["error"]
    nested = world.load(fast=True, env={"CLAUDE_GUARD_COOKIE": "ab", "CLAUDE_GUARD_LAUNCHER": "1:2:1"})
    assert not nested["config_module"]  # the guard's own variables (a nested launch) are not settings


def test_settings_made_under_another_home_are_not_taken(world: World, tmp_path: Path) -> None:
    """A default or a `~` depends on more than the file: HOME, the machine's memory (max_sessions), the guard's
    version. Settings cached under another HOME are made again."""
    world.config.write_text(CONFIG + 'real_claude = "~/bin/claude"\n')
    world.load(fast=True)
    assert world.load(fast=True)["all"]["real_claude"] == f"{world.home}/bin/claude"
    other = tmp_path / "other-home"
    other.mkdir()
    moved = world.load(fast=True, env={"HOME": str(other)})
    assert moved["config_module"] and moved["all"]["real_claude"] == f"{other}/bin/claude"


def test_a_bad_file_after_a_cached_one_still_names_file_line_and_key(world: World) -> None:
    world.load()
    world.config.write_text(CONFIG.replace('memory_floor = "10%"', 'memory_floor = "lots"'))
    r = world.load()
    assert r["code"] == 78 and f"{world.config}:3" in r["error"] and "memory_floor" in r["error"]
    world.config.write_text("max_sessions = [\n")
    r = world.load()
    assert r["code"] == 78 and "invalid TOML" in r["error"]


def _faithful(world: World) -> str:
    world.load()
    return world.cache.read_text()


def _key_line(text: str, key: str, fields: str) -> str:
    """`text` with the cache line of `key` given other fields (line, kind, value...)."""
    out = [f"key\t{key}\t{fields}" if line.startswith(f"key\t{key}\t") else line for line in text.split("\n")]
    assert out != text.split("\n"), f"no line for {key}"
    return "\n".join(out)


@pytest.mark.parametrize("plant", [
    "garbage", "truncated", "not ascii", "other version", "line not a number", "unknown key",
    "value of a wrong kind", "unknown kind", "list of the wrong length", "a broken escape", "a key twice",
    "other path", "a value of a wrong kind", "a value twice", "a key after the values", "other context",
])
@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_a_corrupt_or_foreign_cache_is_a_miss(world: World, plant: str, fast: bool) -> None:
    text = _faithful(world)
    assert "key\tmax_sessions\t1\ti\t3\n" in text  # what the plants below change
    if plant == "garbage":
        planted = os.urandom(512).decode("latin-1")
    elif plant == "truncated":
        planted = text[: len(text) // 2]
    elif plant == "not ascii":
        planted = text.replace("max_sessions", "max_séssions")
    elif plant == "other version":
        planted = text.replace(configcache.HEADER, "claude-guard config cache 99")
    elif plant == "line not a number":
        planted = _key_line(text, "max_sessions", "one\ti\t99")
    elif plant == "unknown key":
        planted = text + "key\tevil\t9\ti\t1\n"
    elif plant == "value of a wrong kind":
        planted = _key_line(text, "max_sessions", "1\ts\tmany")
    elif plant == "unknown kind":
        planted = _key_line(text, "max_sessions", "1\tx\t99")
    elif plant == "list of the wrong length":
        planted = _key_line(text, "protect", "4\tl\t3\ta\tb")
    elif plant == "a broken escape":
        planted = _key_line(text, "on_cap", "5\ts\twait\\x")
    elif plant == "a key twice":
        planted = text + "key\tmax_sessions\t1\ti\t99\n"
    elif plant == "other path":  # another file's cache
        planted = _key_line(text.replace(f"path\t{world.config}", "path\t/elsewhere/config.toml"),
                            "max_sessions", "1\ti\t99")
    elif plant == "a value of a wrong kind":
        planted = text.replace(f"{world.config}:1\ti\t3\n", f"{world.config}:1\tx\t99\n")
    elif plant == "a value twice":
        planted = text + f"value\tmax_sessions\t{world.config}:1\ti\t99\n"
    elif plant == "a key after the values":
        planted = text + "key\tmax_sessions\t1\ti\t99\n"
    else:  # values made for another HOME, machine or guard version, whose defaults may differ
        context = next(line for line in text.split("\n") if line.startswith("context\t"))
        planted = text.replace(context, context.rsplit("\t", 1)[0] + "\t1")  # its values would be taken
        planted = planted.replace(f"{world.config}:1\ti\t3\n", f"{world.config}:1\ti\t99\n")
    assert planted != text
    world.cache.write_text(planted, encoding="latin-1")
    result = world.load(fast=fast)
    assert "error" not in result, result
    assert world.settings(result) == world.settings(world.load(cache=False))
    # config.load rewrites from the file a cache it cannot use (configcache.load reads only the value lines:
    # a bad key line beside good ones is left for config.load)
    if not fast:
        assert world.cache.read_text() == text
    assert _faithful(world) == text


def _plant(world: World, max_sessions: int) -> str:
    """A cache faithful to the file in every way but one value: what an attacker would want read (by config.load
    from its key line, by configcache.load from its value line)."""
    text = _key_line(_faithful(world), "max_sessions", f"1\ti\t{max_sessions}")
    planted = text.replace(f"value\tmax_sessions\t{world.config}:1\ti\t3\n",
                           f"value\tmax_sessions\t{world.config}:1\ti\t{max_sessions}\n")
    assert planted != text
    return planted


@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_a_cache_reached_through_a_symlink_is_ignored(world: World, fast: bool, tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(_plant(world, 99))
    elsewhere.chmod(0o600)
    world.cache.unlink()
    world.cache.symlink_to(elsewhere)
    assert world.load(fast=fast)["values"]["max_sessions"] == 3
    assert not world.cache.is_symlink()  # replaced by a real cache, the planted file untouched
    assert "key\tmax_sessions\t1\ti\t99" in elsewhere.read_text()


@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_a_cache_others_can_write_is_ignored(world: World, fast: bool) -> None:
    world.cache.write_text(_plant(world, 99))
    world.cache.chmod(0o666)
    assert world.load(fast=fast)["values"]["max_sessions"] == 3


@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_no_cache_is_read_or_written_in_a_folder_others_can_write(world: World, fast: bool) -> None:
    planted = _plant(world, 99)
    world.cache.write_text(planted)
    world.state.chmod(0o777)
    try:
        assert world.load(fast=fast)["values"]["max_sessions"] == 3
        assert world.cache.read_text() == planted  # nothing written there either
    finally:
        world.state.chmod(0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
@pytest.mark.parametrize("fast", [False, True], ids=["config.load", "configcache.load"])
def test_a_cache_owned_by_another_user_is_ignored(world: World, fast: bool) -> None:
    world.cache.write_text(_plant(world, 99))
    world.cache.chmod(0o600)
    os.chown(world.cache, 65534, 65534)
    assert world.load(fast=fast)["values"]["max_sessions"] == 3
