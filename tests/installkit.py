"""Installing claude-guard as a user would: a wheel built from this tree, installed into a fresh non-editable
venv (what `pipx install` and `uv tool install` make), and a sandboxed user around it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def build_wheelhouse(folder: Path) -> Path:
    """The claude-guard wheel and its dependencies' wheels in `folder`, built from a copy of the sources (an
    in-tree build would leave build/ and egg-info in the checkout)."""
    src = folder / "src"
    for part in ("launcher", "shims"):  # the package, and the templates it installs as claude_guard.shims
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    house = folder / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "-w",
                        str(house), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(house.glob("claude_guard-*.whl")), list(house.iterdir())
    return house


def make_venv(where: Path, wheelhouse: Path, base_python: str = sys.executable) -> Path:
    """A fresh venv at `where` with claude-guard installed from the wheel (no network: the wheelhouse only).
    Returns its python."""
    base = _base_python(base_python)
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                        "--disable-pip-version-check", "--no-index", "--find-links", str(wheelhouse), "claude-guard"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return python


def _base_python(python: str) -> str:
    """The interpreter a venv is built on: the test venv's own base, not the test venv."""
    if python != sys.executable:
        return python
    return getattr(sys, "_base_executable", sys.executable)


def user_env(home: Path, path: list[Path | str]) -> dict[str, str]:
    """A throwaway user: HOME and the XDG folders under `home`, PATH as given (then the system folders)."""
    return {"HOME": str(home), "PATH": os.pathsep.join([*map(str, path), "/usr/local/bin", "/usr/bin", "/bin"]),
            "XDG_STATE_HOME": str(home / ".local" / "state"), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "LANG": "C.UTF-8", "CLAUDE_GUARD_COUNT_UNGUARDED": "false"}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel build per test run, shared by every test that installs claude-guard as a user would."""
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
