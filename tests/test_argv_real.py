"""What Claude Code's arguments mean, checked against the real CLI rather than assumed.

- The option table in claude_guard.argv against `claude --help` (claude_guard.drift names each difference): the
  pinned copy in tests/fixtures/realclaude/ always; the installed CLI (or CLAUDE_GUARD_TEST_REAL_CLAUDE) when there
  is one, whatever its version; `claude-guard doctor` reports the same.
- Which options' empty value means something: each verdict comes from the Messages request the CLI sends to
  a FakeAnthropic for `-p hi`, so `argv.EMPTY_MEANINGFUL` is backed by tests that fail if the CLI changes.
- `claude -p doctor` is a prompt, `claude --model x doctor` the doctor command.
"""

from __future__ import annotations

import json
import mmap
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from claude_guard import argv, drift
from realclaude import (
    EXPECTED_VERSION,
    FakeAnthropic,
    offline_env,
    require_real_claude,
    run_print,
    system_blocks,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realclaude"
PINNED_HELP = FIXTURES / f"help-{EXPECTED_VERSION}.txt"
KIND_NAMES = {
    argv.FLAG: "flag",
    argv.REQUIRED: "<required>",
    argv.OPTIONAL: "[optional]",
    argv.VARIADIC: "<variadic...>",
}
REPLY = "Reply from the fake API."
# A model only the settings file names: a request for it proves the settings were loaded.
SETTINGS_MODEL = "claude-guard-settings-model"

# ------------------------------------------------------------------------------------------------------------
# The option table against --help


def parse_help(text: str) -> tuple[dict[str, int], set[str]]:
    found = drift.Help(text)
    assert found.unparsed == []
    return found.options, found.commands


def test_help_parser_reads_every_entry_form() -> None:
    options, commands = parse_help(PINNED_HELP.read_text())
    assert options["-p"] == options["--print"] == argv.FLAG
    assert options["--model"] == argv.REQUIRED
    assert options["-r"] == options["--resume"] == argv.OPTIONAL
    assert options["--cloud"] == argv.OPTIONAL  # `[description|session_id|url]`
    assert options["--tools"] == options["--allowed-tools"] == options["--allowedTools"] == argv.VARIADIC
    # Names too long for the column put their description on the next line.
    assert options["--exclude-dynamic-system-prompt-sections"] == argv.FLAG
    assert options["--remote-control-session-name-prefix"] == argv.REQUIRED
    # Text inside descriptions that looks like an option is not one.
    assert "--system-prompt[-file]" not in options
    assert len(options) > 70
    assert {"doctor", "plugin", "plugins", "stop", "kill", "update", "upgrade"} <= commands
    assert "prompt" not in commands  # the Arguments section


def test_table_matches_the_pinned_help() -> None:
    assert drift.differences(PINNED_HELP.read_text()) == []


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_drift_names_each_difference() -> None:
    pinned = PINNED_HELP.read_text()
    # A new option that takes a value: the shim would not repair it.
    added = _edit(pinned, "  --verbose  ", "  --frobnicate <level>                  Frob level\n  --verbose  ")
    assert drift.differences(added) == [
        "new option --frobnicate (takes a value) is not in the table: passed through, never repaired"
    ]
    # One removed (both names of an aliased option), and one that changed kind.
    removed = _edit(pinned, "  -v, --version ", "  --no-such-line ")
    assert "--version is gone from --help; the table still has it" in drift.differences(removed)
    assert "-v is gone from --help; the table still has it" in drift.differences(removed)
    changed = _edit(pinned, "  --model <model>  ", "  --model [model]  ")
    assert drift.differences(changed) == ["--model takes an optional value now; the table says a value"]
    # An empty value that now means something, by its help (across the description's continuation lines).
    effort = re.search(r"^  --effort <level> .*$", pinned, re.MULTILINE)
    assert effort
    meaningful = _edit(pinned, effort.group(0), effort.group(0) + "\n" + " " * 40 + '"" for the model default')
    (problem,) = drift.differences(meaningful)
    assert problem.startswith("--effort: its help gives the empty value a meaning (")
    # A new command (it would count as a session) and a vanished one.
    commands = _edit(pinned, "  doctor ", "  frob ")
    commands = _edit(commands, "Commands:\n", "Commands:\n  doctor   Check\n  newcmd  New\n")
    assert drift.differences(commands) == ["new command 'frob' is not in the table (it would count as a session)",
                                           "new command 'newcmd' is not in the table (it would count as a session)"]
    assert drift.differences("Usage: something else\n") == [
        "no options found in the --help output (not Claude Code's help?)"
    ]


@pytest.fixture(scope="module")
def claude() -> str:
    return require_real_claude()


@pytest.fixture(scope="module")
def installed_version(claude: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    env = offline_env(tmp_path_factory.mktemp("version-home"), "http://127.0.0.1:9")
    result = run_print(["--version"], env, tmp_path_factory.getbasetemp(), timeout=120, command=[claude])
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0] if result.stdout.split() else result.stdout


@pytest.fixture(scope="module")
def installed_help(claude: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    env = offline_env(tmp_path_factory.mktemp("help-home"), "http://127.0.0.1:9")
    result = run_print(["--help"], env, tmp_path_factory.getbasetemp(), timeout=120, command=[claude])
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.realclaude
def test_table_matches_the_installed_help(installed_help: str, installed_version: str) -> None:
    # A fact about the table, not the version string: a newer CLI with the same options passes.
    problems = drift.differences(installed_help)
    assert problems == [], f"Claude Code {installed_version} --help disagrees with argv.py:\n" + "\n".join(
        problems
    )


def _doctor_option_check(claude: str, tmp: Path) -> dict[str, Any]:
    env = offline_env(tmp / "home", "http://127.0.0.1:9")
    env["CLAUDE_GUARD_REAL_CLAUDE"] = claude
    result = subprocess.run([sys.executable, "-m", "claude_guard", "doctor", "--json"], env=env, cwd=tmp,
                            capture_output=True, text=True, timeout=120, check=False)
    (check,) = [c for c in json.loads(result.stdout) if c["check"] == "option table"]
    return dict(check)


@pytest.mark.realclaude
def test_doctor_reports_that_the_option_table_matches(claude: str, tmp_path: Path) -> None:
    check = _doctor_option_check(claude, tmp_path)
    assert check["ok"] is True
    assert check["detail"] == f"option table matches {claude} --help"


def test_doctor_names_the_differences(tmp_path: Path) -> None:
    # A CLI whose help gained an option with a value and lost --ide (a stand-in: only its --help matters here).
    help_text = _edit(PINNED_HELP.read_text(), "  --ide  ", "  --frobnicate <level>  Frob\n  --idx  ")
    (tmp_path / "help.txt").write_text(help_text)
    claude = tmp_path / "claude"
    claude.write_text(f"#!/bin/sh\ncat {tmp_path / 'help.txt'}\n")
    claude.chmod(0o755)
    check = _doctor_option_check(str(claude), tmp_path)
    assert check["ok"] is False
    assert "new option --frobnicate (takes a value) is not in the table" in check["detail"]
    assert "--ide is gone from --help" in check["detail"]
    assert "new option --idx (a flag)" in check["detail"]


@pytest.mark.realclaude
def test_pinned_help_is_what_the_pinned_version_prints(installed_help: str, installed_version: str) -> None:
    if installed_version != EXPECTED_VERSION:
        pytest.skip(f"installed {installed_version}, pinned help is of {EXPECTED_VERSION}")
    assert installed_help == PINNED_HELP.read_text()


@pytest.mark.realclaude
def test_hidden_options_in_the_table_are_defined_by_the_cli(claude: str, installed_help: str) -> None:
    """Options the table has beyond --help (those the Agent SDKs pass) are real options of this CLI, of the
    same kind: the CLI's bundled JavaScript defines each as a string like `"--max-turns <turns>"`."""
    listed, _ = parse_help(installed_help)
    hidden = sorted(set(argv.OPTIONS) - set(listed))
    assert set(hidden) == argv.HIDDEN  # what the table says is hidden is exactly what --help leaves out
    path = Path(claude).resolve()
    if path.stat().st_size < 1_000_000:
        pytest.skip(f"{claude} is not the CLI's bundle (a wrapper script?): its option strings are elsewhere")
    problems = []
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for name in hidden:
            kinds = _defined_kinds(data, name)
            if not kinds:
                problems.append(f"{name}: no definition found in {path}")
            elif argv.OPTIONS[name] not in kinds:
                found = ", ".join(sorted(KIND_NAMES[k] for k in kinds))
                problems.append(f"{name}: {KIND_NAMES[argv.OPTIONS[name]]} in the table, defined as {found}")
    assert problems == []


def _defined_kinds(data: mmap.mmap, name: str) -> set[int]:
    """The kinds of the option definitions for `name` in the CLI's bundle: `"--x <v>"`, `"-s, --x [v]"`."""
    kinds: set[int] = set()
    for prefix in (b'"', b", "):
        for opener in (b" <", b" ["):
            needle = prefix + name.encode() + opener
            at = data.find(needle)
            while at != -1:
                end = data.find(b'"', at + len(needle))
                spec = data[at + len(prefix) + len(name) + 1 : end].decode("utf-8", "replace")
                if 0 < len(spec) < 80 and re.fullmatch(r"[<\[][^<>\[\]\"]*[>\]]", spec):
                    kinds.add(drift.value_kind(spec))
                at = data.find(needle, at + 1)
    if not kinds and data.find(b'"' + name.encode() + b'"') != -1:
        kinds.add(argv.FLAG)  # a bare name: only a flag is defined that way
    return kinds


# ------------------------------------------------------------------------------------------------------------
# Empty values, judged by the request the CLI sends


class Probe:
    """Runs `claude ARGS -p PROMPT` in one fixed HOME and folder against one fake API, so that two runs'
    requests differ only by what ARGS changed. The user settings name SETTINGS_MODEL."""

    def __init__(self, claude: str, root: Path, api: FakeAnthropic) -> None:
        self.claude = claude
        self.api = api
        self.cwd = root / "project"
        self.cwd.mkdir()
        home = root / "home"
        self.env = offline_env(home, api.url)
        (home / ".claude").mkdir(exist_ok=True)
        (home / ".claude" / "settings.json").write_text(json.dumps({"model": SETTINGS_MODEL}))

    def run(
        self, *args: str, prompt: str = "hi"
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
        """The run's result and the body of the turn request it sent (None when it sent none)."""
        before = len(self.api.requests)
        result = run_print([*args, "-p", prompt], self.env, self.cwd, timeout=180, command=[self.claude])
        turns = [
            r.body
            for r in self.api.requests[before:]
            if r in self.api.turns_with(prompt) and isinstance(r.body, dict)
        ]
        return result, (turns[-1] if turns else None)

    def request(self, *args: str) -> dict[str, Any]:
        result, body = self.run(*args)
        assert result.returncode == 0, (
            f"claude {' '.join(args)!r} -p hi: rc {result.returncode}\n{result.stderr}"
        )
        assert body is not None, f"claude {args!r} -p hi sent no turn request"
        return body

    @cached_property
    def baseline(self) -> dict[str, Any]:
        """The request without any extra option."""
        return self.request()


@pytest.fixture(scope="module")
def probe(claude: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    with FakeAnthropic(REPLY) as api:
        yield Probe(claude, tmp_path_factory.mktemp("probe"), api)


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A request body without the per-run ids (metadata carries the session id)."""
    return {key: value for key, value in body.items() if key != "metadata"}


def tool_names(body: dict[str, Any]) -> list[str]:
    return [str(tool.get("name")) for tool in body.get("tools") or []]


def test_empty_meaningful_is_the_set_these_tests_back() -> None:
    # Each option here has a test below showing what its empty value does; add the test with the option.
    assert {"--setting-sources", "--tools", "--system-prompt", "--max-thinking-tokens",
            "--permission-prompt-tool"} == argv.EMPTY_MEANINGFUL


@pytest.mark.realclaude
@pytest.mark.parametrize(
    "empty", [["--setting-sources", ""], ["--setting-sources="]], ids=["separate", "inline"]
)
def test_empty_setting_sources_loads_no_settings_file(probe: Probe, empty: list[str]) -> None:
    assert probe.baseline["model"] == SETTINGS_MODEL  # absent: the user settings are loaded
    assert probe.request(*empty)["model"] != SETTINGS_MODEL  # empty: none are


@pytest.mark.realclaude
@pytest.mark.parametrize("empty", [["--system-prompt", ""], ["--system-prompt="]], ids=["separate", "inline"])
def test_empty_system_prompt_replaces_the_default_prompt(probe: Probe, empty: list[str]) -> None:
    # The billing header carries a hash of the request; the other blocks are the prompt.
    def prompt(body: dict[str, Any]) -> list[str]:
        return [b for b in system_blocks(body) if not b.startswith("x-anthropic-billing-header")]

    default, custom = prompt(probe.baseline), prompt(probe.request(*empty))
    dropped = [block for block in default if block not in custom]
    # What is left is the identity line the CLI always sends; Claude Code's own long prompt is gone.
    assert all(block in default for block in custom)
    assert sum(map(len, dropped)) > 1000, (default, custom)


@pytest.mark.realclaude
@pytest.mark.parametrize("empty", [["--tools", ""], ["--tools="]], ids=["separate", "inline"])
def test_empty_tools_means_no_tools(probe: Probe, empty: list[str]) -> None:
    assert tool_names(probe.baseline)  # absent: the default set
    assert tool_names(probe.request(*empty)) == []


@pytest.mark.realclaude
@pytest.mark.parametrize("option", sorted(argv.EMPTY_MEANINGFUL))
def test_every_empty_meaningful_option_changes_the_request(probe: Probe, option: str) -> None:
    assert comparable(probe.request(option, "")) != comparable(probe.baseline)


SAME = "the request is the same as without the option"  # some print a warning first
REFUSED = "the CLI refuses it before any request"
# What an empty value does to options outside EMPTY_MEANINGFUL (in -p runs). SAME: dropping `--x ""`, as
# argv.repair does, changes nothing; REFUSED: dropping it turns a failed launch into one that works.
EMPTY_VERDICTS = {
    "--append-system-prompt": SAME,
    "--allowedTools": SAME,
    "--fallback-model": SAME,
    "--disallowedTools": SAME,
    "--add-dir": SAME,  # "Give a directory path."
    "--betas": SAME,  # "Warning: Beta header '' is not allowed."
    "--effort": SAME,  # "Warning: Unknown --effort value ''"
    "--agent": SAME,
    "--agents": SAME,
    "--settings": SAME,
    "--mcp-config": SAME,
    "--name": SAME,
    "--session-id": SAME,
    "--json-schema": SAME,
    "--system-prompt-file": SAME,
    "--append-system-prompt-file": SAME,
    "--plugin-dir": SAME,
    "--max-turns": SAME,
    "--resume-session-at": SAME,
    "--permission-mode": REFUSED,
    "--output-format": REFUSED,
    "--input-format": REFUSED,
    "--max-budget-usd": REFUSED,
    "--autocompact": REFUSED,
    "--permission-prompts": REFUSED,
    "--system-prompt-snapshot": REFUSED,
    "--thinking": REFUSED,
}


@pytest.mark.realclaude
@pytest.mark.parametrize(("option", "verdict"), EMPTY_VERDICTS.items(), ids=list(EMPTY_VERDICTS))
def test_empty_value_means_nothing(probe: Probe, option: str, verdict: str) -> None:
    assert option not in argv.EMPTY_MEANINGFUL
    result, body = probe.run(option, "")
    if verdict == REFUSED:
        assert result.returncode == 1
        assert "argument '' is invalid" in result.stderr
        assert body is None
    else:
        assert result.returncode == 0, result.stderr
        assert body is not None
        assert comparable(body) == comparable(probe.baseline)


@pytest.mark.realclaude
def test_empty_model_is_sent_to_the_api_as_an_empty_name(probe: Probe) -> None:
    # Different from no --model, but only by asking the API for a model named "" (which it rejects):
    # nothing worth keeping, so argv.repair may drop it, and the settings' model applies again.
    assert "--model" not in argv.EMPTY_MEANINGFUL
    assert probe.baseline["model"] == SETTINGS_MODEL
    assert probe.request("--model", "")["model"] == ""


@pytest.mark.realclaude
def test_empty_max_thinking_tokens_turns_thinking_off(probe: Probe) -> None:
    # Found while checking the table: "" counts as 0, which turns extended thinking off on a model that
    # thinks with a budget. So it is in EMPTY_MEANINGFUL: an empty value is kept, an orphan gets it back.
    model = ("--model", "claude-sonnet-4-5")
    assert probe.request(*model)["thinking"]["type"] == "enabled"
    assert probe.request(*model, "--max-thinking-tokens", "")["thinking"] == {"type": "disabled"}
    assert probe.request(*model, "--max-thinking-tokens", "0")["thinking"] == {"type": "disabled"}


@pytest.mark.realclaude
def test_empty_permission_prompt_tool_still_names_a_host(probe: Probe) -> None:
    # Found while checking the table: any value, "" included, makes the CLI offer the AskUserQuestion tool
    # (a host is taken to answer questions). So it is in EMPTY_MEANINGFUL.
    assert "AskUserQuestion" not in tool_names(probe.baseline)
    assert "AskUserQuestion" in tool_names(probe.request("--permission-prompt-tool", ""))
    assert "AskUserQuestion" in tool_names(probe.request("--permission-prompt-tool", "mcp__host__approve"))


# ------------------------------------------------------------------------------------------------------------
# The orphan flag: what a host that drops empty arguments produces


@pytest.mark.realclaude
def test_orphan_setting_sources_swallows_the_next_option(probe: Probe) -> None:
    args = ["--setting-sources", "--permission-mode", "plan", "-p", "hi"]
    result = run_print(args, probe.env, probe.cwd, timeout=180, command=[probe.claude])
    assert result.returncode == 1
    assert "Invalid setting source: --permission-mode" in result.stderr

    # argv.repair restores the empty value (not drops the option): the launch works and loads no settings.
    repaired, _ = argv.repair(args)
    assert repaired == ["--setting-sources", "", "--permission-mode", "plan", "-p", "hi"]
    result, body = probe.run(*repaired[:-2])
    assert result.returncode == 0, result.stderr
    assert body is not None
    assert body["model"] != SETTINGS_MODEL


@pytest.mark.realclaude
def test_orphan_known_flag_never_swallows_an_unknown_option(probe: Probe) -> None:
    # An option this table does not know (a newer CLI's) right after an orphan: the CLI would take it as the
    # orphan's value. After repair, the CLI sees the unknown option as an option (and rejects it by name here,
    # as this CLI does not know it either), never as a setting source.
    args = ["--setting-sources", "--brand-new-option", "-p", "hi"]
    result = run_print(args, probe.env, probe.cwd, timeout=180, command=[probe.claude])
    assert "Invalid setting source: --brand-new-option" in result.stderr  # swallowed without the repair
    repaired, _ = argv.repair(args)
    assert repaired == ["--setting-sources", "", "--brand-new-option", "-p", "hi"]
    result = run_print(repaired, probe.env, probe.cwd, timeout=180, command=[probe.claude])
    assert "Invalid setting source" not in result.stderr
    assert "unknown option '--brand-new-option'" in result.stderr
    # An orphan whose empty value means nothing is dropped; the unknown option and its value stay, in order.
    assert argv.repair(["--model", "--brand-new=3", "x", "-p", "hi"])[0] == ["--brand-new=3", "x", "-p", "hi"]
    # An unknown option is never repaired: its empty value and what follows pass through as given.
    assert argv.repair(["--brand-new", "", "--model", "m"])[0] == ["--brand-new", "", "--model", "m"]


# ------------------------------------------------------------------------------------------------------------
# Subcommand or prompt


@pytest.mark.realclaude
@pytest.mark.parametrize(
    ("args", "prompt"),
    [(["-p", "doctor"], "doctor"), (["doctor", "-p"], "doctor"), (["--print", "mcp", "list"], "mcp")],
)
def test_with_print_a_command_name_is_a_prompt(probe: Probe, args: list[str], prompt: str) -> None:
    assert argv.classify(args).session
    before = len(probe.api.requests)
    result = run_print(args, probe.env, probe.cwd, timeout=180, command=[probe.claude])
    assert result.returncode == 0, result.stderr
    assert REPLY in result.stdout
    assert [r for r in probe.api.requests[before:] if r in probe.api.turns_with(prompt)]


@pytest.mark.realclaude
@pytest.mark.parametrize("args", [["doctor"], ["--model", "x", "doctor"]])
def test_without_print_doctor_is_the_command(probe: Probe, args: list[str]) -> None:
    assert not argv.classify(args).session
    before = len(probe.api.requests)
    result = run_print(args, probe.env, probe.cwd, timeout=180, command=[probe.claude])
    assert result.returncode == 0, result.stderr
    assert "Claude Code doctor" in result.stdout
    assert REPLY not in result.stdout
    assert probe.api.requests[before:] == []  # no conversation: the command talks to no model
