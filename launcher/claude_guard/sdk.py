"""Guarded Claude Code for Python hosts: Agent SDK options, and a Popen for hosts that spawn the CLI themselves.

    guarded_options(options=None, **settings)  ClaudeAgentOptions whose every query()/ClaudeSDKClient launch
                                               goes through the guard (`cli_path` = the guard's entry point,
                                               the real CLI and the settings in `env`)
    guarded_command(args, **settings)          the argv that runs a Claude Code command line under the guard
    popen(args, **settings_and_popen_kwargs)   subprocess.Popen of that argv
    node_module()                              path of guard-spawn.mjs, the Node SDK's spawnClaudeCodeProcess

Settings are the launch-side keys of the config file (`max_sessions=2, on_cap="wait", wait_timeout=30, ...`);
what is not given comes from the user's config file and CLAUDE_GUARD_* variables as for any launch, except
`on_cap`, which defaults to "wait" here: a program that spawns an agent would rather queue for a slot than fail.

Hosts import this module at start-up, so it imports nothing beyond os and sys: the claude_agent_sdk package is
imported inside guarded_options, the config table only to list and check settings, and nothing of the sweep
(psutil, filelock) ever.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from typing import Any

    # An optional dependency (the `sdk` extra): type-checks as Any where it is not installed.
    from claude_agent_sdk import ClaudeAgentOptions  # type: ignore[import-not-found, unused-ignore]

    SETTINGS: tuple[str, ...]

__all__ = ["SETTINGS", "guarded_command", "guarded_env", "guarded_options", "node_module", "popen", "shim_entry"]

# SETTINGS (module attribute, made on first use so that importing this module loads nothing more): the
# settings a launch reads, config.LAUNCH_KEYS; the sweep's keys mean nothing here.


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "SETTINGS":
        return _settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _settings() -> tuple[str, ...]:
    from . import config

    return config.LAUNCH_KEYS


def _exec_flags() -> tuple[str, ...]:
    """Settings `claude-guard exec` takes as options with a value (`--strict` has none: see guarded_command);
    they stay on its command line instead of reaching claude's environment (and from there every claude that
    session's tools start)."""
    from . import config

    return tuple(k for k in config.EXEC_FLAGS if config.KEYS[k].parse is not config.parse_bool)
REAL_CLAUDE_VAR = "CLAUDE_GUARD_REAL_CLAUDE"
_SHIM_SCRIPT = "claude-guard-shim"
_CLI_SCRIPT = "claude-guard"
# The Python Agent SDK waits this long (seconds) for Claude Code to answer its first request, stretched by
# CLAUDE_CODE_STREAM_CLOSE_TIMEOUT (milliseconds) in the host's environment; a launch still queued for a slot
# then is killed with "Control request timeout: initialize". The guard's own refusal must come first.
_SDK_INITIALIZE_TIMEOUT = 60.0
_WAIT_MARGIN = 5.0


