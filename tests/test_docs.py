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


def test_documented_options_are_the_commands_own() -> None:
    """Every `--option` a doc gives a `claude-guard` command is one that command takes, spelled as its help spells
    it first (README once said `metrics --textfile DIR` where the help says `--textfile-dir`)."""
    import re

    docs = [README, *(p.read_text() for p in (Path(__file__).resolve().parent.parent / "docs").glob("*.md"))]
    parser = cli.build_parser()
    wrong = []
    for text in docs:
        for command, rest in re.findall(r"`claude-guard (\w+)((?: [^`|]*)?)`", text):
            if command not in parser.commands:
                continue
            actions = parser.commands[command]._actions
            first = {o: a.option_strings[0] if not o.startswith("--") else
                     next(s for s in a.option_strings if s.startswith("--"))
                     for a in actions for o in a.option_strings}
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest.split(" -- ")[0]):
                if first.get(option) != option:
                    wrong.append(f"claude-guard {command} {option}")
    assert wrong == []
