"""The README documents every setting, every exit code and every subcommand."""

from __future__ import annotations

from pathlib import Path

from claude_guard import cli, config
from claude_guard.errors import ExitCode

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [key for key in config.KEYS if f"| `{key}` |" not in README]
    assert missing == []


def test_every_exit_code_is_documented() -> None:
    codes = {v for k, v in vars(ExitCode).items() if k.isupper()}
    missing = [code for code in codes if f"| {code} |" not in README]
    assert missing == []


def test_every_subcommand_is_documented() -> None:
    missing = [name for name in cli.COMMANDS if f"`claude-guard {name}" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    command = ci.strip().removeprefix("exec ").strip()
    assert f"\n{command}\n" in README
