"""The launch side's Windows rules, run with Windows semantics on Linux and natively under Wine
(scripts/test-windows). Each test is one defect Wine found in the Windows launch (issue 17):

1. every Windows folder stats as mode 0o777: the state folder check must not judge mode bits there;
2. psutil has no uids or terminals on Windows: the process backend must not ask for them;
3. PATH is searched with PATHEXT: npm's extensionless sh script `claude` is not a program there;
4. the shim's own `claude.exe` launcher (alive as the guard's ancestor) is not a Claude session;
5. names are matched as Windows does (case, `.exe`/`.cmd`), so `node.exe .../cli.js` and npm's `claude.cmd`
   are Claude Code for `claude-guard exec`.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from claude_guard import proc, procs, registry, resolve
from claude_guard.commands import exec as exec_command
from claude_guard.errors import GuardError

WINDOWS = sys.platform == "win32"
SEP = ";" if WINDOWS else os.pathsep


def shim_exe(path: Path) -> Path:
    """A file the way `claude-guard install` writes the Windows shim: pip's launcher naming claude_guard.shim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"MZ launcher\0" + b"\0" * 64 + b"PK zipped __main__: from claude_guard.shim import main\n")
    return path


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# --- 1: mode bits --------------------------------------------------------------------------------------


def test_mode_bits_are_not_judged_with_windows_semantics(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    os.chmod(folder, 0o777)  # what every folder reports on Windows
    st = os.lstat(folder)
    assert registry.describe_unsafe(st, windows=True) is None
    if not WINDOWS:
        assert (registry.describe_unsafe(st, windows=False) or "").startswith("writable by group or others")


def test_a_fresh_state_folder_is_usable_and_a_symlink_still_refused(tmp_path: Path) -> None:
    state = tmp_path / "Local AppData" / "claude-guard"
    registry.ensure_dir(str(state))  # on Windows: created and accepted, whatever mode it reports
    reg = registry.Registry(str(state), 10.0)
    with reg.locked():
        data = reg.load()
        reg.save(data)
    assert reg.load()["sessions"] == []
    link = tmp_path / "link"
    try:
        link.symlink_to(state, target_is_directory=True)
        st = os.lstat(link)
    except OSError as e:
        pytest.skip(f"no symlink to test with here (Windows without the privilege, or Wine): {e}")
    assert registry.describe_unsafe(st, windows=True) == "a symlink"


# --- 2: psutil attributes -------------------------------------------------------------------------------


def test_the_windows_backend_reads_processes_without_uids_or_terminals() -> None:
    from claude_guard.proc.portable import Portable

    backend = Portable(windows=True)
    me = backend.read(os.getpid())
    assert me is not None and me.pid == os.getpid()
    assert me.cmdline and me.start == backend.start_token(os.getpid())
    assert any(p.pid == os.getpid() for p in backend.scan(None, b""))
    if WINDOWS:  # the backend this system launches with
        assert procs.read(os.getpid()) is not None


# --- 3: PATHEXT -----------------------------------------------------------------------------------------


def npm_folder(root: Path) -> Path:
    """What `npm install -g` leaves: claude (sh), claude.cmd and claude.ps1."""
    npm = root / "Anderson Wang" / "npm"
    touch(npm / "claude", "#!/bin/sh\nexec node cli.js \"$@\"\n")
    touch(npm / "claude.cmd", "@ECHO off\r\n")
    touch(npm / "claude.ps1", "#!/usr/bin/env pwsh\n")
    return npm


def test_path_search_uses_pathext_and_skips_the_sh_script(tmp_path: Path) -> None:
    npm = npm_folder(tmp_path)
    found = resolve.find_real_claude("", str(npm), None, windows=True, pathext=".COM;.EXE;.BAT;.CMD", sep=SEP)
    assert os.path.normcase(found) == os.path.normcase(str(npm / "claude.cmd"))


def test_path_search_finds_claude_exe_alone_and_prefers_exe_in_one_folder(tmp_path: Path) -> None:
    native = tmp_path / "native"
    touch(native / "claude.exe")
    assert resolve.find_real_claude("", str(native), None, windows=True, pathext="", sep=SEP) == str(
        native / "claude.exe")
    touch(native / "claude.cmd")
    assert resolve.find_real_claude("", str(native), None, windows=True, pathext="", sep=SEP) == str(
        native / "claude.exe")


def test_path_search_skips_our_shim_exe_and_finds_its_backup_or_the_next_folder(tmp_path: Path) -> None:
    shims = tmp_path / "claude guard bin"
    me = shim_exe(shims / "claude.exe")
    npm = npm_folder(tmp_path)
    path = SEP.join([str(shims), str(npm)])
    found = resolve.find_real_claude("", path, str(me), windows=True, pathext="", sep=SEP)
    assert os.path.normcase(found) == os.path.normcase(str(npm / "claude.cmd"))
    backup = touch(shims / ("claude.exe" + resolve.BACKUP_SUFFIX))
    assert resolve.find_real_claude("", path, str(me), windows=True, pathext="", sep=SEP) == str(backup)


def test_path_search_with_nothing_runnable_is_127(tmp_path: Path) -> None:
    folder = tmp_path / "only sh"
    touch(folder / "claude", "#!/bin/sh\n")
    with pytest.raises(GuardError) as missing:
        resolve.find_real_claude("", str(folder), None, windows=True, pathext="", sep=SEP)
    assert missing.value.exit_code == 127


# --- 4 and 5: which processes are Claude Code ----------------------------------------------------------


def win_proc(exe: str, *args: str) -> proc.Proc:
    return proc.Proc(1234, 1, "S", "1.0", -1, 0, [exe, *args], exe)


def test_our_claude_exe_launcher_is_not_claude(tmp_path: Path) -> None:
    me = shim_exe(tmp_path / "claude guard bin" / "claude.exe")
    launcher = win_proc(str(me), "--resume", "abc")
    assert proc.claude_args(launcher, resolve.is_shim, windows=True) is None
    # The interpreter running the shim's script (the venv's python.exe and the base one under it).
    python = win_proc("C:\\Python313\\python.exe", str(me), "--resume", "abc")
    python.exe = "C:\\Python313\\python.exe"
    assert proc.claude_args(python, resolve.is_shim, windows=True) is None
    real = tmp_path / "npm" / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    touch(real, "MZ the real one")
    assert proc.claude_args(win_proc(str(real), "--resume", "abc"), resolve.is_shim, windows=True) == [
        "--resume", "abc"]


def test_windows_names_match_without_case_and_with_exe_or_cmd() -> None:
    cli = "C:\\Users\\A B\\AppData\\Roaming\\npm\\node_modules\\@anthropic-ai\\claude-code\\cli.js"
    assert proc.claude_args(win_proc("C:\\Program Files\\nodejs\\node.exe", cli, "-p", "x"), windows=True) == [
        "-p", "x"]
    assert proc.claude_args(win_proc("C:\\x\\CLAUDE.EXE", "-c"), windows=True) == ["-c"]
    assert proc.claude_args(win_proc("C:\\npm\\claude.cmd", "-p"), windows=True) == ["-p"]
    assert proc.claude_args(win_proc("C:\\x\\python3.13.exe", "C:\\x\\other.py"), windows=True) is None
    assert proc.claude_args(win_proc("C:\\x\\notclaude.exe", "-p"), windows=True) is None
    if not WINDOWS:  # POSIX names keep their case: CLAUDE is some other program there
        assert proc.claude_args(win_proc("/opt/x/CLAUDE", "-c"), windows=False) is None


@pytest.mark.skipif(not WINDOWS, reason="a .cmd is a Windows program; the name rule itself is tested above on Linux")
def test_exec_takes_npm_claude_cmd_as_claude_code(tmp_path: Path) -> None:
    npm = npm_folder(tmp_path)
    program, prefix, args = exec_command.split_command([str(npm / "claude.cmd"), "-p", "hi"], "")
    assert (program, prefix, args) == (str(npm / "claude.cmd"), [], ["-p", "hi"])
    with pytest.raises(GuardError):
        exec_command.split_command([str(touch(tmp_path / "other.cmd")), "-p"], "")


def test_mode_bits_helper_keeps_posix_rules_on_posix(tmp_path: Path) -> None:
    if WINDOWS:
        pytest.skip("POSIX mode bits")
    f = tmp_path / "f"
    f.write_text("")
    os.chmod(f, 0o600)
    assert registry.describe_unsafe(os.lstat(f)) is None
    os.chmod(f, 0o622)
    assert "mode 622" in (registry.describe_unsafe(os.lstat(f)) or "")
    assert stat.S_IMODE(os.lstat(f).st_mode) == 0o622
