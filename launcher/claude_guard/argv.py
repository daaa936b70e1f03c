"""Claude Code's command line: what kind of call it is, which session it opens, and pair-wise repair.

The option table was read from `claude --help` of Claude Code 2.1.330 (plus the hidden options the Agent
SDKs pass). `claude-guard doctor` and tests/test_argv_real.py compare it with the installed CLI's help
(claude_guard.drift) and name each difference, so a drift is reported rather than silently mis-repairing a launch.

Options the table does not know (a newer CLI's) are passed through untouched: never dropped, reordered or given a
value. A known option left without its value never takes one as its value either: anything shaped like a long
option (`--name`, `--name=value`) counts as an option when deciding whether a value is missing.

Why repair at all: hosts built on Bun drop empty arguments, so `--setting-sources ""` arrives as a bare
`--setting-sources` which then swallows the next option as its value ("Invalid setting source:
--permission-mode"). Peers drop both tokens; that is wrong for options where the empty value means
something (`--setting-sources ""` loads no settings files; leaving the option out loads all of them).
"""

from __future__ import annotations

FLAG = 0  # takes no value
REQUIRED = 1  # `--model <model>`: commander takes the next token as the value, whatever it is
OPTIONAL = 2  # `--resume [value]`: a following option is not taken as its value
VARIADIC = 3  # `--tools <tools...>`: takes every following token up to the next option

_REQUIRED = (
    "--agent --agents --append-system-prompt --autocompact --debug-file --effort "
    "--environment --fallback-model --input-format --json-schema --max-budget-usd --model -n --name "
    "--output-format --permission-mode --permission-prompts --plugin-dir --plugin-url "
    "--remote-control-session-name-prefix --session-id --setting-sources --settings --system-prompt "
    "--system-prompt-snapshot"
)
# Options not in --help: documented ones (--system-prompt-file, ...) and those the Agent SDKs pass; kinds from the
# CLI binary's own option definitions (tests/test_argv_real.py checks them there).
_REQUIRED_HIDDEN = (
    "--append-system-prompt-file --system-prompt-file "
    "--max-turns --max-thinking-tokens --permission-prompt-tool --resume-session-at --thinking "
    "--task-budget --thinking-display --initialize-fields --managed-settings --plugin-dir-no-mcp "
    "--project-config-root --resume-drops-turn --sdk-url"
)
_VARIADIC = (
    "--add-dir --allowedTools --allowed-tools --betas --disallowedTools --disallowed-tools --file "
    "--mcp-config --tools"
)
_VARIADIC_HIDDEN = "--channels"
_OPTIONAL = "--cloud -d --debug --from-pr --prompt-suggestions --remote-control -r --resume --teleport -w --worktree"
_FLAGS = (
    "--allow-dangerously-skip-permissions --ax-screen-reader --bg --background --bare --brief --chrome -c "
    "--continue --dangerously-skip-permissions --desktop --disable-slash-commands "
    "--exclude-dynamic-system-prompt-sections --fork-session --forward-subagent-text -h --help --ide "
    "--include-hook-events --include-partial-messages --no-chrome --no-session-persistence -p --print "
    "--replay-user-messages --restricted --safe-mode --strict-mcp-config --tmux --verbose -v --version"
)
_FLAGS_HIDDEN = "--session-mirror --await-initialize --managed-settings-in-initialize --debug-to-stderr"

HIDDEN: frozenset[str] = frozenset(" ".join((_REQUIRED_HIDDEN, _VARIADIC_HIDDEN, _FLAGS_HIDDEN)).split())
OPTIONS: dict[str, int] = {
    **{name: FLAG for name in (_FLAGS + " " + _FLAGS_HIDDEN).split()},
    **{name: REQUIRED for name in (_REQUIRED + " " + _REQUIRED_HIDDEN).split()},
    **{name: VARIADIC for name in (_VARIADIC + " " + _VARIADIC_HIDDEN).split()},
    **{name: OPTIONAL for name in _OPTIONAL.split()},
}

