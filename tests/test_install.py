"""Installing like any tool: scripts/setup on a fresh copy of the tree, and a built wheel in a fresh non-editable
venv (what `pipx install` / `uv tool install` give) running install, a guarded launch, ps and uninstall."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_guard import resolve
from claude_guard.commands.install import baked_python
from conftest import wait_for
from installkit import REPO, make_venv, user_env, wheelhouse
from standin import write_standin

__all__ = ["wheelhouse"]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


def _tracked_tree(dest: Path) -> None:
    """The files a fresh clone has (tracked ones, plus new ones not yet committed), without .venv or caches."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    # Copied file by file (modes kept, symlinks as symlinks): tarfile's extraction `filter` exists only from
    # Python 3.10.12 and 3.11.4, and a Debian 3.11.2 runs these tests too.
    for name in filter(None, listed):
        source = REPO / name
        if source.exists() or source.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)


def test_setup_on_a_fresh_tree_prints_a_clean_first_screen(tmp_path: Path) -> None:
    tree = tmp_path / "claude-guard"
    _tracked_tree(tree)
    home = tmp_path / "home"
    shim_dir = home / ".local" / "bin"
    real = write_standin(tmp_path / "real", sys.executable)
    env = {**user_env(home, [shim_dir, real.parent]), "CLAUDE_GUARD_SHIM_DIR": str(shim_dir)}
    r = subprocess.run(["bash", str(tree / "scripts" / "setup")], env=env, capture_output=True, text=True,
                       timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    screen = r.stdout + r.stderr
    for noise in ("Deprecat", "BuildBackendWarning", "Editable install", "!!", "setuptools", "WARNING"):
        assert noise not in screen, screen
    # stdout: what was installed, then `ps` (whose rows are this machine's sessions); stderr: where pip's output
    # went, and the note that this install lives in the checkout
    assert r.stdout.startswith("installed the claude shim: "), r.stdout
    assert len(r.stderr.splitlines()) == 2 and "note: the shim runs claude-guard from the source checkout" in r.stderr
    # the log keeps pip's words for when something goes wrong; setuptools warns of nothing but the one notice
    # every editable install with a mapped folder (top-level shims/ as claude_guard.shims) gets
    log = (tree / ".venv" / "setup.log").read_text()
    assert "Successfully installed" in log and "Deprecat" not in log
    assert log.count("BuildBackendWarning") == log.count("BuildBackendWarning: Editable installation.") <= 1, log
    # claude-guard is on PATH beside the shim: a bare `claude-guard` works with the shim's PATH line
    command = shim_dir / "claude-guard"
    assert resolve.is_shim(str(command))
    r = subprocess.run(["claude-guard", "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("claude-guard "), r.stderr
    assert str(tree / ".venv" / "bin" / "python") in (shim_dir / "claude").read_text()


def test_wheel_in_a_fresh_venv_installs_launches_lists_and_uninstalls(tmp_path: Path, wheelhouse: Path,
                                                                        started: list[subprocess.Popen[bytes]]) -> None:
    venv = tmp_path / "tools" / "claude-guard"
    python = make_venv(venv, wheelhouse)
    # non-editable: the package is in the venv's site-packages, not in this checkout
    where = subprocess.run([str(python), "-c", "import claude_guard; print(claude_guard.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)) and "site-packages" in where
    home = tmp_path / "home"
    shim_dir = tmp_path / "bin"
    real = write_standin(tmp_path / "real", sys.executable)
    record = tmp_path / "record"
    record.mkdir()
    env = {**user_env(home, [shim_dir, real.parent]), "STANDIN_RECORD": str(record)}
    r = subprocess.run([str(venv / "bin" / "claude-guard"), "install", "--dir", str(shim_dir)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "installed the claude-guard command" in r.stdout
    shim = shim_dir / "claude"
    assert f"py={python}" in shim.read_text() or f"#!{python}" in shim.read_text()
    # a guarded launch through the shim: the stand-in runs with the shim's PID and is registered
    p = subprocess.Popen([str(shim), "-p", "hello"], env={**env, "STANDIN_SLEEP": "60"}, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(p)
    registry = home / ".local" / "state" / "claude-guard" / "registry.json"
    wait_for((record / f"{p.pid}.json").exists)
    assert str(p.pid) in registry.read_text()
    # ps and uninstall through the claude-guard command the install put beside the shim (bare name, on PATH)
    ps = subprocess.run(["claude-guard", "ps"], env=env, capture_output=True, text=True, timeout=120)
    assert ps.returncode == 0, ps.stderr
    assert str(p.pid) in ps.stdout
    p.kill()
    p.communicate(timeout=30)
    r = subprocess.run(["claude-guard", "uninstall", "--dir", str(shim_dir)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not shim.exists() and not (shim_dir / "claude-guard").exists()
    assert "removed the claude-guard command" in r.stdout


def test_install_leaves_a_foreign_claude_guard_alone(tmp_path: Path) -> None:
    """pipx and uv link their own `claude-guard` into ~/.local/bin: install must not replace it."""
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    theirs = tmp_path / "pipx-venv-claude-guard"
    theirs.write_text("#!/bin/sh\necho theirs\n")
    theirs.chmod(0o755)
    (shim_dir / "claude-guard").symlink_to(theirs)
    env = {**os.environ, **user_env(tmp_path / "home", [shim_dir])}
    r = subprocess.run([sys.executable, "-m", "claude_guard", "install", "--dir", str(shim_dir)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"left {shim_dir / 'claude-guard'} alone" in r.stdout
    assert os.readlink(shim_dir / "claude-guard") == str(theirs)
    r = subprocess.run([sys.executable, "-m", "claude_guard", "uninstall", "--dir", str(shim_dir)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and (shim_dir / "claude-guard").is_symlink()


def _tool_install(tool: str, home: Path, bin_dir: Path, wheelhouse: Path) -> dict[str, str]:
    """`pipx install` / `uv tool install` of the built wheel, offline (the wheelhouse only), into a throwaway
    HOME; returns the environment the user's shell would have."""
    env = {**os.environ, **user_env(home, [bin_dir])}
    wheel = str(next(wheelhouse.glob("claude_guard-*.whl")))
    if tool == "pipx":
        env.update({"PIPX_HOME": str(home / ".local" / "share" / "pipx"), "PIPX_BIN_DIR": str(bin_dir),
                    "PIPX_MAN_DIR": str(home / ".local" / "share" / "man")})
        argv = [sys.executable, "-m", "pipx", "install", f"--pip-args=--no-index --find-links {wheelhouse}", wheel]
    else:
        env.update({"UV_TOOL_DIR": str(home / ".local" / "share" / "uv" / "tools"), "UV_TOOL_BIN_DIR": str(bin_dir),
                    "UV_CACHE_DIR": str(home / ".cache" / "uv"), "UV_PYTHON_DOWNLOADS": "never"})
        argv = [sys.executable, "-m", "uv", "tool", "install", "--python", getattr(sys, "_base_executable", ""),
                "--no-index", "--find-links", str(wheelhouse), wheel]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return env


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_pipx_and_uv_tool_installs_work_like_any_tool(tool: str, tmp_path: Path, wheelhouse: Path,
                                                      started: list[subprocess.Popen[bytes]]) -> None:
    pytest.importorskip(tool, reason=f"{tool} not installed: run scripts/setup --dev")
    home = tmp_path / "home"
    bin_dir = home / ".local" / "bin"  # where pipx and uv link their commands, and where the shim goes
    env = _tool_install(tool, home, bin_dir, wheelhouse)
    theirs = os.path.realpath(bin_dir / "claude-guard")
    real = write_standin(tmp_path / "real", sys.executable)
    record = tmp_path / "record"
    record.mkdir()
    env["PATH"] = os.pathsep.join([str(bin_dir), str(real.parent), "/usr/bin", "/bin"])
    env["STANDIN_RECORD"] = str(record)
    r = subprocess.run(["claude-guard", "install"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "note:" not in r.stderr  # the tool's environment is not a checkout
    assert f"left {bin_dir / 'claude-guard'} alone" in r.stdout  # pipx's or uv's own link stays
    assert os.path.realpath(bin_dir / "claude-guard") == theirs
    baked = baked_python(str(bin_dir / "claude")) or ""
    assert baked.startswith(str(home / ".local" / "share" / ("pipx" if tool == "pipx" else "uv"))), baked
    p = subprocess.Popen(["claude", "-p", "hi"], env={**env, "STANDIN_SLEEP": "60"}, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(p)
    wait_for((record / f"{p.pid}.json").exists)
    ps = subprocess.run(["claude-guard", "ps"], env=env, capture_output=True, text=True, timeout=120)
    assert ps.returncode == 0 and str(p.pid) in ps.stdout, ps.stderr
    r = subprocess.run(["claude-guard", "uninstall"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not (bin_dir / "claude").exists(), r.stderr
    assert os.path.realpath(bin_dir / "claude-guard") == theirs
