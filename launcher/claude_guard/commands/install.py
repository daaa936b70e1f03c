"""`claude-guard install` / the shim file: write the `claude` shim ahead of the real claude on PATH.

A foreign `claude` already in the folder (the native installer puts one in ~/.local/bin) is moved aside
to `claude.pre-claude-guard`; the shim's resolver finds it there, so PATH order is kept, and
`claude-guard uninstall` puts it back.
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


def render() -> bytes:
    """The POSIX shim: the template with this interpreter and the marker baked in."""
    from importlib import resources

    template = resources.files("claude_guard.shims").joinpath("claude.tmpl").read_text(encoding="utf-8")
    return (template.replace("{python}", sys.executable).replace("{marker}", resolve.MARKER.decode())
            .replace("{sys_path}", repr(shim_sys_path()))).encode()


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
    content = _windows_launcher() if os.name == "nt" else render()
    files.atomic_write(target, content, mode=0o755)
    resolve.forget(target)
    _compile_package()
    return target, moved


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
    folder = os.path.abspath(os.path.expanduser(args.dir or default_dir()))
    target, moved = write_shim(folder)
    output.data(f"installed the claude shim: {target}")
    if moved:
        output.data(f"moved the claude that was there to {moved} (uninstall puts it back)")
    advice = path_advice(folder)
    if advice:
        output.data(f"{folder} does not come before the real claude on PATH; to fix it:\n  {advice}")
    if args.timer:
        from .. import config, timer

        interval = config.parse_duration(args.interval)
        for line in timer.install(interval):
            output.data(line)
    return ExitCode.OK
