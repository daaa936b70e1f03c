"""Settings: parsing, precedence, errors that name file, line and key; paths that agree with platformdirs."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from claude_guard import config, paths
from claude_guard.errors import ExitCode, GuardError


@pytest.mark.parametrize(("text", "seconds"), [(90, 90), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200),
                                               ("1.5h", 5400), ("250ms", 0.25), ("1d", 86400)])
def test_durations(text: object, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5", "5 weeks", True, "nan"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(config.BadValue):
        config.parse_duration(bad)


@pytest.mark.parametrize(("text", "value"), [("2GiB", 2 * 1024**3), ("512M", 512e6), (1024, 1024), ("10%", -0.10),
                                             ("1k", 1000), ("1KiB", 1024)])
def test_sizes(text: object, value: float) -> None:
    assert config.parse_size(text) == pytest.approx(value)


def _write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return {"CLAUDE_GUARD_CONFIG": str(path)}


def test_precedence_default_file_env_override(tmp_path: Path) -> None:
    env = _write(tmp_path, "max_sessions = 3\non_cap = \"wait\"\n")
    s = config.load(env)
    assert s.max_sessions == 3 and s.sources["max_sessions"].endswith("c.toml:1")
    assert s.on_duplicate == "refuse" and s.sources["on_duplicate"] == "default"
    s = config.load({**env, "CLAUDE_GUARD_MAX_SESSIONS": "5"})
    assert s.max_sessions == 5 and s.sources["max_sessions"] == "env CLAUDE_GUARD_MAX_SESSIONS"
    s = config.load({**env, "CLAUDE_GUARD_MAX_SESSIONS": "5"}, {"max_sessions": "7"})
    assert s.max_sessions == 7 and s.sources["max_sessions"] == "command line"


def test_lists_from_file_and_env(tmp_path: Path) -> None:
    env = _write(tmp_path, 'protect = ["a", "b"]\n')
    assert config.load(env).protect == ["a", "b"]
    assert config.load({**env, "CLAUDE_GUARD_PROTECT": "x, y"}).protect == ["x", "y"]


@pytest.mark.parametrize(("text", "needle"), [
    ('\n\nmax_sessions = "lots"\n', ":3: max_sessions"),
    ("on_cap = 'sometimes'\n", ":1: on_cap"),
    ("strict = 3\n", ":1: strict"),
    ("nonsense = 1\n", "unknown key 'nonsense'"),
    ("max_sessions = \n", "invalid TOML"),
    ("protect = [1, 2]\n", ":1: protect"),
    ("max_sessions = 0\n", ":1: max_sessions"),
])
def test_bad_file_names_path_line_and_key(tmp_path: Path, text: str, needle: str) -> None:
    env = _write(tmp_path, text)
    with pytest.raises(GuardError) as e:
        config.load(env)
    assert e.value.exit_code == ExitCode.CONFIG
    assert needle in e.value.message and str(tmp_path / "c.toml") in e.value.message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"max_sessions = \xff\n")
    with pytest.raises(GuardError, match="not UTF-8"):
        config.load({"CLAUDE_GUARD_CONFIG": str(path)})


def test_bad_variable_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(GuardError, match="CLAUDE_GUARD_GRACE='x'"):
        config.load({**_write(tmp_path, ""), "CLAUDE_GUARD_GRACE": "x"})


def test_default_cap_is_at_least_two() -> None:
    assert config._default_max_sessions() >= 2


def test_lean_paths_agree_with_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for xdg in (None, str(tmp_path / "xdg")):
        for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME"):
            if xdg is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, f"{xdg}/{var}")
        monkeypatch.delenv("CLAUDE_GUARD_CONFIG", raising=False)
        assert paths.state_dir() == platformdirs.user_state_dir("claude-guard")
        assert paths.config_file() == str(Path(platformdirs.user_config_dir("claude-guard")) / "config.toml")
        assert paths.log_dir() == platformdirs.user_log_dir("claude-guard")


@pytest.mark.parametrize(("text", "needle"), [
    ("lock_timeout = inf\n", ":1: lock_timeout"),
    ("lock_timeout = 1e309\n", ":1: lock_timeout"),
    ("interval = inf\n", ":1: interval"),
    ("memory_floor = inf\n", ":1: memory_floor"),
    ("memory_floor = nan\n", ":1: memory_floor"),
    ('memory_floor = "' + "9" * 400 + '"\n', ":1: memory_floor"),
    ("idle_cpu = inf\n", ":1: idle_cpu"),
    ('idle_cpu = "1h"\n', "no time unit"),
])
def test_non_finite_numbers_and_units_are_config_errors(tmp_path: Path, text: str, needle: str) -> None:
    # Issue 10: inf was accepted (a lock wait that never ends; reap and reap --watch died with OverflowError, 70).
    with pytest.raises(GuardError) as e:
        config.load(_write(tmp_path, text))
    assert e.value.exit_code == ExitCode.CONFIG and needle in e.value.message


def test_idle_cpu_is_a_percentage() -> None:
    assert config.parse_percent("2%") == 2.0 and config.parse_percent(0.5) == 0.5 and config.parse_percent("3") == 3
    with pytest.raises(config.BadValue, match="no time unit"):
        config.parse_percent("1h")
    with pytest.raises(GuardError, match=r"CLAUDE_GUARD_IDLE_CPU='1h'.*no time unit"):
        config.load({"CLAUDE_GUARD_CONFIG": "/nonexistent/c.toml", "CLAUDE_GUARD_IDLE_CPU": "1h"})


def test_lenient_load_sets_problems_aside_and_keeps_defaults(tmp_path: Path) -> None:
    env = {**_write(tmp_path, "max_session = 3\nmax_sessions = 4\ngrace = inf\n"), "CLAUDE_GUARD_ON_KAP": "wait"}
    s = config.load(env, lenient=True)
    assert s.max_sessions == 4 and s.grace == 10.0 and s.sources["grace"] == "default"
    assert [p.split(":")[1] for p in s.problems[:2]] == ["1", "3"]
    assert "unknown key 'max_session' (did you mean max_sessions?)" in s.problems[0]
    assert "unknown variable CLAUDE_GUARD_ON_KAP (did you mean CLAUDE_GUARD_ON_CAP?)" in s.problems[2]
    with pytest.raises(GuardError, match=r"max_session.*\(and 2 more: `claude-guard doctor` lists them\)"):
        config.load(env)


def test_variables_read_elsewhere_are_not_unknown() -> None:
    env = {"CLAUDE_GUARD_CONFIG": "x", "CLAUDE_GUARD_COOKIE": "x", "CLAUDE_GUARD_TEST_CACHE": "x",
           "CLAUDE_GUARD_MAX_SESSIONS": "2", "CLAUDE_GUARD_BIN": "x", "CLAUDE_GUARD_MAXSESSIONS": "2"}
    assert config.unknown_variables(env) == ["CLAUDE_GUARD_MAXSESSIONS"]