def _check(settings: Mapping[str, object]) -> dict[str, object]:
    """The settings with None values dropped; TypeError for a name that is not a setting, ValueError for a
    value that does not parse (the same parsers as the config file, so the launch cannot reject it later)."""
    valid = _settings()
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise TypeError(f"unknown claude-guard setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    from . import config

    out: dict[str, object] = {}
    for key, value in settings.items():
        if value is None:
            continue
        try:
            config.KEYS[key].parse(value)
        except config.BadValue as e:
            raise ValueError(f"claude-guard setting {key}={value!r}: {e}") from None
        out[key] = value
    return out


def _text(value: object) -> str:
    """A setting as a CLAUDE_GUARD_* variable or exec option spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _env_name(key: str) -> str:
    return "CLAUDE_GUARD_" + key.upper()


def _script(name: str) -> str | None:
    """A console script of this installation: beside the running interpreter (any interpreter of a venv lives
    in its bin folder), in this scheme's scripts folder, where the installer recorded it, or on PATH."""
    exe = name + (".exe" if os.name == "nt" else "")
    folders = [os.path.dirname(sys.executable)] if sys.executable else []
    import sysconfig

    for scheme in (None, f"{os.name}_user"):
        try:
            folders.append(sysconfig.get_path("scripts") if scheme is None else sysconfig.get_path("scripts", scheme))
        except KeyError:
            continue
    for folder in folders:
        path = os.path.join(folder, exe)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    try:  # the installer's record (pip's RECORD) holds the script's path relative to site-packages
        from importlib import metadata

        for file in metadata.distribution("claude-guard").files or ():
            if file.name == exe:
                path = os.path.abspath(str(file.locate()))
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    return path
    except Exception:
        pass  # no metadata (a bare checkout on sys.path): PATH is the last place to look
    import shutil

    return shutil.which(exe)


def shim_entry() -> str:
    """The guard's `claude` entry point (the console script `claude-guard-shim`) as an executable path."""
    path = _script(_SHIM_SCRIPT)
    if path is None:
        from .errors import ExitCode, GuardError

        raise GuardError(f"{_SHIM_SCRIPT} not found beside {sys.executable} nor on PATH; install claude-guard "
                         "into this environment (pip install claude-guard)", ExitCode.NOT_FOUND)
    return path


def _is_guard(path: str) -> bool:
    """`path` is one of ours (the entry point or an installed `claude` shim): never the real CLI."""
    from . import resolve

    if os.path.basename(path).startswith(_SHIM_SCRIPT):
        return True
    return resolve.is_shim(path)


def _bundled_cli() -> str | None:
    """The CLI the Python Agent SDK ships and runs by default (`claude_agent_sdk/_bundled/claude`)."""
    try:
        import claude_agent_sdk  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(claude_agent_sdk.__file__)), "_bundled",
                        "claude.exe" if os.name == "nt" else "claude")
    return path if os.path.isfile(path) else None


def _initialize_timeout() -> float:
    """How long the Python Agent SDK waits for the CLI's first answer (as its client computes it)."""
    try:
        ms = int(os.environ.get("CLAUDE_CODE_STREAM_CLOSE_TIMEOUT", "60000"))
    except ValueError:
        ms = 60000
    return max(ms / 1000.0, _SDK_INITIALIZE_TIMEOUT)


def guarded_options(options: ClaudeAgentOptions | None = None, **settings: Any) -> ClaudeAgentOptions:
    """A copy of `options` (default: a fresh ClaudeAgentOptions) whose launches go through the guard.

    `cli_path` becomes the guard's entry point; the real CLI goes to `env` as CLAUDE_GUARD_REAL_CLAUDE: the
    `real_claude` setting if given, else one already in `options.env`, else `options.cli_path` if the host
    set one, else the SDK's bundled CLI (what the SDK would have run), else the first real `claude` on PATH.
    Each setting goes to `env` as CLAUDE_GUARD_<KEY>. `on_cap` defaults to "wait", and `wait_timeout` then
    to a little less than the SDK waits for the CLI to start (60 s unless CLAUDE_CODE_STREAM_CLOSE_TIMEOUT
    says more), so a launch that gets no slot ends with the guard's reason rather than the SDK's timeout.

    Raises TypeError for an unknown setting (the message lists the valid ones), ValueError for a value the
    guard would reject, and GuardError when claude_agent_sdk is not installed or no real CLI or guard entry
    point is found.
    """
    import dataclasses

    try:
        from claude_agent_sdk import ClaudeAgentOptions  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        from .errors import ExitCode, GuardError

        raise GuardError("guarded_options needs the Claude Agent SDK, which is not installed in this Python "
                         f"({sys.executable}): pip install claude-agent-sdk (or install claude-guard with its sdk "
                         "extra: pip install '/path/to/claude-guard[sdk]'); without the SDK, guarded_command and "
                         "guarded_env give a command line to run", ExitCode.NOT_FOUND) from None

    checked = _check(settings)
    if options is None:
        options = ClaudeAgentOptions()
    env = dict(options.env)
    checked.setdefault("on_cap", "wait")
    if str(checked["on_cap"]).strip().lower() == "wait":
        limit = _initialize_timeout() - _WAIT_MARGIN
        if "wait_timeout" not in checked:
            checked["wait_timeout"] = limit
        else:
            from . import config

            asked = config.parse_duration(checked["wait_timeout"])
            if asked > limit:
                raise ValueError(
                    f"wait_timeout={checked['wait_timeout']!r} is longer than the Agent SDK waits for Claude "
                    f"Code to start ({limit + _WAIT_MARGIN:g}s): the SDK would give up first with \"Control "
                    f"request timeout: initialize\". Use wait_timeout <= {limit:g}, or raise "
                    "CLAUDE_CODE_STREAM_CLOSE_TIMEOUT (milliseconds) in the host's environment")
    entry = shim_entry()
    real = checked.pop("real_claude", None) or env.get(REAL_CLAUDE_VAR)
    if not real and options.cli_path is not None and not _is_guard(os.fspath(options.cli_path)):
        real = os.fspath(options.cli_path)
    if not real:
        real = _bundled_cli()
    if not real:
        from . import resolve

        real = resolve.find_real_claude("", os.environ.get("PATH"), entry)
    env[REAL_CLAUDE_VAR] = _text(real)
    for key, value in checked.items():
        env[_env_name(key)] = _text(value)
    return dataclasses.replace(options, cli_path=entry, env=env)


