"""esser_lab.config: configs from plain (JSON) dicts."""

from dataclasses import dataclass

import pytest

from esser_lab.config import config_from_dict


@dataclass(frozen=True)
class Demo:
    width: int = 8
    betas: tuple[float, float] = (0.5, 0.9)


def test_lists_become_tuples_and_round_trip():
    config = config_from_dict(Demo, {"width": 4, "betas": [0.1, 0.2]})
    assert config == Demo(4, (0.1, 0.2)) and hash(config)


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match=r"unknown Demo field\(s\) \['widht'\]"):
        config_from_dict(Demo, {"widht": 4})