# Options for which an empty value means something different from leaving the option out. Checked
# against the real CLI (tests/test_argv_real.py), not taken from the peers:
# - `--setting-sources ""`: load no settings files (absent: user, project and local are loaded);
# - `--tools ""`: no built-in tools (its help says so; absent: the default set);
# - `--system-prompt ""`: an empty system prompt (absent: Claude Code's default prompt). The Python
#   Agent SDK passes exactly this when no system prompt is configured;
# - `--max-thinking-tokens ""`: counts as 0, extended thinking off (absent: on, with a budget);
# - `--permission-prompt-tool ""`: a host answers questions (the AskUserQuestion tool is offered).
EMPTY_MEANINGFUL: frozenset[str] = frozenset(
    {"--setting-sources", "--tools", "--system-prompt", "--max-thinking-tokens", "--permission-prompt-tool"}
)

# `claude <command>`: management calls, never sessions (from the Commands section of --help).
SUBCOMMANDS: frozenset[str] = frozenset(
    ["agents", "attach", "auth", "auto-mode", "doctor", "gateway", "import", "install", "logs", "mcp", "plugin",
     "plugins", "purge", "respawn", "rm", "setup-token", "stop", "kill", "ultrareview", "update", "upgrade"]
)
_PASS_FLAGS = frozenset({"-h", "--help", "-v", "--version"})
_STREAM_JSON = "stream-json"


class Call:
    """What a `claude` command line asks for. (A plain class: dataclasses cost too much on the hot path.)"""

    __slots__ = ("continues", "fork", "kind", "options", "session", "session_id")

    def __init__(self, session: bool, kind: str = "interactive", options: dict[str, str] | None = None,
                 fork: bool = False) -> None:
        self.session = session  # False for --version, --help and subcommands: never counted or refused
        self.kind = kind  # interactive | print | sdk | background | passthrough
        self.session_id: str | None = None  # the session this launch opens, when the command line names it
        self.fork = fork
        # `--continue` without `--fork-session`: opens the folder's latest session, which the command line
        # does not name (launch asks transcripts.continued_session which one Claude will pick).
        self.continues = False
        self.options = options or {}  # last value seen per option (canonical name)


def _split(token: str) -> tuple[str, str | None]:
    """`--name=value` -> (`--name`, `value`); anything else -> (token, None)."""
    if token.startswith("--") and "=" in token:
        name, _, value = token.partition("=")
        return name, value
    return token, None


def _is_option(token: str) -> bool:
    """A token the CLI would parse as an option (so it cannot be a value we must keep): a known one, or anything
    shaped like a long option, so that an orphan never swallows an option this table does not know yet."""
    if token == "--":
        return True
    name, _ = _split(token)
    return name in OPTIONS or _looks_long(name)


def _looks_long(name: str) -> bool:
    # `--name`: letters first, then letters, digits and dashes (a value like "--" or "---" or "-- x" is not one).
    return len(name) > 3 and name.startswith("--") and name[2].isalpha() and name[2:].replace("-", "").isalnum()