def guarded_command(args: Sequence[str | os.PathLike[str]], **settings: Any) -> list[str]:
    """`claude-guard exec [options] -- ARGS`: the argv that runs the Claude Code command line `args` (the
    native binary, `claude` on PATH, the npm `claude.exe`, `node .../cli.js`, the SDK's bundled CLI) under
    the guard. Settings as for guarded_options (`on_cap` defaults to "wait"); those `exec` takes as options
    go on its command line, the rest into CLAUDE_GUARD_* variables: use `guarded_env` for those, or `popen`,
    which does both. Raises TypeError/ValueError as guarded_options does."""
    checked = _check(settings)
    checked.setdefault("on_cap", "wait")
    command = [os.fspath(a) for a in args]
    if not command:
        raise ValueError("guarded_command: empty command line; expected e.g. ['claude', '-p', 'hi']")
    cli = _script(_CLI_SCRIPT)
    # An embedded interpreter's sys.executable may not be a Python at all; the console script never depends on it.
    head = [cli] if cli else [sys.executable, "-m", "claude_guard"]
    flags: list[str] = []
    for key in _exec_flags():
        if key in checked:
            flags += ["--" + key.replace("_", "-"), _text(checked[key])]
    if checked.get("strict") is True:
        flags.append("--strict")
    return [*head, "exec", *flags, "--", *command]


def guarded_env(env: Mapping[str, str] | None = None, **settings: Any) -> dict[str, str]:
    """`env` (default: os.environ) plus the CLAUDE_GUARD_* variables for the settings `exec` has no option
    for (real_claude, count_unguarded, state_dir, ...)."""
    checked = _check(settings)
    out = dict(os.environ if env is None else env)
    for key, value in checked.items():
        if key in _exec_flags() or (key == "strict" and value is True):
            continue
        out[_env_name(key)] = _text(value)
    return out


def popen(args: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen of the Claude Code command line `args` under the guard.

    Keyword arguments named after a setting (`max_sessions=2, on_cap="wait", ...`) go to the guard, every
    other one to subprocess.Popen (`stdin=PIPE, env=..., cwd=...`). The process is the guard until it is
    admitted and then, by exec, the real CLI itself (same PID): signal and wait on it as on the CLI. Refused,
    it exits 75 after one `claude-guard: refused: ...` line on stderr, and writes nothing on stdout.
    """
    import subprocess

    settings = {k: kwargs.pop(k) for k in list(kwargs) if k in _settings()}
    command = guarded_command(args, **settings)
    kwargs["env"] = guarded_env(kwargs.get("env"), **settings)
    return subprocess.Popen(command, **kwargs)


def node_module() -> str:
    """The path of `guard-spawn.mjs`, the spawnClaudeCodeProcess for Node hosts of the Agent SDK (shipped in
    this package; import it by this path or copy it)."""
    from importlib import resources

    return str(resources.files("claude_guard.shims").joinpath("guard-spawn.mjs"))
