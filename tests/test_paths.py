"""paths.py computes the Linux folders itself (importing platformdirs costs more than the shim may take): they
must be the ones platformdirs gives, with and without the XDG variables."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from claude_guard import paths

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="paths computes XDG folders on Linux")


@pytest.mark.parametrize("xdg", [False, True], ids=["defaults", "xdg-variables"])
def test_linux_folders_agree_with_platformdirs(xdg: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "CLAUDE_GUARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    if xdg:
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert paths.state_dir() == platformdirs.user_state_dir(paths.APP)
    assert paths.config_file() == str(Path(platformdirs.user_config_dir(paths.APP)) / "config.toml")
    assert paths.log_dir() == platformdirs.user_log_dir(paths.APP)
