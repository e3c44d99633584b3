"""pyml.core.timing: phases add up, in the order they first ran, also when they raise."""

from __future__ import annotations

import re
import time

import pytest

from pyml.core.timing import Phases


def test_phases_add_up_in_order() -> None:
    phases = Phases()
    for _ in range(2):
        with phases("read"):
            time.sleep(0.01)
        with phases("write"):
            pass
    assert list(phases.seconds) == ["read", "write"]
    assert phases.seconds["read"] >= 0.02
    assert phases.total() >= phases.seconds["read"] + phases.seconds["write"]
    assert re.fullmatch(r"read \d\.\d{3} s, write \d\.\d{3} s, total \d\.\d{3} s", phases.text())


def test_a_phase_that_raises_is_counted() -> None:
    phases = Phases()
    with pytest.raises(ZeroDivisionError), phases("fit"):
        time.sleep(0.01)
        1 / 0  # noqa: B018
    assert phases.seconds["fit"] >= 0.01
