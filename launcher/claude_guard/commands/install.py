"""`claude-guard install` / the shim file: write the `claude` shim ahead of the real claude on PATH, and a
`claude-guard` command beside it (so the one PATH line that makes the shim work also finds the tool).

A foreign `claude` already in the folder is moved aside to `claude.pre-claude-guard`; the shim's resolver
finds it there, so PATH order is kept, and `claude-guard uninstall` puts it back. A foreign `claude-guard`
there (pipx's or uv's own link) is left alone.

Both files bake in the interpreter of the environment running `install` (a venv, pipx's or uv's tool
environment): `pipx install <checkout>` then `claude-guard install` gives a shim that does not depend on the
checkout.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import files, output, resolve
from ..errors import ExitCode, GuardError

BACKUP_SUFFIX = resolve.BACKUP_SUFFIX


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("install", help="install the `claude` shim (and optionally the reap timer)",
                       description="Write the `claude` shim into DIR, ahead of the real claude on PATH.")
    p.add_argument("--dir", default=None, help="folder for the shim (default: ~/.local/bin)")
    p.add_argument("--timer", action="store_true",
                   help="also install a timer that runs `claude-guard reap` (systemd user timer, cron or launchd)")
    p.add_argument("--interval", default="5m", help="with --timer: how often (default 5m)")
    p.set_defaults(func=run)


def default_dir() -> str:
    if os.name == "nt":
        import platformdirs

        return os.path.join(platformdirs.user_data_dir("claude-guard"), "bin")
    return os.path.expanduser("~/.local/bin")


def shim_path(folder: str) -> str:
    return os.path.join(folder, "claude.exe" if os.name == "nt" else "claude")


COMMAND = "claude-guard"


def render(template_name: str = "claude.tmpl") -> bytes:
    """A POSIX shim file: the template with this interpreter and the marker baked in."""
    import shlex
    from importlib import resources

    template = resources.files("claude_guard.shims").joinpath(template_name).read_text(encoding="utf-8")
    return (template.replace("{python_sh}", shlex.quote(sys.executable)).replace("{python}", sys.executable)
            .replace("{marker}", resolve.MARKER.decode()).replace("{sys_path}", repr(shim_sys_path()))).encode()


def shim_sys_path() -> list[str]:
    """Where the shim (run with -I -S) finds claude_guard and its dependencies: the package's parent
    folder (site-packages, or launcher/ in an editable checkout), then this interpreter's site-packages."""
    import site

    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = [package_parent]
    for folder in site.getsitepackages():
        if folder not in out:
            out.append(folder)
    return out


def source_checkout() -> str | None:
    """The claude-guard source checkout the environment being baked in lives in (its venv inside the checkout,
    or an editable install of it), or None for an installed tool (pipx, uv, a wheel in any venv)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for start in (sys.prefix, package):
        folder = os.path.abspath(start)
        while True:
            if (os.path.isfile(os.path.join(folder, "pyproject.toml"))
                    and os.path.isdir(os.path.join(folder, "launcher", "claude_guard"))):
                return folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return None


def baked_python(path: str) -> str | None:
    """The interpreter a POSIX shim file runs: its `py=` line (the /bin/sh front) or its `#!` line (older
    shims); None when it names none."""
    import shlex

    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in head:
        if line.startswith("py="):
            try:
                words = shlex.split(line[3:])
            except ValueError:
                return None
            return words[0] if words else None
    if head and head[0].startswith("#!") and not head[0].startswith("#!/bin/sh"):
        words = head[0][2:].split()
        return words[0] if words else None
    return None


def _windows_launcher() -> bytes:
    """On Windows the shim must be an .exe (a .cmd would put cmd.exe between caller and guard): pip's
    console-script launcher for `claude-guard-shim`, which runs claude_guard.shim:main."""
    scripts = os.path.dirname(sys.executable)
    exe = os.path.join(scripts, "claude-guard-shim.exe")
    try:
        with open(exe, "rb") as f:
            return f.read()
    except OSError:
        raise GuardError(f"{exe} not found; reinstall claude-guard with pip so its launcher exists",
                         ExitCode.FAILURE) from None


# Claude Code's native installer keeps ~/.local/bin/claude as a symlink to ~/.local/share/claude/versions/<version>
# and re-points it at every update, removing old versions. A shim put in its place is overwritten by the next
# update, and the link moved aside pins one version that a later update deletes. So where that link is, the shim
# goes in a folder of its own ahead of it on PATH, and runs whatever the link points at.


def native_version(path: str) -> str | None:
    """The version `path` points at when it is the native installer's link (a symlink into
    .../claude/versions/<version>, whether that version still exists or not); else None."""
    try:
        target = os.readlink(path)
    except (OSError, ValueError):
        return None
    target = os.path.normpath(os.path.join(os.path.dirname(path), target))
    versions = os.path.dirname(target)
    if os.path.basename(versions) == "versions" and os.path.basename(os.path.dirname(versions)) == "claude":
        return os.path.basename(target)
    return None


def own_dir() -> str:
    """The shim's folder of its own, where the native installer keeps its link (XDG data home, as the installer's
    own ~/.local/share/claude)."""
    data = os.environ.get("XDG_DATA_HOME", "").strip() or os.path.expanduser("~/.local/share")
    return os.path.join(data, "claude-guard", "bin")


def coexist(folder: str) -> tuple[str, list[str]]:
    """(folder the shim goes in, lines to print): `folder` itself, or `own_dir()` when `folder` holds the native
    installer's link. A link an older claude-guard moved aside is put back (or dropped when the updater already
    wrote a new one over that shim)."""
    if os.name == "nt":
        return folder, []
    link = shim_path(folder)
    backup = link + BACKUP_SUFFIX
    lines: list[str] = []
    pinned = native_version(backup)
    if pinned is not None:
        if os.path.lexists(link) and resolve.is_shim(link):
            os.replace(backup, link)
            resolve.forget(link)
            lines.append(f"moved Claude Code's native-installer link back from {backup} to {link} (an older "
                         f"claude-guard had moved it aside, pinning version {pinned})")
        elif native_version(link) is not None:
            os.unlink(backup)
            lines.append(f"removed {backup}: a stale copy of the native installer's link (version {pinned}) left by "
                         "an older claude-guard; the installer's update had replaced that shim")
    version = native_version(link)
    if version is None:
        return folder, lines
    own = own_dir()
    lines.append(f"{link} is Claude Code's native-installer link (now version {version}), which its updater rewrites: "
                 f"the shim goes in a folder of its own, {own}, ahead of {folder} on PATH, and runs whatever version "
                 "that link points at")
    return own, lines


def write_shim(folder: str) -> tuple[str, str | None]:
    """Write the shim into `folder`; returns (shim path, path the foreign claude was moved to or None)."""
    os.makedirs(folder, exist_ok=True)
    target = shim_path(folder)
    moved: str | None = None
    if os.path.lexists(target) and not resolve.is_shim(target):
        backup = target + BACKUP_SUFFIX
        if os.path.lexists(backup):
            raise GuardError(f"{target} is not a claude-guard shim and {backup} already exists; move one of "
                             "them away, then run install again", ExitCode.FAILURE)
        os.rename(target, backup)
        moved = backup
    _write_executable(target, _windows_launcher() if os.name == "nt" else render())
    resolve.forget(target)
    _compile_package()
    return target, moved


def write_command(folder: str) -> tuple[str, bool]:
    """Write the `claude-guard` command beside the shim (POSIX); returns (path, written). A `claude-guard`
    that is not ours (pipx's or uv's link to its own copy) is left alone: it is the user's choice."""
    target = os.path.join(folder, COMMAND)
    if os.path.lexists(target) and not resolve.is_shim(target):
        return target, False
    _write_executable(target, render("claude-guard.tmpl"))
    return target, True


