"""Argument repair and call classification (pure functions), with properties over random command lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_guard import argv
from claude_guard.argv import classify, repair


@pytest.mark.parametrize(
    ("given_args", "expected"),
    [
        # an option that needs a value, then an empty value meaning nothing: both go
        (["--model", "", "-p", "hi"], ["-p", "hi"]),
        (["--append-system-prompt", "", "-p", "hi"], ["-p", "hi"]),
        (["--model=", "-p", "hi"], ["-p", "hi"]),
        # an orphan option (the empty value was dropped upstream, as Bun does)
        (["--model", "--permission-mode", "plan", "-p", "hi"], ["--permission-mode", "plan", "-p", "hi"]),
        (["-p", "hi", "--model"], ["-p", "hi"]),
        # ... whose empty value means something: put back
        (["--setting-sources", "--permission-mode", "plan", "-p", "hi"],
         ["--setting-sources", "", "--permission-mode", "plan", "-p", "hi"]),
        (["--tools", "--model", "x"], ["--tools", "", "--model", "x"]),
        (["-p", "hi", "--system-prompt"], ["-p", "hi", "--system-prompt", ""]),
        # meaningful empty values are kept as they are
        (["--setting-sources", "", "-p", "hi"], ["--setting-sources", "", "-p", "hi"]),
        (["--setting-sources=", "-p", "hi"], ["--setting-sources=", "-p", "hi"]),
        (["--tools", "", "-p", "hi"], ["--tools", "", "-p", "hi"]),
        # the empty positional prompt stays
        (["", "-p"], ["", "-p"]),
        (["-p", ""], ["-p", ""]),
        # variadic: an empty first value followed by more values loses only the empty one
        (["--add-dir", "", "b", "-p", "x"], ["--add-dir", "b", "-p", "x"]),
        (["--allowedTools", "", "-p", "x"], ["-p", "x"]),
        # unknown options are left alone, and so is everything after --
        (["--frobnicate", "", "-p", "x"], ["--frobnicate", "", "-p", "x"]),
        (["-p", "--", "--model", ""], ["-p", "--", "--model", ""]),
        # a value that merely starts with a dash but is no option is a value
        (["--append-system-prompt", "-be terse", "-p", "x"], ["--append-system-prompt", "-be terse", "-p", "x"]),
        # optional values are never touched
        (["--resume", "", "-p", "x"], ["--resume", "", "-p", "x"]),
        (["-r", "--model", "m"], ["-r", "--model", "m"]),
    ],
)
def test_repair(given_args: list[str], expected: list[str]) -> None:
    out, notes = repair(given_args)
    assert out == expected
    assert bool(notes) == (out != given_args)


def test_repair_chain_of_orphans() -> None:
    out, notes = repair(["--model", "--fallback-model", "--tools", "--effort", "high", "-p", "q"])
    assert out == ["--tools", "", "--effort", "high", "-p", "q"]
    assert len(notes) == 3


@pytest.mark.parametrize(
    "args",
    [["--version"], ["-v"], ["--help"], ["-h"], ["mcp", "list"], ["doctor"], ["auth", "login"], ["update"],
     ["--model", "x", "--version"], ["plugin", "install", "x"], ["--debug", "mcp"]],
)
def test_passthrough(args: list[str]) -> None:
    call = classify(args)
    if args == ["--debug", "mcp"]:
        # `--debug [filter]` takes `mcp` as its filter: an interactive session, not the mcp command
        assert call.session
    else:
        assert not call.session


@pytest.mark.parametrize(
    ("args", "kind", "sid"),
    [
        ([], "interactive", None),
        (["fix the bug"], "interactive", None),
        (["-p", "doctor"], "print", None),
        (["--resume", "abc"], "interactive", "abc"),
        (["-r", "abc", "-p", "go"], "print", "abc"),
        (["-rabc"], "interactive", "abc"),
        (["--resume=abc"], "interactive", "abc"),
        (["--session-id", "0f0e", "-p", "x", "--output-format", "stream-json"], "sdk", "0f0e"),
        (["--resume", "abc", "--fork-session"], "interactive", None),
        (["--resume", "abc", "--fork-session", "--session-id", "new"], "interactive", "new"),
        (["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"], "sdk", None),
        # what the Python and Node Agent SDKs run: no --print
        (["--output-format", "stream-json", "--verbose", "--system-prompt", "", "--input-format", "stream-json"],
         "sdk", None),
        (["--output-format", "stream-json", "--verbose", "--input-format", "stream-json", "--resume", "abc"], "sdk",
         "abc"),
        (["--continue"], "interactive", None),
        (["--bg", "x"], "background", None),
        (["--resume"], "interactive", None),
    ],
)
def test_classify_session(args: list[str], kind: str, sid: str | None) -> None:
    call = classify(args)
    assert call.session
    assert call.kind == kind
    assert call.session_id == sid


# -- properties --------------------------------------------------------------------------------------------

_known = sorted(argv.OPTIONS)
_token = st.one_of(
    st.sampled_from(_known),
    st.just(""),
    st.just("--"),
    st.sampled_from(["hi", "plan", "user,project", "-x", "--frob", "--model=", "--setting-sources=", "a b"]),
    st.text(max_size=6),
)
_args = st.lists(_token, max_size=12)


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


@settings(max_examples=3000, deadline=None)
@given(_args)
def test_repair_properties(args: list[str]) -> None:
    out, notes = repair(args)
    # idempotent
    assert repair(out)[0] == out
    # never reorders: the non-empty tokens of the output are the input's, in the same order
    assert _is_subsequence([t for t in out if t], [t for t in args if t])
    # the only token ever added is an empty value, restored after an option whose empty value means something
    restored = sum(1 for note in notes if note.startswith("restored"))
    assert out.count("") <= args.count("") + restored
    head = out[: out.index("--")] if "--" in out else out
    for i, t in enumerate(head):
        if t == "" and i > 0 and head[i - 1] in argv.OPTIONS and argv.OPTIONS[head[i - 1]] in (argv.REQUIRED,
                                                                                             argv.VARIADIC):
            assert head[i - 1] in argv.EMPTY_MEANINGFUL
    # a clean command line (no notes) is unchanged
    if not notes:
        assert out == args


@settings(max_examples=3000, deadline=None)
@given(_args)
def test_repair_never_drops_a_value_or_prompt(args: list[str]) -> None:
    """A non-empty token that is not one of the known options is never dropped: values and prompts stay."""
    out, _ = repair(args)
    kept = [t for t in out if t and not argv._is_option(t)]
    given_values = [t for t in args if t and not argv._is_option(t)]
    assert kept == given_values


@settings(max_examples=2000, deadline=None)
@given(_args)
def test_classify_never_raises(args: list[str]) -> None:
    call = classify(args)
    assert call.kind in ("interactive", "print", "sdk", "background", "passthrough")
