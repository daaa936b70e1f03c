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

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cache is Linux only")

CONFIG = 'max_sessions = 3\nidle_after = "45m"\nmemory_floor = "10%"\nprotect = ["a", "b"]\non_cap = "wait"\n'

PROBE = """
import sys
sys.path.insert(0, {launcher!r})
from claude_guard import config
from claude_guard.errors import GuardError
try:
    s = config.load(cache={cache})
except GuardError as e:
    result = {{"error": e.message, "code": int(e.exit_code)}}
else:
    keys = ("max_sessions", "idle_after", "memory_floor", "protect", "on_cap")
    result = {{"values": {{k: s.values[k] for k in keys}}, "sources": {{k: s.sources[k] for k in keys}},
              "tomllib": "tomllib" in sys.modules or "tomli" in sys.modules, "re": "re" in sys.modules,
              "_json": "_json" in sys.modules}}
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

    def load(self, cache: bool = True) -> dict[str, Any]:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.format(launcher=str(REPO / "launcher"),
                                                                           cache=cache)],
                           env=self.env, capture_output=True, text=True, timeout=60, check=False)
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


def test_an_edit_is_seen_even_with_the_same_size_and_mtime(world: World) -> None:
    world.load()
    st = world.config.stat()
    world.config.write_text(CONFIG.replace("max_sessions = 3", "max_sessions = 5"))
    os.utime(world.config, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert world.config.stat().st_size == st.st_size
    assert world.load()["values"]["max_sessions"] == 5
    assert world.load()["values"]["max_sessions"] == 5  # and the cache now holds the new parse


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
    "other path",
])
def test_a_corrupt_or_foreign_cache_is_a_miss(world: World, plant: str) -> None:
    text = _faithful(world)
    assert "key\tmax_sessions\t1\ti\t3\n" in text  # what the plants below change
    if plant == "garbage":
        planted = os.urandom(512).decode("latin-1")
    elif plant == "truncated":
        planted = text[: len(text) // 2]
    elif plant == "not ascii":
        planted = text.replace("max_sessions", "max_séssions")
    elif plant == "other version":
        planted = text.replace("config cache 2", "config cache 99")
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
    else:  # another file's cache
        planted = _key_line(text.replace(f"path\t{world.config}", "path\t/elsewhere/config.toml"),
                            "max_sessions", "1\ti\t99")
    world.cache.write_text(planted, encoding="latin-1")
    result = world.load()
    assert "error" not in result, result
    assert world.settings(result) == world.settings(world.load(cache=False))
    assert world.cache.read_text() == _faithful(world) == text  # rewritten from the file


def _plant(world: World, max_sessions: int) -> str:
    """A cache faithful to the file in every way but one value: what an attacker would want read."""
    return _key_line(_faithful(world), "max_sessions", f"1\ti\t{max_sessions}")


def test_a_cache_reached_through_a_symlink_is_ignored(world: World, tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(_plant(world, 99))
    elsewhere.chmod(0o600)
    world.cache.unlink()
    world.cache.symlink_to(elsewhere)
    assert world.load()["values"]["max_sessions"] == 3
    assert not world.cache.is_symlink()  # replaced by a real cache, the planted file untouched
    assert "key\tmax_sessions\t1\ti\t99" in elsewhere.read_text()


def test_a_cache_others_can_write_is_ignored(world: World) -> None:
    world.cache.write_text(_plant(world, 99))
    world.cache.chmod(0o666)
    assert world.load()["values"]["max_sessions"] == 3


def test_no_cache_is_read_or_written_in_a_folder_others_can_write(world: World) -> None:
    planted = _plant(world, 99)
    world.cache.write_text(planted)
    world.state.chmod(0o777)
    try:
        assert world.load()["values"]["max_sessions"] == 3
        assert world.cache.read_text() == planted  # nothing written there either
    finally:
        world.state.chmod(0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_cache_owned_by_another_user_is_ignored(world: World) -> None:
    world.cache.write_text(_plant(world, 99))
    world.cache.chmod(0o600)
    os.chown(world.cache, 65534, 65534)
    assert world.load()["values"]["max_sessions"] == 3