def _write_executable(target: str, content: bytes) -> None:
    files.atomic_write(target, content, mode=0o755)


def _compile_package() -> None:
    """Byte-compile the package: the shim runs on every launch and must not recompile each time (an
    editable install, or PYTHONDONTWRITEBYTECODE, would otherwise leave no .pyc)."""
    import compileall

    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    compileall.compile_dir(folder, quiet=1)


def path_advice(folder: str, path_env: str | None = None) -> str | None:
    """None when `folder` comes before every real claude on PATH; else the line to add to a profile.

    POSIX only: on Windows windows/install.ps1 puts the folder first on the user's PATH itself."""
    if os.name == "nt":
        return None
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    entries = [os.path.realpath(p or ".") for p in path_env.split(os.pathsep)]
    here = os.path.realpath(folder)
    position = entries.index(here) if here in entries else None
    real_at = None
    for i, entry in enumerate(entries):
        candidate = os.path.join(entry, "claude")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and not resolve.is_shim(candidate):
            real_at = i
            break
    if position is not None and (real_at is None or position < real_at):
        return None
    shell = os.path.basename(os.environ.get("SHELL", "sh"))
    if shell == "fish":
        return f"fish_add_path --prepend {folder}    # add to ~/.config/fish/config.fish"
    profile = {"zsh": "~/.zshrc", "bash": "~/.bashrc"}.get(shell, "~/.profile")
    return f'export PATH="{folder}:$PATH"    # add this line to {profile}, then open a new shell'


def run(args: argparse.Namespace) -> int:
    folder, native = coexist(os.path.abspath(os.path.expanduser(args.dir or default_dir())))
    for line in native:
        output.data(line)
    target, moved = write_shim(folder)
    output.data(f"installed the claude shim: {target} (runs {sys.executable})")
    checkout = source_checkout()
    if checkout:
        output.message(f"note: the shim runs claude-guard from the source checkout {checkout}; moving or deleting it "
                       "leaves claude unguarded (it still starts, with a warning). For an install of its own: "
                       f"pipx install {checkout} (or uv tool install {checkout}), then claude-guard install")
    if moved:
        output.data(f"moved the claude that was there to {moved} (uninstall puts it back)")
    if os.name != "nt":
        command, written = write_command(folder)
        if written:
            output.data(f"installed the claude-guard command: {command}")
        else:
            output.data(f"left {command} alone: it is not ours (pipx's or uv's own, or yours)")
    advice = path_advice(folder)
    if advice:
        output.data(f"{folder} does not come before the real claude on PATH; to fix it:\n  {advice}")
    if args.timer:
        from .. import config, timer

        interval = config.parse_duration(args.interval)
        for line in timer.install(interval):
            output.data(line)
    return ExitCode.OK
