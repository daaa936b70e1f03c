"""Claude Code's native installer: ~/.local/bin/claude is a symlink into ~/.local/share/claude/versions/<version>
that each update re-points (adding the new version, removing the old). Its layout, update and cleanup steps are
simulated on real files; after each step `claude` through the shim runs the current version, or doctor says exactly
what happened. The last test puts the real CLI in that layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import realclaude
from claude_guard.commands.install import render
from installkit import user_env


class Native:
    """A user whose Claude Code came from the native installer."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.bin = self.home / ".local" / "bin"
        self.versions = self.home / ".local" / "share" / "claude" / "versions"
        self.own = self.home / ".local" / "share" / "claude-guard" / "bin"
        self.bin.mkdir(parents=True)
        self.versions.mkdir(parents=True)
        self.link = self.bin / "claude"
        # the user's profile after following install's advice: the shim's own folder first, then ~/.local/bin
        self.env = {**os.environ, **user_env(self.home, [self.own, self.bin])}

    def add_version(self, version: str, binary: Path | None = None) -> Path:
        self.versions.mkdir(parents=True, exist_ok=True)
        path = self.versions / version
        if binary is None:
            path.write_text(f'#!/bin/sh\necho "{version} (Claude Code) $*"\n')
            path.chmod(0o755)
        else:
            path.symlink_to(binary)
        return path

    def point_at(self, version: str) -> None:
        """What the installer and its updater do: a new link, renamed over the old one (atomic)."""
        tmp = self.bin / ".claude.new"
        tmp.symlink_to(self.versions / version)
        os.replace(tmp, self.link)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "claude_guard", *args], env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert not check or r.returncode == 0, r.stdout + r.stderr
        return r

    def claude(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["claude", *args], env=self.env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def doctor(self) -> dict[str, dict[str, object]]:
        r = self.cli("doctor", "--json", check=False)
        return {c["check"]: c for c in json.loads(r.stdout)}


def _runs(user: Native, version: str) -> None:
    for args in (["--version"], ["-p", "hi"]):  # a pass-through and a guarded session
        r = user.claude(*args)
        assert r.returncode == 0 and r.stdout.startswith(f"{version} (Claude Code)"), r.stdout + r.stderr
    log = user.home / ".local" / "state" / "claude-guard" / "guard.log"
    assert log.exists()  # the session went through the guard


def test_install_coexists_with_the_native_installer_through_update_and_cleanup(tmp_path: Path) -> None:
    user = Native(tmp_path)
    user.add_version("2.1.330")
    user.point_at("2.1.330")
    r = user.cli("install")  # the default folder, ~/.local/bin, is where the installer's link is
    assert "native-installer link (now version 2.1.330)" in r.stdout and str(user.own) in r.stdout
    assert os.readlink(user.link) == str(user.versions / "2.1.330")  # untouched
    assert not (user.bin / "claude.pre-claude-guard").exists()
    assert (user.own / "claude").exists() and (user.own / "claude-guard").exists()
    _runs(user, "2.1.330")
    native = user.doctor()["native installer"]
    assert native["ok"] and "version 2.1.330" in str(native["detail"]) and "updates are followed" in str(
        native["detail"])

    # the updater: a new version, the link re-pointed, the old version removed
    user.add_version("2.1.332")
    user.point_at("2.1.332")
    _runs(user, "2.1.332")
    (user.versions / "2.1.330").unlink()
    _runs(user, "2.1.332")
    found = user.doctor()
    assert found["native installer"]["ok"] and "version 2.1.332" in str(found["native installer"]["detail"])
    assert found["shim"]["ok"] and "2.1.332" in str(found["real claude"]["detail"])

    # a broken update: the link points at a version that is not there
    user.point_at("2.1.333")
    native = user.doctor()["native installer"]
    assert not native["ok"] and "points at version 2.1.333, which is gone" in str(native["detail"])

    # cleanup (uninstalling Claude Code): link and versions gone; claude says so in one line, doctor names it
    user.link.unlink()
    shutil.rmtree(user.versions.parent)
    r = user.claude("--version")
    assert r.returncode == 127 and r.stdout == "" and len(r.stderr.splitlines()) == 1
    found = user.doctor()
    assert "native installer" not in found
    assert not found["real claude"]["ok"] and "not found" in str(found["real claude"]["detail"])

    # uninstall from the default folder finds the shim in its own folder
    user.add_version("2.1.340")
    user.point_at("2.1.340")
    r = user.cli("uninstall")
    assert "removed the claude shim" in r.stdout and not (user.own / "claude").exists()
    assert os.readlink(user.link) == str(user.versions / "2.1.340")


def _old_install(user: Native) -> None:
    """What claude-guard did before: the installer's link moved aside, the shim in its place."""
    os.rename(user.link, user.bin / "claude.pre-claude-guard")
    user.link.write_bytes(render())
    user.link.chmod(0o755)


def test_an_older_install_that_pinned_a_version_is_reported_and_repaired(tmp_path: Path) -> None:
    user = Native(tmp_path)
    user.add_version("2.1.330")
    user.point_at("2.1.330")
    _old_install(user)
    user.env["PATH"] = os.pathsep.join([str(user.bin), "/usr/bin", "/bin"])
    native = user.doctor()["native installer"]
    assert not native["ok"] and "pins version 2.1.330" in str(native["detail"])
    assert "claude-guard install" in str(native["fix"])
    # install repairs it: the link goes back, the shim goes to its own folder
    r = user.cli("install")
    assert "moved Claude Code's native-installer link back" in r.stdout
    assert os.readlink(user.link) == str(user.versions / "2.1.330")
    assert not (user.bin / "claude.pre-claude-guard").exists()
    assert f'export PATH="{user.own}:$PATH"' in r.stdout  # the own folder is not on this PATH yet
    user.env["PATH"] = os.pathsep.join([str(user.own), str(user.bin), "/usr/bin", "/bin"])
    _runs(user, "2.1.330")


def test_an_update_that_replaced_an_older_shim_is_reported_and_repaired(tmp_path: Path) -> None:
    user = Native(tmp_path)
    user.add_version("2.1.330")
    user.point_at("2.1.330")
    _old_install(user)
    user.env["PATH"] = os.pathsep.join([str(user.bin), "/usr/bin", "/bin"])
    # the updater writes its new link over the shim and removes the pinned version
    user.add_version("2.1.332")
    user.point_at("2.1.332")
    (user.versions / "2.1.330").unlink()
    found = user.doctor()
    assert not found["native installer"]["ok"]
    assert "update replaced the claude-guard shim" in str(found["native installer"]["detail"])
    assert "version 2.1.332" in str(found["native installer"]["detail"])
    assert not found["shim"]["ok"]
    r = user.cli("install")
    assert "stale copy of the native installer's link (version 2.1.330)" in r.stdout
    assert not os.path.lexists(user.bin / "claude.pre-claude-guard")
    user.env["PATH"] = os.pathsep.join([str(user.own), str(user.bin), "/usr/bin", "/bin"])
    _runs(user, "2.1.332")
    assert user.doctor()["native installer"]["ok"]


def test_a_plain_claude_in_the_folder_is_still_moved_aside(tmp_path: Path) -> None:
    """Only the installer's versions link sends the shim elsewhere; any other claude is moved aside as before."""
    user = Native(tmp_path)
    other = tmp_path / "elsewhere" / "claude"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\necho other\n")
    other.chmod(0o755)
    user.link.symlink_to(other)
    r = user.cli("install")
    assert "moved the claude that was there" in r.stdout and not (user.own / "claude").exists()


def test_the_real_cli_in_the_native_layout_runs_through_the_shim_across_an_update(tmp_path: Path) -> None:
    real = realclaude.require_real_claude()
    user = Native(tmp_path)
    user.env.update({"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                     "ANTHROPIC_API_KEY": realclaude.FAKE_API_KEY})
    user.add_version("2.1.329")  # a stand-in older version, replaced by the real one on update
    user.point_at("2.1.329")
    user.cli("install")
    r = user.claude("--version")
    assert r.stdout.startswith("2.1.329 (Claude Code)")
    user.add_version(realclaude.EXPECTED_VERSION, Path(real))
    user.point_at(realclaude.EXPECTED_VERSION)
    (user.versions / "2.1.329").unlink()
    r = user.claude("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"{realclaude.EXPECTED_VERSION} (Claude Code)", r.stderr
    found = user.doctor()
    assert found["native installer"]["ok"] and realclaude.EXPECTED_VERSION in str(found["real claude"]["detail"])
