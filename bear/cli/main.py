"""`bear [run|plan|status|verify] [key=value ...]`: a thin Hydra entry point.

The first word picks the command; everything else is Hydra (overrides, --multirun,
--cfg job). Composition and validation errors become one line on stderr and exit code 2
before anything is written.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from bear.cli import usage
from bear.config.load import compose_config, conf_dir, to_config
from bear.config.schema import BearConfig, register
from bear.config.validate import ConfigError

COMMANDS = tuple(c for c in usage.COMMANDS if c != "help")  # what a composed config runs; help is the CLI's own
FLAGS_WITH_VALUE = ("--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun")
log = logging.getLogger("bear")


def fail(message: str, code: int = 2) -> None:
    print(f"bear: {message}", file=sys.stderr)
    sys.exit(code)


def one_line(exc: BaseException) -> str:
    """The useful part of a Hydra/OmegaConf error, on one line, naming the key."""
    chain, e = [], exc
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    key = next((getattr(x, "full_key", None) for x in chain if getattr(x, "full_key", None)), None)
    msg = str(chain[-1] if key else exc)
    msg = re.split(r"\n\s*full_key:", msg)[0]
    msg = re.sub(r"\s*\n\s*", "; ", msg.strip()).replace(":;", ":")
    return f"{key}: {msg}" if key and not msg.startswith(key) else msg


def explain(exc: BaseException, overrides: list[str]) -> str:
    """A composition error as one line that says what is allowed: the closest keys for an unknown one, the
    expected type for a value that does not convert."""
    chain, e = [], exc
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    key = next((getattr(x, "full_key", None) for x in chain if getattr(x, "full_key", None)), None)
    if key and any(isinstance(x, ConfigKeyError | ConfigAttributeError) for x in chain):
        return f"{key}: no such setting{usage.suggest(key)}"
    wanted = usage.expected_type(key) if key else None
    if wanted and any(isinstance(x, ValidationError | ValueError) for x in chain):
        given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key), None)
        return f"{key}: expected {wanted}" + (f" (got {given!r})" if given is not None else "")
    return one_line(exc)


def _to_config(dcfg: DictConfig, overrides: Sequence[str] = (), base_dir: str | None = None) -> BearConfig:
    """`to_config`, with its errors as one line and exit 2."""
    try:
        return to_config(dcfg, base_dir)
    except ConfigError as exc:
        fail(f"invalid config: {exc}")
    except Exception as exc:
        fail(f"invalid config: {explain(exc, list(overrides))}")


def setup_logging(cfg: BearConfig) -> None:
    level = getattr(logging, cfg.logging.level.upper())
    handler = logging.StreamHandler(sys.stderr)
    if cfg.logging.format == "json":
        class Json(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps({"ts": self.formatTime(record), "level": record.levelname,
                                   "logger": record.name, "message": record.getMessage()})
        handler.setFormatter(Json())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("bear")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _task(dcfg: DictConfig) -> None:
    from bear.cli import commands
    from bear.lake.errors import SinkError
    from bear.run.errors import RunError

    hc = HydraConfig.get()  # a sweep's job resolves a relative sink.root in its own folder
    cfg = _to_config(dcfg, base_dir=hc.runtime.output_dir if hc.mode == RunMode.MULTIRUN else None)
    setup_logging(cfg)
    try:
        code = commands.dispatch(cfg)
    except RunError as exc:
        fail(str(exc), exc.exit_code)
    except SinkError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail(commands.interrupted(cfg), 130)
    except BrokenPipeError:  # inside Hydra's job runner, which would print it
        closed_pipe()
    if code:
        sys.exit(code)


def _composed(overrides: list[str]) -> DictConfig:
    try:
        return compose_config(overrides)
    except Exception as exc:
        fail(f"invalid config: {explain(exc, overrides)}")


def _precheck(overrides: list[str]) -> None:
    """Compose once up front (single runs) so a bad override is one line and exit 2, not a traceback."""
    if any(a.startswith("-") for a in overrides):
        return
    _to_config(_composed(overrides), overrides)


def _print_config(overrides: list[str]) -> None:
    """`--cfg job`: the composed config as YAML, with credentials masked (Hydra's own printer would show them)."""
    from bear.lake.state import redacted

    print(OmegaConf.to_yaml(redacted(_to_config(_composed(overrides), overrides))), end="")


def main() -> None:
    """`bear`: Ctrl-C outside a command is one line and 130; a closed pipe (`bear status | head`) ends quietly."""
    try:
        _main()
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        closed_pipe()


def closed_pipe() -> None:
    """The reader went away (`bear status | head`): stop quietly, as a Unix tool killed by SIGPIPE would."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's final flush, too
    sys.exit(128 + signal.SIGPIPE)


def _main() -> None:
    register()
    argv = sys.argv[1:]
    command = "run"
    if argv[:1] in (["help"], ["--help"], ["-h"]):
        topic = argv[1] if argv[1:2] and argv[1] in COMMANDS else None
        print(usage.command_help(topic) if topic else usage.help_text(conf_dir()))
        return
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    for i, word in enumerate(argv):  # a bare word that is no override and no flag's value: a command, mistyped
        if any(c in word for c in "=-+~") or (i and argv[i - 1] in FLAGS_WITH_VALUE):
            continue
        if word in COMMANDS:
            fail(f"the command goes first: bear {word} {' '.join(a for a in argv if a != word)}")
        close = difflib.get_close_matches(word, list(usage.COMMANDS), n=1)
        fail(f"unknown command {word!r}" + (f"; did you mean {close[0]!r}?" if close else "")
             + f" (commands: {', '.join(usage.COMMANDS)})")
    if any(a in ("--help", "-h") for a in argv):
        print(usage.command_help(command))
        return
    argv = [{"--json": "json=true", "--profile": "verify.profile=true"}.get(a, a) for a in argv]
    for flag in ("--cfg", "-c"):
        i = argv.index(flag) if flag in argv else -1
        if i >= 0 and argv[i + 1:i + 2] in (["job"], ["all"]):
            _print_config([*argv[:i], *argv[i + 2:], f"command={command}"])
            return
    # The command goes last: Hydra's argparse wants flags (--multirun, --cfg job) before the overrides.
    overrides = [*argv, f"command={command}"]
    _precheck(overrides)
    sys.argv = [sys.argv[0], *overrides]
    hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
