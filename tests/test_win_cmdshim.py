"""Reading npm cmd-shim files and planning the launch, on shims written by the real cmd-shim package.

scripts/gen-cmdshim-fixtures writes the fixtures (several cmd-shim versions, a folder path with spaces); the
tests skip when node or npm is absent, and fail if the script does. Under Wine (scripts/test-windows) there is
no node: the harness writes them on Linux and names the folder in CLAUDE_GUARD_TEST_CMDSHIM_FIXTURES, whose
manifest-native.json holds this system's paths.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_guard.errors import ExitCode, GuardError
from claude_guard.win.cmdline import cmd_exe_path
from claude_guard.win.cmdshim import MAX_SHIM_BYTES, parse_cmd_shim
from claude_guard.win.launch import plan, system_root
from winmodels import HostileEnvironment, after_slash_c, cmd_c, parse_argv_post2008, parse_argv_pre2008

REPO = Path(__file__).resolve().parent.parent
OLD_TAKEN = {"8.0.0": "cmd-shim 4.1-8", "4.0.0": "cmd-shim 3.0.3-4.0", "2.1.0": "cmd-shim 2"}
NOT_TAKEN = "1.1.2"
HOSTILE_ARGS = ["-p", "a & calc.exe", "%PATH%", 'say "hi"', "C:\\Program Files\\", "", "^!x|y<z>"]


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """Manifest entries by (version, case); the version installed by install-test-deps is "current"."""
    given = os.environ.get("CLAUDE_GUARD_TEST_CMDSHIM_FIXTURES")
    if given:
        entries = json.loads((Path(given) / "manifest-native.json").read_text())
    else:
        missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"{' and '.join(missing)} not found: the cmd-shim fixtures are written by npm's cmd-shim")
        out = tmp_path_factory.mktemp("cmdshim")
        done = subprocess.run(
            [str(REPO / "scripts" / "gen-cmdshim-fixtures"), str(out)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/gen-cmdshim-fixtures failed ({done.returncode}):\n{done.stderr}")
        entries = json.loads((out / "manifest.json").read_text())
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        version = entry["version"] if entry["version"] in (*OLD_TAKEN, NOT_TAKEN) else "current"
        by_key[(version, entry["case"])] = entry
    return by_key


def copy_case(entry: dict[str, Any], dest: Path) -> tuple[Path, Path]:
    """A private copy of one fixture (shim folder and target), so a test may change it."""
    folder = Path(entry["shim"]).parent
    shutil.copytree(folder, dest)
    return dest / "claude.cmd", dest / Path(entry["target"]).relative_to(folder)


def node_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds node.exe only after a node.js that PATHEXT (with .JS) would pick."""
    first, second = tmp_path / "bin first", tmp_path / "bin second"
    first.mkdir()
    second.mkdir()
    (first / "node.js").write_text("WScript.Echo('not node')")
    (second / "node.exe").write_bytes(b"MZ")
    return {"Path": f"{first};{second}", "PATHEXT": ".JS;.COM;.EXE;.BAT;.CMD"}


VERSIONS = ["current", *OLD_TAKEN]


@pytest.mark.parametrize("version", VERSIONS)
def test_native_shim_gives_claude_exe(fixtures: dict[tuple[str, str], dict[str, Any]], version: str) -> None:
    entry = fixtures[(version, "native")]
    target = parse_cmd_shim(entry["shim"], environ={})
    assert target is not None
    assert target.program == entry["target"]
    assert " " in target.program  # the folder path has spaces
    assert target.args == ()
    assert target.layout == (
        "cmd-shim 4.1-9 native" if version in ("current", "8.0.0") else f"{OLD_TAKEN[version]} native"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_node_shim_prefers_node_exe_beside_it(
    fixtures: dict[tuple[str, str], dict[str, Any]], version: str, tmp_path: Path
) -> None:
    shim, script = copy_case(fixtures[(version, "node")], tmp_path / "npm dir")
    (shim.parent / "node.exe").write_bytes(b"MZ")
    target = parse_cmd_shim(str(shim), environ=node_on_path(tmp_path))
    assert target is not None
    assert target.program == str(shim.parent / "node.exe")
    assert target.args == (str(script),)
    assert target.layout.endswith(" node")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("case", "fixed"), [("node", ()), ("node-args", ("--no-warnings",))])
