"""Option drift: how the installed Claude Code's `--help` differs from the option table the shim repairs with.

A new release may add an option that takes a value (the shim would not repair its empty value), drop one, change
what kind of value one takes, or give an empty value a meaning (which the shim must then keep, not drop). Each
difference is named, so `claude-guard doctor` and the tests report a fact about the table, not a version string.
"""

from __future__ import annotations

import re

from . import argv

_SECTION = re.compile(r"^(\S.*):$")
_ENTRY = re.compile(r"^  (\S.*?)(?: {2,}(.*)|$)")  # exactly two spaces: deeper lines continue a description
_OPTION = re.compile(r"^(-{1,2}[\w-]+(?:, -{1,2}[\w-]+)*)(?: ([<\[].*[>\]]))?$")
# A description that gives the empty value a meaning: `"" for none`, `''`, "an empty ...".
_EMPTY_VALUE = re.compile(r"\"\"|''|\bempty\b", re.IGNORECASE)

KIND_NAMES = {argv.FLAG: "no value", argv.REQUIRED: "a value", argv.OPTIONAL: "an optional value",
              argv.VARIADIC: "several values"}


class Help:
    """What `claude --help` lists: options (every name, aliases included) with their kind and description,
    and command names (aliases included)."""

    def __init__(self, text: str) -> None:
        self.options: dict[str, int] = {}
        self.descriptions: dict[str, str] = {}
        self.commands: set[str] = set()
        self.unparsed: list[str] = []  # option lines this parser did not understand
        section = ""
        names: list[str] = []  # the option entry the following continuation lines belong to
        for line in text.splitlines():
            if heading := _SECTION.match(line):
                section, names = heading.group(1), []
                continue
            entry = _ENTRY.match(line)
            if not entry:
                if names and line.strip():
                    for name in names:
                        self.descriptions[name] += " " + line.strip()
                continue
            spec, description = entry.group(1), entry.group(2) or ""
            names = []
            if section == "Options":
                option = _OPTION.match(spec)
                if not option:
                    self.unparsed.append(line.strip())
                    continue
                names = option.group(1).split(", ")
                for name in names:
                    self.options[name] = value_kind(option.group(2))
                    self.descriptions[name] = description.strip()
            elif section == "Commands":
                self.commands.update(spec.split()[0].split("|"))  # `stop|kill <id>`: a command and its alias


def value_kind(spec: str | None) -> int:
    """The kind of an option from the value part of its help entry (`<x>`, `[x]`, `<x...>`, none)."""
    if not spec:
        return argv.FLAG
    if spec.endswith("...>") or spec.endswith("...]"):
        return argv.VARIADIC
    return argv.REQUIRED if spec.startswith("<") else argv.OPTIONAL


def differences(help_text: str) -> list[str]:
    """Each way the table (argv.OPTIONS, EMPTY_MEANINGFUL, SUBCOMMANDS) disagrees with this `--help`, one line
    each; [] when they match."""
    found = Help(help_text)
    if not found.options:
        return ["no options found in the --help output (not Claude Code's help?)"]
    problems = [f"unreadable option entry in --help: {line!r}" for line in found.unparsed]
    for name, kind in sorted(found.options.items()):
        known = argv.OPTIONS.get(name)
        if known is None:
            what = "takes " + KIND_NAMES[kind] if kind != argv.FLAG else "a flag"
            problems.append(f"new option {name} ({what}) is not in the table: passed through, never repaired")
        elif known != kind:
            problems.append(f"{name} takes {KIND_NAMES[kind]} now; the table says {KIND_NAMES[known]}")
        if (kind != argv.FLAG and name not in argv.EMPTY_MEANINGFUL
                and _EMPTY_VALUE.search(found.descriptions.get(name, ""))):
            problems.append(f"{name}: its help gives the empty value a meaning ({found.descriptions[name]!r}); "
                            "the table drops an empty value as meaningless")
    problems += [f"{name} is gone from --help; the table still has it"
                 for name in sorted(set(argv.OPTIONS) - set(found.options) - argv.HIDDEN)]
    problems += [f"new command {name!r} is not in the table (it would count as a session)"
                 for name in sorted(found.commands - argv.SUBCOMMANDS)]
    problems += [f"command {name!r} is gone from --help; the table still has it"
                 for name in sorted(argv.SUBCOMMANDS - found.commands)]
    return problems
