"""Pictures: real PNG/SVG files on disk, terminal plots and sparklines."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from observe_jobs import T0, checkpoint, curve, job

from reconciler.errors import ReconcilerError
from reconciler.observe.plot import plot_jobs, sparkline, sparkline_plot, terminal_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SWEEP = {
    "job.sweep-lr-1e-4": job("SUCCESS", checkpoints=curve()),
    "job.sweep-lr-1e-5": job("RUNNING", job_id="b", checkpoints=curve()[5:]),
}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always follows the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert chunk == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("series", [{"job.one": SWEEP["job.sweep-lr-1e-4"]}, SWEEP])
def test_png_is_a_real_picture(tmp_path: Path, series: dict[str, dict[str, object]]) -> None:
    target = tmp_path / "nested" / "loss.png"
    assert plot_jobs(series, target) == target
    assert target.stat().st_size > 10_000
    assert png_size(target) == (1200, 900)


def test_svg_has_the_curves_and_the_legend(tmp_path: Path) -> None:
    target = tmp_path / "sweep.svg"
    plot_jobs(SWEEP, target, title="lr sweep")
    text = target.read_text()
    assert "<svg" in text
    # One path per curve at least: 2 jobs x (train, valid, accuracy).
    assert text.count("<path") >= 6
    single = tmp_path / "single.svg"
    plot_jobs({"job.one": SWEEP["job.sweep-lr-1e-4"]}, single)
    # The second job adds its three curves (and legend entries) to the picture.
    assert text.count("<path") > single.read_text().count("<path")


def test_job_without_validation_files_still_plots(tmp_path: Path) -> None:
    only_train = job("RUNNING", checkpoints=[checkpoint(10, T0, 1.0), checkpoint(20, T0 + 9, 0.9)])
    target = tmp_path / "train.png"
    plot_jobs({"job.t": only_train}, target)
    assert png_size(target) == (1200, 900)


@pytest.mark.parametrize(
    ("name", "series", "message"),
    [
        ("loss.pdf", SWEEP, "must end in .png or .svg"),
        ("loss.png", {"job.q": job("QUEUED")}, "nothing to plot yet for job.q"),
        ("loss.png", {}, "no job was given"),
    ],
)
def test_plot_errors_say_what_to_do(
    tmp_path: Path, name: str, series: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ReconcilerError, match=message):
        plot_jobs(series, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_unwritable_target_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReconcilerError, match="cannot write the picture"):
        plot_jobs(SWEEP, blocker / "loss.png")


def test_missing_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry makes the import fail exactly as if the package were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReconcilerError, match=r"pip install 'finetune-reconciler\[plot\]'"):
        plot_jobs(SWEEP, tmp_path / "x.png")


def test_terminal_plot_with_plotext_has_the_labels() -> None:
    text = terminal_plot(SWEEP, width=90, height=20)
    assert "job.sweep-lr-1e-4 train" in text
    assert "job.sweep-lr-1e-5 valid" in text
    assert "valid mean token accuracy" in text
    assert "step" in text
    assert "\x1b[" not in text


def test_terminal_plot_falls_back_to_sparklines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotext", None)
    text = terminal_plot(SWEEP, width=100)
    assert text == sparkline_plot(SWEEP, 100)
    lines = text.splitlines()
    assert len(lines) == 6  # 2 jobs x 3 metrics
    assert lines[0].startswith("job.sweep-lr-1e-4  train_loss")
    assert "1.2000 -> 0.8400 (step 100)" in lines[0]
    assert "█" in lines[0] and "▁" in lines[0]


def test_sparkline_shape() -> None:
    assert sparkline([3.0, 2.0, 1.0], 10) == "█▅▁"
    assert sparkline([1.0, 1.0], 10) == "▅▅"
    assert len(sparkline([float(i) for i in range(100)], 20)) == 20
    assert sparkline([], 5) == ""
