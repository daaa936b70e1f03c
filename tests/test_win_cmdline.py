"""Command-line building for Windows, checked against the reference models in winmodels.py."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_guard.errors import ExitCode, GuardError
from claude_guard.win.cmdline import (
    MAX_BATCH_COMMAND_LINE,
    MAX_COMMAND_LINE,
    build_batch_command_line,
    build_command_line,
    cmd_exe_path,
    quote_arg,
    quote_batch_arg,
    utf16_length,
)
from winmodels import (
    HostileEnvironment,
    after_slash_c,
    cmd_c,
    expand_percent,
    parse_argv_post2008,
    parse_argv_pre2008,
    strip_c_quotes,
)

# Under Wine (scripts/test-windows) the same properties run with fewer examples: the point there is that the
# code behaves the same on a Windows Python; the 10,000-example search runs on Linux.
EXAMPLES = int(os.environ.get("CLAUDE_GUARD_TEST_EXAMPLES", "10000"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that mean something to the C runtime or to cmd.exe, weighted in next to arbitrary text.
TRICKY = " \t\n\v\r\"\\%!^&|<>()@,;=:~*?$#+-./_'`[]{}aZ0é€😀\x85\x01\x1a"


def text_without(excluded: str) -> st.SearchStrategy[str]:
    """Short strings of tricky and arbitrary characters, none of `excluded` (built without filters: fast)."""
    chars = st.one_of(
        st.sampled_from([c for c in TRICKY if c not in excluded]),
        st.characters(exclude_characters=excluded + "\0"),
    )
    return st.text(alphabet=chars, max_size=24)


argument = text_without("")
program = text_without('"')
batch_argument = text_without("\r\n")
# Windows file names may hold `&^()!,;=` and spaces; not `"`, and the builder refuses `%` and a trailing `\`.
script_part = st.text(alphabet=st.sampled_from(list("ab Z09&^()!,;=@#$-_.é")), min_size=1, max_size=12)
script = st.builds(lambda a, b: f"C:\\{a}\\{b}.cmd", script_part, script_part)

# The table in the shared note (../shared/notes/windows-launch.md): argument, direct fragment, batch fragment.
VECTORS = [
    ("", '""', '""'),
    ("a b", '"a b"', '"a b"'),
    ('a"b', 'a\\"b', '"a""b"'),
    ('a\\"b', 'a\\\\\\"b', None),  # the note gives no batch fragment
    ("C:\\Program Files\\", '"C:\\Program Files\\\\"', '"C:\\Program Files\\\\"'),
    ("hello", "hello", "hello"),
    ('say "hi"', '"say \\"hi\\""', '"say ""hi"""'),
    ("%PATH%", "%PATH%", '"%%cd:~,%PATH%%cd:~,%"'),
]


# --- the models, against the documented examples -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "post2008", "pre2008"),
    [
        # Microsoft's "Parsing C command-line arguments" table; the last row is where the two rules part.
        ('"abc" d e', ["abc", "d", "e"], None),
        ('a\\\\\\b d"e f"g h', ["a\\\\\\b", "de fg", "h"], None),
        ('a\\\\\\"b c d', ['a\\"b', "c", "d"], None),
        ('a\\\\\\\\"b c" d e', ["a\\\\b c", "d", "e"], None),
        ('a"b"" c d', ['ab" c d'], ['ab"', "c", "d"]),
    ],
)
def test_models_follow_the_documented_examples(line: str, post2008: list[str], pre2008: list[str] | None) -> None:
    assert parse_argv_post2008("prog " + line) == ["prog", *post2008]
    assert parse_argv_pre2008("prog " + line) == ["prog", *(post2008 if pre2008 is None else pre2008)]


def test_models_read_a_quoted_program_name_with_backslashes_literally() -> None:
    for parse in (parse_argv_post2008, parse_argv_pre2008):
        assert parse('"C:\\Program Files\\x\\" a') == ["C:\\Program Files\\x\\", "a"]


def test_cmd_model_expands_like_cmd_on_the_command_line() -> None:
    env = {"Path": "P"}
    assert expand_percent("%PATH%", env)[0] == "P"  # names are case-insensitive
    assert expand_percent("%UNDEFINED%", env)[0] == "%UNDEFINED%"  # kept, not emptied, outside batch files
    assert expand_percent("%%PATH%%", env)[0] == "%P%"  # no %% escape outside batch files
    assert expand_percent("%%cd:~,%", env) == ("%", [("%cd:~,%", "")])
    assert expand_percent("%PATH:~0,1%", {"PATH": "abc"})[0] == "a"


def test_cmd_model_sees_operators_only_outside_quotes() -> None:
    assert cmd_c("a&b", {}).operators == [(1, "&")]
    assert cmd_c('x "a&b" c', {}).operators == []
    assert cmd_c("a^&b", {}).operators == []  # a caret escapes outside quotes
    # First and last quote stripped; inside quotes a caret is literal, outside it escapes.
    assert cmd_c('""p" "b^&c""', {}).text == '"p" "b^&c"'
    assert cmd_c('"a" "b^&c"', {}).text == 'a" "b&c'
    assert strip_c_quotes('"prog"') == '"prog"'  # exactly two quotes are kept
    # A hostile variable brings its operators in: that is what the builder must prevent.
    assert cmd_c("%X%", HostileEnvironment()).operators


