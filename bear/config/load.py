"""The one way a config is made: compose `conf/` with overrides, type it, validate it, resolve its paths.

The CLI, the scripts and the tests all call `load_config` (the CLI's Hydra entry point calls
`to_config` on what Hydra composed). After this edge a `BearConfig` is complete and is never
changed: a relative `sink.root` is already absolute (against the working directory, or the
job folder of a Hydra sweep), so every process that opens the sink opens the same lake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from bear.config.schema import BearConfig, SinkConfig, register
from bear.config.validate import validate


def conf_dir() -> str:
    """conf/ beside the package when installed (`bear/conf`), else the repository's top-level conf/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise FileNotFoundError("bear's conf/ directory is missing from this installation")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """conf/config.yaml with these Hydra overrides (raises Hydra's and OmegaConf's own errors)."""
    register()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def resolved_sink(sink: SinkConfig, base_dir: str | None = None) -> SinkConfig:
    """The sink settings every process can use as they are: an absolute local root (a relative one against
    `base_dir`, else the working directory), an absolute key-file path, and the GCS endpoint an emulator set
    with STORAGE_EMULATOR_HOST (then accessed anonymously)."""
    if sink.kind == "local":
        root = Path(sink.root)
        if not root.is_absolute() and base_dir is not None:
            root = Path(base_dir) / root
        return dataclasses.replace(sink, root=str(root.resolve()))
    endpoint, token = sink.endpoint, sink.token
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if not endpoint and emulator:
        endpoint = emulator if emulator.startswith("http") else f"http://{emulator}"
        token = "anon"
    if token not in ("google_default", "anon"):
        token = str(Path(token).expanduser().absolute())
    return dataclasses.replace(sink, endpoint=endpoint, token=token)


RELATIVE_DAYS = {"today": 0, "yesterday": 1}  # run.end words: days before the current UTC date


def resolved_end(end: str, now: dt.datetime | None = None) -> str:
    """run.end as a date: `today` and `yesterday` become the UTC date they stand for now, once, at load, so a run
    that crosses midnight keeps one end and its plan records the date (a daily refresh is `bear run.end=today`)."""
    if end not in RELATIVE_DAYS:
        return end
    now = now or dt.datetime.now(dt.UTC)
    return (now.date() - dt.timedelta(days=RELATIVE_DAYS[end])).isoformat()


def to_config(dcfg: DictConfig, base_dir: str | None = None) -> BearConfig:
    """A composed config as the typed, validated, resolved object the rest of bear reads."""
    cfg = OmegaConf.to_object(dcfg)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, end=resolved_end(str(cfg.run.end))))
    validate(cfg)
    return dataclasses.replace(cfg, sink=resolved_sink(cfg.sink, base_dir))


def load_config(overrides: Sequence[str] = (), base_dir: str | None = None) -> BearConfig:
    """The config `bear <overrides>` runs: composed, typed, validated and resolved."""
    return to_config(compose_config(overrides), base_dir)
