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


def test_config_rows_bold_the_fields_that_differ() -> None:
    from dataclasses import dataclass, replace

    import pytest

    from esser_lab.config import config_rows

    @dataclass(frozen=True)
    class Toy:
        width: int = 64
        lr: float = 1e-3

    rows = config_rows(Toy(), replace(Toy(), width=8), "paper (code)")
    assert rows == [
        "| field | paper (code) | this run |",
        "|---|---|---|",
        "| `width` | 64 | **8** |",
        "| `lr` | 0.001 | 0.001 |",
    ]
    with pytest.raises(TypeError, match="same dataclass"):
        config_rows(Toy(), {"width": 8})
