"""What every benchmark shares: the install it measures, the user's world around it, and interleaved timing.

The figures are of claude-guard as users install it (pipx, uv tool, `pip install claude-guard` into a venv):
a fresh, non-editable venv built from this checkout, whose interpreter is also the reference (`python -c pass`
of that same venv). The dev venv is no reference: its editable install runs a `.pth` finder on every start,
which roughly doubles a bare `python -c pass` there. And a user has a config file: with one, the shim reads and
parses TOML on every launch, so every benchmark writes the same realistic one (CONFIG) into its throwaway home.

Imported by scripts/bench*, which put this folder on sys.path; not part of the package.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A config file as a user writes one: five keys, comments, a string, a duration, a size and a list. Every
# benchmark writes it (max_sessions is set per benchmark; a CLAUDE_GUARD_* variable overrides it where a
# benchmark needs another cap, as a user's would).
CONFIG = """\
# claude-guard settings (see `claude-guard config`)
max_sessions = {max_sessions}
on_duplicate = "refuse"
idle_after = "45m"
memory_floor = "2GiB"
protect = ["release-notes", "/srv/important"]
"""
CONFIG_KEYS = 5

def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


def build_venv(dest: Path, *, log: Callable[[str], None] | None = None) -> Path:
    """A fresh venv at `dest` with claude-guard installed from a wheel of this checkout, not editable and without
    pip (as pipx and uv make them), through the same tests/installkit.py the install tests use. Returns its
    python."""
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    sys.path.insert(0, str(REPO / "tests"))
    from installkit import build_wheelhouse, make_venv

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cg-bench-wheels-") as house:
        python = make_venv(dest, build_wheelhouse(Path(house)))
    check_venv(python)
    say(f"benchkit: built a non-editable venv at {dest} in {time.monotonic() - began:.0f} s")
    return python


def check_venv(python: Path) -> str:
    """The folder claude_guard is imported from in `python`'s venv; refuses an editable (or foreign) install,
    whose figures would not be a user's."""
    if not python.exists():
        raise SystemExit(f"benchkit: {python} not found; give --venv a venv folder with claude-guard installed")
    r = subprocess.run([str(python), "-c", "import os, sys, claude_guard; "
                        "print(os.path.dirname(claude_guard.__file__)); print(sys.prefix)"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"benchkit: claude-guard is not importable from {python}: {r.stderr.strip()[-300:]}")
    package, prefix = r.stdout.split("\n")[:2]
    if not package.startswith(prefix + os.sep) or "site-packages" not in package:
        raise SystemExit(f"benchkit: {python} imports claude_guard from {package}, outside its venv's "
                         "site-packages (an editable install?); benchmarks measure a normal install: "
                         "leave out --venv to have one built")
    return package


def venv_python(given: str | None, tmp: Path) -> Path:
    """The venv to measure: `given` (a venv folder) checked, else a fresh one built under `tmp`."""
    if given:
        python = Path(given) / "bin" / "python"
        check_venv(python)
        return python
    return build_venv(tmp / "venv")


def user_env(home: Path, path: Sequence[Path | str], max_sessions: int) -> dict[str, str]:
    """A throwaway user: HOME, XDG folders, Claude's folder, PATH, and the config file written into the
    config folder (where `claude-guard config` looks for it)."""
    env = {"HOME": str(home), "PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]), "LANG": "C.UTF-8",
           "NO_COLOR": "1", "XDG_STATE_HOME": str(home / ".local" / "state"),
           "XDG_CONFIG_HOME": str(home / ".config"), "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    config = home / ".config" / "claude-guard" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(max_sessions=max_sessions), encoding="utf-8")
    return env


def install_shim(python: Path, folder: Path, env: Mapping[str, str]) -> Path:
    """`claude-guard install --dir folder` with the venv's own console script, as a user runs it."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python.parent / "claude-guard"), "install", "--dir", str(folder)], env=dict(env),
                   check=True, stdout=subprocess.DEVNULL)
    return folder / "claude"


def timed(cmd: Sequence[str], env: Mapping[str, str], cwd: str | None = None, ok: Sequence[int] = (0,)) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(list(cmd), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    if r.returncode not in ok:
        raise SystemExit(f"benchmark command failed ({r.returncode}): {list(cmd)}: {r.stderr.decode()[-400:]}")
    return elapsed


def alternate(commands: Mapping[str, Sequence[str]], env: Mapping[str, str], runs: int, *, warm: int = 3,
              cwd: str | None = None) -> tuple[dict[str, float], str]:
    """Each command `runs` times, in turn (A, B, B, A, A, B, ...) so the shared machine's load hits all alike;
    after `warm` unmeasured rounds (page cache, .pyc). Medians by name, and the load average while it ran."""
    for _ in range(warm):
        for cmd in commands.values():
            timed(cmd, env, cwd)
    load = [loadavg()]
    times: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands)
    for i in range(runs):
        # A B, then B A: a load that rises or falls through a round favours neither side.
        for name in order if i % 2 == 0 else reversed(order):
            times[name].append(timed(commands[name], env, cwd))
    load.append(loadavg())
    return {name: statistics.median(values) for name, values in times.items()}, load_text(load)


def load_text(samples: Sequence[str]) -> str:
    """`a -> b`: the 1-minute load average when a measurement began and ended."""
    return " -> ".join(s.split()[0] for s in samples)


def children(pid: int) -> list[int]:
    """Direct children of `pid` (read before ending it, to end them by PID too)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(k) for k in f.read().split()]
    except OSError:
        return []


def figure(name: str, ours: float, ref: float, target: float | None, detail: str, load: str,
           **extra: object) -> dict[str, object]:
    """One figure as scripts/bench reads it (times in seconds)."""
    return {"name": name, "a_s": ours, "b_s": ref, "ratio": ours / ref, "target": target, "detail": detail,
            "load": load, **extra}


def print_figures(figures: Sequence[Mapping[str, object]]) -> None:
    for r in figures:
        target = r["target"]
        ratio = float(r["ratio"])  # type: ignore[arg-type]
        verdict = "" if target is None else (f" (meets target {target})" if ratio <= float(target)  # type: ignore
                                             else f" (MISSES target {target})")
        print(f"{r['name']}: {float(r['a_s']) * 1000:.1f} ms vs {float(r['b_s']) * 1000:.1f} ms "  # type: ignore
              f"= ratio {ratio:.3f}{verdict}; load {r.get('load', '?')}; {r['detail']}")
