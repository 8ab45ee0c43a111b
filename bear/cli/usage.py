"""What `bear` says to a person: help text, and config errors explained with what is allowed.

Everything here is derived from the config schema (bear.config.schema) and conf/, so the help cannot
fall behind a new setting or group option.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from pathlib import Path
from typing import Any

from bear.config.schema import BearConfig

COMMANDS = {
    "run": "backfill the lake, or resume it after the last committed chunk (the default command)",
    "plan": "chunks, ID blocks and expected rows of a run; writes nothing",
    "status": "where a lake stands: committed chunks, rows, bytes, who is writing it",
    "verify": "audit a finished lake against every invariant; exit 0 only if all hold",
    "help": "this text; `bear COMMAND --help` explains one command",
}
DETAILS = {
    "run": ["Writes the lake at sink.root (default ./lake) or gs://sink.bucket/sink.prefix, committing chunk by",
            "chunk; the same command resumes after a crash or Ctrl-C, and does nothing on a complete lake.",
            "sink.dry_run=true lists what it would write. run.restart=true replaces a lake of another config",
            "(only files bear wrote are deleted; a location that is not a bear lake is always refused).",
            "One run writes a lake at a time: a second one exits 2 naming the holder of the writer lease; a",
            "killed run's lease is taken over once it expires (run.lease_s, default 180 s)."],
    "plan": ["Needs no lake and no Ray: the skeleton pass alone, on one core (about 4 s for the default volume,",
             "30 s for ten times it). On an existing lake of another config it names the settings that differ",
             "(exit 2). --json prints the plan document."],
    "status": ["Reads the lake's run state (_bear/): committed chunks, high-water marks, rows and bytes per",
               "table, and the writer lease (who is writing it, until when). A damaged checkpoint is shown as",
               "the lake proves it; a damaged plan is one line, exit 1. A lake of another config: one line",
               "naming what changed, exit 2. --json for machines."],
    "verify": ["Reads the lake back and checks every invariant (keys, integrity, time, money, files, mess).",
               "Exit 0 when all pass, 1 otherwise, 2 for a bad config or a lake of another config. --json. --profile "
               "also measures realism (daily volume, campaign uplift, late and re-delivered shares) against the "
               "config."],
    "help": ["`bear help`, `bear --help`: commands, config groups and the main settings."],
}
MAIN_SETTINGS = ("run.start", "run.end", "run.chunk_days", "run.seed", "run.restart", "run.lease_s",
                 "generator.customers",
                 "generator.products", "generator.scale", "sink.root", "sink.bucket", "sink.prefix", "sink.dry_run",
                 "ray.num_cpus", "output.compression", "hooks.post_export", "logging.progress")
GROUP_DEFAULTS = {"mess": "medium_mess", "sink": "local", "ray": "local"}


def _groups(conf_dir: str) -> list[tuple[str, list[str]]]:
    root = Path(conf_dir)
    return [(d.name, sorted(p.stem for p in d.glob("*.yaml"))) for d in sorted(root.iterdir()) if d.is_dir()]


def help_text(conf_dir: str) -> str:
    defaults = BearConfig()
    lines = ["bear: backfill a data lake's raw zone with deterministic, messy e-commerce history",
             "", "usage: bear [COMMAND] [key=value ...] [--json] [--multirun] [--cfg job]", "", "commands:"]
    lines += [f"  {name:<8}{about}" for name, about in COMMANDS.items()]
    lines += ["", "config groups (group=option):"]
    for group, options in _groups(conf_dir):
        marked = [f"{o} (default)" if GROUP_DEFAULTS.get(group) == o else o for o in options]
        name = group if group in GROUP_DEFAULTS else f"+{group}"
        lines.append(f"  {name:<8}{', '.join(marked)}")
    lines += ["", "main settings (default):"]
    lines += [f"  {key:<22}{_default(defaults, key)}" for key in MAIN_SETTINGS]
    lines += ["", "every setting and its value: bear --cfg job [key=value ...]; the lake's columns: docs/schema.md;",
              "more: README.md"]
    return "\n".join(lines)


def command_help(command: str) -> str:
    return "\n".join([f"bear {command} [key=value ...]: {COMMANDS[command]}", "", *DETAILS[command], "",
                      "Takes the same overrides as `bear run`, so it finds the same lake. `bear help` lists them."])


def _default(cfg: Any, key: str) -> str:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return "null" if cfg is None else str(cfg).lower() if isinstance(cfg, bool) else str(cfg)


def leaf_keys() -> list[str]:
    """Every dotted key of the config, down to the entries of its mappings (their defaults' keys)."""
    out: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name), f"{prefix}{f.name}.")
        elif isinstance(obj, dict) and obj:
            for k, v in obj.items():
                walk(v, f"{prefix}{k}.")
        else:
            out.append(prefix.rstrip("."))

    walk(BearConfig(), "")
    return out


def suggest(key: str, choices: list[str] | None = None) -> str:
    """`; did you mean run.seed?` for a near miss, else ""."""
    pool = choices if choices is not None else leaf_keys()
    close = difflib.get_close_matches(key, pool, n=3, cutoff=0.6)
    if not close:  # a wrong last part under a right section: offer that section's keys
        section = key.rpartition(".")[0]
        close = difflib.get_close_matches(key, [k for k in pool if k.startswith(f"{section}.")], n=3, cutoff=0.3)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def expected_type(key: str) -> str | None:
    """What a setting takes, in words ("an integer"), from the schema's annotations; None if unknown."""
    hint: Any = BearConfig
    for part in key.split("."):
        origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint):
            hints = typing.get_type_hints(hint)
            if part not in hints:
                return None
            hint = hints[part]
        elif origin is dict:
            hint = typing.get_args(hint)[1]
        else:
            return None
    return _words(hint)


def _words(hint: Any) -> str | None:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        inner = _words(args[0])
        return f"{inner} or null" if inner else None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(m.value for m in hint)
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint) or (
        "a list, e.g. [1,2]" if typing.get_origin(hint) is list else None)
