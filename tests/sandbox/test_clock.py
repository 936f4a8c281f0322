"""The sandbox's clocks and time-scale parsing (no server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.sandbox import ManualClock, SandboxConfig, SystemClock
from reconciler.sandbox.clock import parse_time_scale


def test_manual_clock_moves_only_forward_when_told() -> None:
    clock = ManualClock(start=1000.0, scale=5)
    assert (clock.now(), clock.scale) == (1000.0, 5)
    assert clock.now() == 1000.0  # reading does not move it
    assert clock.advance(2.5) == 1002.5 == clock.now()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_system_clock_is_real_time() -> None:
    before = time.time()
    now = SystemClock(scale=3).now()
    assert before <= now <= time.time()


@pytest.mark.parametrize(("text", "scale"), [("1", 1.0), (" 20 ", 20.0), ("0.5", 0.5)])
def test_parse_time_scale(text: str, scale: float) -> None:
    assert parse_time_scale(text) == scale


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "is not a number"),
        ("", "is not a number"),
        ("0", "finite number > 0"),
        ("-1", "finite number > 0"),
        ("inf", "finite number > 0"),
        ("nan", "finite number > 0"),
    ],
)
def test_bad_time_scales_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time_scale(text)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan")])
def test_config_refuses_bad_time_scales(tmp_path: Path, scale: float) -> None:
    with pytest.raises(ValueError, match="finite number > 0"):
        SandboxConfig(data_dir=tmp_path, time_scale=scale)


def test_config_takes_the_scale_from_its_clock(tmp_path: Path) -> None:
    clock = ManualClock(scale=7)
    assert SandboxConfig(data_dir=tmp_path, clock=clock).time_scale == 7
    with pytest.raises(ValueError, match="disagrees"):
        SandboxConfig(data_dir=tmp_path, clock=clock, time_scale=3)
