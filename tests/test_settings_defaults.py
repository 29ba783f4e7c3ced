"""luigi.cfg and the code agree: a setting the shipped luigi.cfg gives has that value as its
default in ``pipeline.config`` too, so a run from a directory without the file (or with a
luigi.cfg of the user's own that leaves the key out) gets the documented default."""

from __future__ import annotations

import configparser
import inspect

import luigi

from pipeline import config
from tests.conftest import PROJECT


def _settings_classes() -> list[type[luigi.Config]]:
    return [cls for _, cls in inspect.getmembers(config, inspect.isclass)
            if issubclass(cls, luigi.Config) and cls.__module__ == config.__name__]


def test_every_setting_of_the_shipped_luigi_cfg_is_also_the_code_default() -> None:
    shipped = configparser.RawConfigParser()
    assert shipped.read(PROJECT / "luigi.cfg")
    compared, differing = 0, []
    for cls in _settings_classes():
        section = cls.get_task_family()
        for name, parameter in cls.get_params():
            if not shipped.has_option(section, name):
                continue
            compared += 1
            value = parameter.parse(shipped.get(section, name))
            if value != parameter._default:
                differing.append(f"[{section}] {name}: luigi.cfg {value!r}, "
                                 f"code {parameter._default!r}")
    # The file sets most of the pipeline's settings: a check of none would prove nothing.
    assert compared >= 30
    assert differing == []