def repair(args: list[str]) -> tuple[list[str], list[str]]:
    """Repair empty and orphaned option values pair-wise. Returns (new args, one note per repair).

    Never raises, never reorders, never drops a non-empty value or a positional argument; unknown options
    and clean command lines come back unchanged; applying it twice changes nothing more.
    """
    out: list[str] = []
    notes: list[str] = []
    i, n = 0, len(args)
    while i < n:
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name, inline = _split(token)
        kind = OPTIONS.get(name) if token.startswith("-") else None
        if kind not in (REQUIRED, VARIADIC):
            out.append(token)
            i += 1
            if kind == OPTIONAL and i < n and not args[i].startswith("-") and inline is None:
                out.append(args[i])  # an optional value is never repaired: the CLI takes it as given
                i += 1
            continue
        meaningful = name in EMPTY_MEANINGFUL
        if inline is not None:  # `--model=`: the value is in the token itself
            if inline == "" and not meaningful:
                notes.append(f"dropped {token!r}: an empty value means nothing to {name}")
            else:
                out.append(token)
            i += 1
            continue
        nxt = args[i + 1] if i + 1 < n else None
        if nxt is None or _is_option(nxt):
            # Orphan: the empty value was dropped upstream (Bun), and the option would swallow `nxt`.
            if meaningful:
                out.extend((token, ""))
                notes.append(f"restored the empty value of {token} (it was followed by {nxt or 'nothing'})")
            else:
                notes.append(f"dropped orphan {token} (no value; it was followed by {nxt or 'nothing'})")
            i += 1
            continue
        if nxt == "" and not meaningful:
            j = i + 1
            if kind == VARIADIC:
                while j < n and args[j] == "":
                    j += 1  # every empty value of a variadic option goes together
            later = args[j] if kind == VARIADIC and j < n else None
            if later is not None and not _is_option(later):
                # `--add-dir "" b`: b is still a value of the option; only the empty ones go.
                out.append(token)
                notes.append(f"dropped empty value(s) of {token}")
                i = j
            else:
                notes.append(f"dropped {token} \"\": an empty value means nothing to {token}")
                i = max(j, i + 2)
            continue
        out.extend((token, nxt))
        i += 2
        if kind == VARIADIC:
            while i < n and not args[i].startswith("-"):
                out.append(args[i])
                i += 1
    return out, notes


def classify(args: list[str]) -> Call:
    """Tell a session launch from a pass-through, and find the session id it opens."""
    opts: dict[str, str] = {}
    positional: list[str] = []
    i, n = 0, len(args)
    while i < n:
        token = args[i]
        if token == "--":
            positional.extend(args[i + 1 :])
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            i += 1
            continue
        name, inline = _split(token)
        if name in _PASS_FLAGS:
            return Call(session=False, kind="passthrough")
        kind = OPTIONS.get(name)
        if kind is None and not token.startswith("--") and len(token) > 2:
            # `-rID` / `-nNAME`: a short option with its value attached
            short = token[:2]
            if OPTIONS.get(short) in (REQUIRED, OPTIONAL):
                opts[_canonical(short)] = token[2:]
            i += 1
            continue
        value: str | None = inline
        i += 1
        if inline is None and kind in (REQUIRED, VARIADIC) and i < n:
            value = args[i]
            i += 1
            if kind == VARIADIC:
                while i < n and not args[i].startswith("-"):
                    i += 1
        elif inline is None and kind == OPTIONAL and i < n and not args[i].startswith("-"):
            value = args[i]
            i += 1
        opts[_canonical(name)] = "" if value is None else value
    if positional and positional[0] != "" and positional[0] in SUBCOMMANDS and not _has_prompt_flag(opts):
        return Call(session=False, kind="passthrough")
    call = Call(session=True, options=opts, fork="--fork-session" in opts)
    if _STREAM_JSON in (opts.get("--input-format"), opts.get("--output-format")):
        # Both Agent SDKs pass no --print: the CLI runs headless because stdin and stdout are pipes.
        call.kind = "sdk"
    elif "--print" in opts:
        call.kind = "print"
    elif "--background" in opts:
        call.kind = "background"
    resume = opts.get("--resume")
    if opts.get("--session-id"):
        call.session_id = opts["--session-id"]
    elif resume and not call.fork:
        call.session_id = resume
    call.continues = "--continue" in opts and not call.fork and not call.session_id
    return call


_ALIASES = {
    "-r": "--resume",
    "-p": "--print",
    "-c": "--continue",
    "-d": "--debug",
    "-n": "--name",
    "-w": "--worktree",
    "--bg": "--background",
    "--allowed-tools": "--allowedTools",
    "--disallowed-tools": "--disallowedTools",
}


def _canonical(name: str) -> str:
    return _ALIASES.get(name, name)


def _has_prompt_flag(opts: dict[str, str]) -> bool:
    # `claude -p doctor` is a prompt ("doctor"), not the doctor command.
    return "--print" in opts
