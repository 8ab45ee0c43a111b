"""Shared fixtures: real Hydra composition, a real local Ray per module, temporary lakes."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bear.cli import conf_dir
from bear.config import BearConfig, register

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
register()


def compose_cfg(*overrides: str, smoke: bool = True) -> BearConfig:
    """The config `bear [overrides]` would run, composed by Hydra from conf/."""
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        dcfg = compose(config_name="config", overrides=[*(["+preset=smoke"] if smoke else []), *overrides])
    return OmegaConf.to_object(dcfg)


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with two CPUs, shared by the tests of a module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
