"""The Windows PATH walk, on real folders (tmp_path), with `;`-separated PATH strings given explicitly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claude_guard.win.pathext import extension, parse_pathext, which, windows_name

PATHEXT = ".COM;.EXE;.BAT;.CMD;.VBS;.JS"


def never(_: str) -> bool:
    return False


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def test_first_path_entry_wins_then_pathext_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    touch(second / "claude.exe")
    cmd = touch(first / "claude.cmd")
    assert which("claude", f"{first};{second}", PATHEXT, never) == cmd
    bat = touch(first / "claude.bat")  # .BAT comes before .CMD in PATHEXT
    assert which("claude", f"{first};{second}", PATHEXT, never) == bat
    exe = touch(first / "claude.exe")
    assert which("claude", f"{first};{second}", PATHEXT, never) == exe


def test_extensions_match_without_regard_to_case(tmp_path: Path) -> None:
    found = touch(tmp_path / "npm" / "Claude.CMD")
    assert which("claude", str(tmp_path / "npm"), ".exe;.cmd", never) == found
    assert which("CLAUDE", str(tmp_path / "npm"), ".EXE;.CMD", never) == found


def test_skip_passes_over_our_own_shim(tmp_path: Path) -> None:
    ours = touch(tmp_path / "shim" / "claude.exe")
    real = touch(tmp_path / "npm dir" / "claude.cmd")
    path = f"{tmp_path / 'shim'};{tmp_path / 'npm dir'}"
    assert which("claude", path, PATHEXT, never) == ours
    assert which("claude", path, PATHEXT, lambda p: p == ours) == real
    # Skipping a candidate goes on to the next extension in the same folder too.
    also = touch(tmp_path / "shim" / "claude.cmd")
    assert which("claude", path, PATHEXT, lambda p: p == ours) == also


def test_trailing_dots_and_spaces_are_trimmed_as_windows_opens_names(tmp_path: Path) -> None:
    found = touch(tmp_path / "claude.cmd")
    assert which("claude.cmd. ", str(tmp_path), PATHEXT, never) == found
    assert which("claude. .", str(tmp_path), PATHEXT, never) == found
    assert windows_name("C:\\npm\\claude.cmd. . ") == "C:\\npm\\claude.cmd"
    assert extension("C:\\npm\\claude.cmd. ") == ".cmd"  # CVE-2024-43402: still a batch file
    assert extension("C:\\npm\\CLAUDE.EXE...") == ".exe"
    assert extension("C:\\npm\\claude.cmd::$DATA") == ""  # an NTFS stream is not a program
    assert extension("C:\\npm.d\\claude") == ""
    assert extension("C:\\npm\\.cmd") == ""  # a dot file has no extension


def test_name_with_extension_is_tried_as_is_first(tmp_path: Path) -> None:
    exact = touch(tmp_path / "claude.cmd")
    touch(tmp_path / "claude.cmd.exe")
    assert which("claude.cmd", str(tmp_path), PATHEXT, never) == exact
    # An extension not in PATHEXT is never started as it is.
    touch(tmp_path / "claude.ps1")
    assert which("claude.ps1", str(tmp_path), PATHEXT, never) is None


def test_quoted_empty_relative_and_missing_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = touch(tmp_path / "with;semicolon" / "claude.exe")
    assert which("claude", f';"{tmp_path / "with;semicolon"}";', PATHEXT, never) is None  # split first
    assert which("claude", f'"{tmp_path / "missing"}";;{tmp_path / "with;semicolon"}', PATHEXT, never, sep="|") is None
    assert which("claude", f'|"{tmp_path / "with;semicolon"}"|', PATHEXT, never, sep="|") == found
    # A relative entry (here `.`, the working folder) is never searched.
    monkeypatch.chdir(tmp_path / "with;semicolon")
    assert which("claude", ".", PATHEXT, never) is None


def test_folders_and_unreadable_entries_are_not_programs(tmp_path: Path) -> None:
    (tmp_path / "claude.exe").mkdir()
    touch(tmp_path / "file-not-folder")
    assert which("claude", f"{tmp_path};{tmp_path / 'file-not-folder'}", PATHEXT, never) is None


def test_name_with_a_folder_is_looked_up_there_only(tmp_path: Path) -> None:
    found = touch(tmp_path / "npm" / "claude.cmd")
    touch(tmp_path / "other" / "claude.exe")
    assert which(str(tmp_path / "npm" / "claude"), str(tmp_path / "other"), PATHEXT, never) == found
    assert which("claude:stream", str(tmp_path / "npm"), PATHEXT, never) is None


def test_pathext_parsing() -> None:
    assert parse_pathext(" .EXE ;; .Cmd;.exe;bad") == [".exe", ".cmd"]
    assert parse_pathext("") == [".com", ".exe", ".bat", ".cmd"]


@pytest.mark.skipif(os.name == "nt", reason="case-sensitive file names are what this checks")
def test_two_names_differing_in_case_give_one_result(tmp_path: Path) -> None:
    touch(tmp_path / "claude.exe")
    touch(tmp_path / "CLAUDE.EXE")
    found = which("claude", str(tmp_path), PATHEXT, never)
    assert found is not None
    assert os.path.basename(found).lower() == "claude.exe"