def test_node_shim_finds_node_on_path_without_js_and_keeps_shebang_arguments(
    fixtures: dict[tuple[str, str], dict[str, Any]], version: str, case: str, fixed: tuple[str, ...], tmp_path: Path
) -> None:
    entry = fixtures[(version, case)]
    target = parse_cmd_shim(entry["shim"], environ=node_on_path(tmp_path))
    assert target is not None
    assert target.program == str(tmp_path / "bin second" / "node.exe")
    assert target.args == (*fixed, entry["target"])


@pytest.mark.parametrize("version", VERSIONS)
def test_shim_setting_variables_is_not_taken(
    fixtures: dict[tuple[str, str], dict[str, Any]], version: str, tmp_path: Path
) -> None:
    assert parse_cmd_shim(fixtures[(version, "node-vars")]["shim"], environ=node_on_path(tmp_path)) is None


@pytest.mark.parametrize("case", ["native", "node", "node-args"])
def test_cmd_shim_1_layout_is_not_taken(
    fixtures: dict[tuple[str, str], dict[str, Any]], case: str, tmp_path: Path
) -> None:
    assert parse_cmd_shim(fixtures[(NOT_TAKEN, case)]["shim"], environ=node_on_path(tmp_path)) is None


def test_node_shim_without_any_node_or_with_node_cmd_only(
    fixtures: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    entry = fixtures[("current", "node")]
    assert parse_cmd_shim(entry["shim"], environ={"PATH": str(tmp_path)}) is None
    (tmp_path / "node.cmd").write_text("@node.exe %*\r\n")  # a version manager's shim: cmd.exe again
    assert parse_cmd_shim(entry["shim"], environ={"PATH": str(tmp_path)}) is None


@pytest.mark.parametrize("case", ["native", "node"])
def test_missing_target_is_not_taken(
    fixtures: dict[tuple[str, str], dict[str, Any]], case: str, tmp_path: Path
) -> None:
    shim, target = copy_case(fixtures[("current", case)], tmp_path / "npm dir")
    (shim.parent / "node.exe").write_bytes(b"MZ")
    assert parse_cmd_shim(str(shim), environ={}) is not None
    target.unlink()
    assert parse_cmd_shim(str(shim), environ={}) is None


def _edits() -> dict[str, Any]:
    def pad(text: str) -> str:
        return text + "REM " + "x" * MAX_SHIM_BYTES + "\r\n"

    return {
        "a command appended": lambda t: t + "calc.exe\r\n",
        "an operator after the arguments": lambda t: t.replace("%*\r\n", "%* & calc.exe\r\n"),
        "a variable in the target": lambda t: t.replace("node_modules", "%USERPROFILE%"),
        "LF line endings": lambda t: t.replace("\r\n", "\n"),
        "a byte-order mark": lambda t: "\ufeff" + t,
        "a trailing blank line": lambda t: t + "\r\n",
        "echo left on": lambda t: t.replace("@ECHO off", "@ECHO on"),
        "a drive in the target": lambda t: t.replace("node_modules", "D:\\node_modules"),
        "over 64 KiB": pad,
    }


@pytest.mark.parametrize("edit", list(_edits()))
def test_edited_shims_are_not_taken(fixtures: dict[tuple[str, str], dict[str, Any]], edit: str, tmp_path: Path) -> None:
    shim, _ = copy_case(fixtures[("current", "native")], tmp_path / "npm dir")
    assert parse_cmd_shim(str(shim), environ={}) is not None
    shim.write_bytes(_edits()[edit](shim.read_bytes().decode()).encode())
    assert parse_cmd_shim(str(shim), environ={}) is None


def test_unreadable_or_undecodable_files_are_not_taken(tmp_path: Path) -> None:
    assert parse_cmd_shim(str(tmp_path / "absent.cmd"), environ={}) is None
    assert parse_cmd_shim(str(tmp_path), environ={}) is None  # a folder
    (tmp_path / "bad.cmd").write_bytes(b"@ECHO off\r\n\xff\xfe\r\n")
    assert parse_cmd_shim(str(tmp_path / "bad.cmd"), environ={}) is None


# --- plan ---------------------------------------------------------------------------------------------


def _argv(line: str) -> list[str]:
    post, pre = parse_argv_post2008(line), parse_argv_pre2008(line)
    assert post == pre
    return post


def test_plan_starts_the_native_target_directly(fixtures: dict[tuple[str, str], dict[str, Any]]) -> None:
    entry = fixtures[("current", "native")]
    application, line = plan(entry["shim"], HOSTILE_ARGS, environ={})
    assert application == entry["target"]
    assert _argv(line) == [entry["target"], *HOSTILE_ARGS]


def test_plan_starts_node_and_the_script(fixtures: dict[tuple[str, str], dict[str, Any]], tmp_path: Path) -> None:
    entry = fixtures[("current", "node-args")]
    application, line = plan(entry["shim"], HOSTILE_ARGS, environ=node_on_path(tmp_path))
    node = str(tmp_path / "bin second" / "node.exe")
    assert application == node
    assert _argv(line) == [node, "--no-warnings", entry["target"], *HOSTILE_ARGS]


def test_plan_treats_trailing_dots_and_spaces_as_the_batch_file(
    fixtures: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    shim, target = copy_case(fixtures[("current", "native")], tmp_path / "npm dir")
    odd = shim.parent / "claude.cmd. "
    shim.rename(odd)
    application, line = plan(str(odd), ["x"], environ={})
    assert application == str(target)
    assert _argv(line) == [str(target), "x"]


def test_plan_starts_exe_and_com_directly(tmp_path: Path) -> None:
    for name in ("claude.exe", "CLAUDE.COM", "claude.exe. "):
        path = str(tmp_path / "Program Files" / name)
        application, line = plan(path, HOSTILE_ARGS, environ={})
        assert application == path.rstrip(". ")
        assert _argv(line) == [application, *HOSTILE_ARGS]


def test_plan_refuses_unknown_batch_files_by_default(tmp_path: Path) -> None:
    batch = tmp_path / "my claude.bat"
    batch.write_text("@echo off\r\nclaude.exe %*\r\n")
    with pytest.raises(GuardError) as refused:
        plan(str(batch), ["x"], environ={})
    assert refused.value.exit_code == ExitCode.REFUSED
    assert 'unknown_batch = "escape"' in refused.value.message  # the config key that allows it


def test_plan_escapes_unknown_batch_files_when_asked(tmp_path: Path) -> None:
    batch = tmp_path / "my claude.bat"
    batch.write_text("@echo off\r\nclaude.exe %*\r\n")
    environ = {"SystemRoot": "D:\\Win"}
    application, line = plan(str(batch), HOSTILE_ARGS, environ=environ, on_unknown_batch="escape")
    assert application == cmd_exe_path(system_root(environ))
    if sys.platform == "win32":  # Windows is asked for its folder: the environment cannot move cmd.exe
        assert not application.startswith("D:\\Win")
        assert os.path.isfile(application)
    else:  # elsewhere SystemRoot is all there is
        assert application == "D:\\Win\\System32\\cmd.exe"
    outcome = cmd_c(after_slash_c(line), HostileEnvironment())
    assert outcome.operators == []
    assert parse_argv_post2008(outcome.text) == [str(batch), *HOSTILE_ARGS]
    with pytest.raises(GuardError) as refused:
        plan(str(batch), ["two\nlines"], environ={}, on_unknown_batch="escape")
    assert refused.value.exit_code == ExitCode.REFUSED


def test_plan_refuses_other_files_bad_settings_and_nul(tmp_path: Path) -> None:
    with pytest.raises(GuardError) as refused:
        plan(str(tmp_path / "claude.ps1"), [], environ={})
    assert refused.value.exit_code == ExitCode.REFUSED
    with pytest.raises(GuardError) as config:
        plan(str(tmp_path / "claude.exe"), [], environ={}, on_unknown_batch="sometimes")
    assert config.value.exit_code == ExitCode.CONFIG
    with pytest.raises(GuardError) as nul:
        plan(str(tmp_path / "claude.exe"), ["ok", "a\0b"], environ={})
    assert nul.value.exit_code == ExitCode.REFUSED
    assert "argument 2" in nul.value.message
