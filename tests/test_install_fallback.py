"""The guard never takes claude away when its own Python goes: a moved or deleted venv (or checkout), a removed base
interpreter, or a package gone from the venv. Real venvs built from the wheel, real moves and deletions, the shim run
by the kernel through a real PATH; `claude` then runs the next real claude with one warning on stderr and nothing on
stdout, with that claude's exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from installkit import make_venv, user_env, wheelhouse
from standin import decode_argv, records, write_standin

__all__ = ["wheelhouse"]

ARGS = ["-p", "two words", "", "--model", "x"]


class User:
    """A throwaway user with a stand-in real claude (exit status 7) behind a shim folder."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.shim_dir = tmp / "shim"
        self.record = tmp / "record"
        self.record.mkdir()
        self.real = write_standin(tmp / "real", sys.executable)
        self.env = {**user_env(self.home, [self.shim_dir, self.real.parent]), "STANDIN_RECORD": str(self.record),
                    "STANDIN_EXIT": "7"}

    def install(self, python: Path) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(python), "-m", "claude_guard", "install", "--dir", str(self.shim_dir)], env=self.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r

    def claude(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """`claude ARGS` as a shell would start it: by name, found on PATH by the kernel's exec."""
        return subprocess.run(["claude", *args], env=self.env, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def doctor(self) -> dict[str, dict[str, object]]:
        # doctor from another, working claude-guard (this test run's), as a user would after the breakage
        r = subprocess.run([sys.executable, "-m", "claude_guard", "doctor", "--json"], env=self.env,
                           capture_output=True, text=True, timeout=120)
        return {c["check"]: c for c in json.loads(r.stdout)}


def _assert_guarded(user: User) -> None:
    r = user.claude(*ARGS)
    assert r.returncode == 7 and r.stdout == b"" and r.stderr == b"", r.stderr
    assert (user.home / ".local" / "state" / "claude-guard" / "guard.log").exists()


def _assert_fell_back(user: User, cause: bytes) -> None:
    before = len(records(user.record))
    r = user.claude(*ARGS)
    assert r.returncode == 7, r.stderr
    assert r.stdout == b""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert cause in lines[0] and b"'claude-guard install' again" in lines[0]
    assert str(user.real).encode() in lines[0]
    got = records(user.record)
    assert len(got) == before + 1
    assert decode_argv(got[-1]) == [a.encode() for a in ARGS]  # unguarded: the arguments exactly as given


def test_moved_venv_falls_back_to_the_real_claude_with_one_warning(tmp_path: Path, wheelhouse: Path) -> None:
    user = User(tmp_path)
    python = make_venv(tmp_path / "tools" / "venv", wheelhouse)
    r = user.install(python)
    assert "note:" not in r.stderr  # an installed tool, not a checkout: nothing to warn about
    _assert_guarded(user)
    assert user.doctor()["shim"]["ok"]
    (tmp_path / "tools").rename(tmp_path / "tools.moved")
    _assert_fell_back(user, f"{python} is gone".encode())
    shim = user.doctor()["shim"]
    assert not shim["ok"] and "is gone" in str(shim["detail"]) and "claude-guard install" in str(shim["fix"])
    # the repair the warning names: install again from a working environment
    user.install(tmp_path / "tools.moved" / "venv" / "bin" / "python")
    _assert_guarded(user)


def test_deleted_venv_and_removed_base_interpreter_fall_back(tmp_path: Path, wheelhouse: Path) -> None:
    """A pyenv version removed, a Homebrew upgrade: the venv's python is a link to an interpreter that is gone."""
    base = tmp_path / "pyenv" / "versions" / "3.x" / "bin"
    base.mkdir(parents=True)
    real_base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    (base / "python3").symlink_to(real_base)
    python = make_venv(tmp_path / "venv", wheelhouse, base_python=str(base / "python3"))
    assert os.readlink(tmp_path / "venv" / "bin" / "python3") == str(base / "python3")
    user = User(tmp_path)
    user.install(python)
    _assert_guarded(user)
    shutil.rmtree(tmp_path / "pyenv")
    assert (tmp_path / "venv").exists() and not os.path.exists(python)
    _assert_fell_back(user, f"{python} is gone".encode())
    shutil.rmtree(tmp_path / "venv")
    _assert_fell_back(user, f"{python} is gone".encode())


def test_package_removed_from_a_working_python_falls_back(tmp_path: Path, wheelhouse: Path) -> None:
    python = make_venv(tmp_path / "venv", wheelhouse)
    user = User(tmp_path)
    user.install(python)
    _assert_guarded(user)
    site = subprocess.run([str(python), "-c", "import claude_guard, os; print(os.path.dirname(claude_guard.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    shutil.rmtree(site)
    _assert_fell_back(user, b"package not found")


def test_fallback_skips_other_shims_and_finds_a_moved_aside_claude(tmp_path: Path, wheelhouse: Path) -> None:
    python = make_venv(tmp_path / "venv", wheelhouse)
    user = User(tmp_path)
    # a second, older shim folder on PATH, and a folder where install moved the real claude aside
    other = tmp_path / "other-shims"
    aside = tmp_path / "aside"
    user.real.rename(tmp_path / "real" / "claude.tmp")
    aside.mkdir()
    (tmp_path / "real" / "claude.tmp").rename(aside / "claude")
    user.real = aside / "claude.pre-claude-guard"
    for folder in (user.shim_dir, other, aside):
        r = subprocess.run([str(python), "-m", "claude_guard", "install", "--dir", str(folder)], env=user.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert user.real.exists()
    user.env["PATH"] = os.pathsep.join([str(user.shim_dir), str(other), str(aside), "/usr/bin", "/bin"])
    _assert_guarded(user)
    shutil.rmtree(tmp_path / "venv")
    _assert_fell_back(user, b"is gone")


def test_no_real_claude_at_all_is_127_with_one_line(tmp_path: Path, wheelhouse: Path) -> None:
    python = make_venv(tmp_path / "venv", wheelhouse)
    user = User(tmp_path)
    user.install(python)
    shutil.rmtree(tmp_path / "venv")
    user.real.unlink()
    r = user.claude("--version")
    assert r.returncode == 127 and r.stdout == b""
    assert len(r.stderr.splitlines()) == 1 and b"no real claude was found on PATH" in r.stderr


def test_explicit_real_claude_is_honoured_by_the_fallback(tmp_path: Path, wheelhouse: Path) -> None:
    python = make_venv(tmp_path / "venv", wheelhouse)
    user = User(tmp_path)
    user.install(python)
    elsewhere = write_standin(tmp_path / "elsewhere", sys.executable)
    user.env["CLAUDE_GUARD_REAL_CLAUDE"] = str(elsewhere)
    shutil.rmtree(tmp_path / "venv")
    user.real = elsewhere
    _assert_fell_back(user, b"is gone")


def _notes(r: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in r.stderr.splitlines() if "note:" in line]


def test_install_warns_when_the_environment_lives_in_a_checkout(tmp_path: Path, wheelhouse: Path) -> None:
    user = User(tmp_path)
    # this test run's own environment: an editable install of this checkout
    r = subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(user.shim_dir)], env=user.env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    notes = _notes(r)
    assert len(notes) == 1 and "source checkout" in notes[0] and "pipx install" in notes[0]
    # a non-editable venv inside a checkout (scripts/setup's .venv, built from the wheel)
    checkout = tmp_path / "claude-guard"
    (checkout / "launcher" / "claude_guard").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'claude-guard'\n")
    notes = _notes(user.install(make_venv(checkout / ".venv", wheelhouse)))
    assert len(notes) == 1 and f"source checkout {checkout};" in notes[0]
    # the same wheel in a tool venv of its own: no note
    assert not _notes(user.install(make_venv(tmp_path / "pipx" / "venvs" / "claude-guard", wheelhouse)))