# --- direct command lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(("arg", "direct", "batch"), VECTORS)
def test_vectors_from_the_note_hold_exactly(arg: str, direct: str, batch: str | None) -> None:
    assert quote_arg(arg) == direct
    if batch is not None:
        assert quote_batch_arg(arg) == batch


def test_line_feed_is_passed_directly_and_refused_for_batch() -> None:
    line = build_command_line(["C:\\claude.exe", "bad\narg"])
    assert parse_argv_post2008(line) == parse_argv_pre2008(line) == ["C:\\claude.exe", "bad\narg"]
    with pytest.raises(GuardError) as refused:
        build_batch_command_line("C:\\npm\\claude.cmd", ["ok", "bad\narg"], "C:\\Windows")
    assert refused.value.exit_code == ExitCode.REFUSED
    assert "argv[2]" in refused.value.message


@PROPERTY
@given(program, st.lists(argument, max_size=8))
def test_direct_line_round_trips_under_both_rules(prog: str, args: list[str]) -> None:
    argv = [prog, *args]
    line = build_command_line(argv)
    assert parse_argv_post2008(line) == argv
    assert parse_argv_pre2008(line) == argv


@PROPERTY
@given(st.lists(argument, min_size=1, max_size=6), st.data())
def test_direct_line_refuses_nul_naming_the_argument(args: list[str], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(args) - 1))
    cut = data.draw(st.integers(0, len(args[index])))
    args[index] = args[index][:cut] + "\0" + args[index][cut:]
    argv = ["C:\\claude.exe", *args]
    with pytest.raises(GuardError) as refused:
        build_command_line(argv)
    assert refused.value.exit_code == ExitCode.REFUSED
    assert f"argv[{index + 1}]" in refused.value.message


def test_direct_line_refuses_a_quote_in_the_program_name() -> None:
    with pytest.raises(GuardError):
        build_command_line(['C:\\a"b.exe', "x"])


def test_direct_line_length_limit_counts_utf16_units() -> None:
    prefix = len('"p" ')
    fits = build_command_line(["p", "x" * (MAX_COMMAND_LINE - prefix)])
    assert utf16_length(fits) == MAX_COMMAND_LINE
    with pytest.raises(GuardError) as refused:
        build_command_line(["p", "x" * (MAX_COMMAND_LINE - prefix + 1)])
    assert refused.value.exit_code == ExitCode.REFUSED
    # One character outside the BMP is two UTF-16 units for Windows.
    with pytest.raises(GuardError):
        build_command_line(["p", "x" * (MAX_COMMAND_LINE - prefix - 1) + "😀"])


# --- batch command lines ------------------------------------------------------------------------------


def _through_cmd(line: str, env: object) -> tuple[list[str], list[tuple[str, str]], list[tuple[int, str]]]:
    assert isinstance(env, (dict, HostileEnvironment))
    outcome = cmd_c(after_slash_c(line), env)
    assert outcome.specials == [], outcome
    return parse_argv_post2008(outcome.text), outcome.expanded, outcome.operators


@PROPERTY
@given(script, st.lists(batch_argument, max_size=8))
def test_batch_line_is_inert_and_round_trips(script_path: str, args: list[str]) -> None:
    line = build_batch_command_line(script_path, args, "C:\\Windows")
    assert line.startswith('"C:\\Windows\\System32\\cmd.exe" /e:ON /v:OFF /d /c ""')
    for env in (HostileEnvironment(), {}):
        argv, expanded, operators = _through_cmd(line, env)
        assert operators == []
        # The only expansions are the %cd:~,% breaks, and they give nothing.
        assert all(expr == "%cd:~,%" and value == "" for expr, value in expanded)
        assert argv == [script_path, *args]


@PROPERTY
@given(script, st.lists(batch_argument, min_size=1, max_size=6), st.data())
def test_batch_line_refuses_line_breaks_and_nul(script_path: str, args: list[str], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(args) - 1))
    bad = data.draw(st.sampled_from(["\r", "\n", "\0"]))
    args[index] += bad
    with pytest.raises(GuardError) as refused:
        build_batch_command_line(script_path, args, "C:\\Windows")
    assert refused.value.exit_code == ExitCode.REFUSED
    assert f"argv[{index + 1}]" in refused.value.message


@pytest.mark.parametrize("bad_script", ['C:\\a"b\\claude.cmd', "C:\\npm\\", "C:\\100%\\claude.cmd", "C:\\a\rb.cmd", ""])
def test_batch_line_refuses_unsafe_script_paths(bad_script: str) -> None:
    with pytest.raises(GuardError) as refused:
        build_batch_command_line(bad_script, ["x"], "C:\\Windows")
    assert refused.value.exit_code == ExitCode.REFUSED


def test_batch_line_length_limit() -> None:
    with pytest.raises(GuardError) as refused:
        build_batch_command_line("C:\\npm\\claude.cmd", ["x" * MAX_BATCH_COMMAND_LINE], "C:\\Windows")
    assert refused.value.exit_code == ExitCode.REFUSED
    assert "8191" in refused.value.message


def test_cmd_exe_comes_from_the_windows_folder() -> None:
    assert cmd_exe_path("C:\\Windows\\") == "C:\\Windows\\System32\\cmd.exe"
    with pytest.raises(GuardError):
        cmd_exe_path('C:\\"evil')
