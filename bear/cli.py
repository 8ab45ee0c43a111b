"""`bear [run|plan|status|verify] [key=value ...]`: a thin Hydra entry point.

The first word picks the command; everything else is Hydra (overrides, --multirun,
--cfg job). Composition and validation errors become one line on stderr and exit code 2
before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bear.config import BearConfig, ConfigError, register, validate

COMMANDS = ("run", "plan", "status", "verify")
log = logging.getLogger("bear")


def conf_dir() -> str:
    """conf/ beside the package when installed, else the repository's top-level conf/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise FileNotFoundError("bear's conf/ directory is missing from this installation")


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


def _to_config(dcfg: DictConfig) -> BearConfig:
    try:
        cfg = OmegaConf.to_object(dcfg)
    except Exception as exc:
        fail(f"invalid config: {one_line(exc)}")
    try:
        validate(cfg)
    except ConfigError as exc:
        fail(f"invalid config: {exc}")
    return cfg


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
    from bear import commands
    from bear.runner import RunError
    from bear.sink import SinkError

    cfg = _to_config(dcfg)
    setup_logging(cfg)
    hc = HydraConfig.get()
    base_dir = hc.runtime.output_dir if hc.mode == RunMode.MULTIRUN else None
    try:
        code = commands.dispatch(cfg, base_dir)
    except RunError as exc:
        fail(str(exc), exc.exit_code)
    except SinkError as exc:
        fail(str(exc), 1)
    if code:
        sys.exit(code)


def _precheck(overrides: list[str]) -> None:
    """Compose once up front (single runs) so a bad override is one line and exit 2, not a traceback."""
    if any(a.startswith("-") for a in overrides):
        return
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            dcfg = compose(config_name="config", overrides=overrides)
    except Exception as exc:
        fail(f"invalid config: {one_line(exc)}")
    _to_config(dcfg)


def _print_config(overrides: list[str]) -> None:
    """`--cfg job`: the composed config as YAML, with credentials masked (Hydra's own printer would show them)."""
    from bear.state import redacted

    _precheck(overrides)
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        dcfg = compose(config_name="config", overrides=overrides)
    print(OmegaConf.to_yaml(redacted(_to_config(dcfg))), end="")


def main() -> None:
    register()
    argv = sys.argv[1:]
    command = "run"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    argv = ["verify.json=true" if a == "--json" else a for a in argv]
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
