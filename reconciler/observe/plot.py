"""Pictures of training metrics: loss curves and token accuracy over steps.

:func:`plot_jobs` writes a PNG or SVG file with matplotlib (two panels: train loss solid and
validation loss dashed per job; validation mean token accuracy per job), for one job or a
matrix sweep to compare. :func:`terminal_plot` draws the same curves as text, with plotext
when it is installed and a built-in unicode sparkline otherwise.

The plotting libraries are an optional extra (``plot``) and are imported only when
a picture is asked for, so the rest of the tool starts fast and works without them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler import install_command
from reconciler.errors import ReconcilerError
from reconciler.observe.progress import metric_series

PLOT_FORMATS = (".png", ".svg")
"""File extensions :func:`plot_jobs` can write."""

_INSTALL_HINT = f"install the plotting extra: {install_command('plot')}"
_SPARKS = "▁▂▃▄▅▆▇█"


def _series(
    series: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """address -> metric -> points; raises when no job has any checkpoint yet."""
    if not series:
        raise ReconcilerError("nothing to plot: no job was given")
    data = {address: metric_series(job) for address, job in sorted(series.items())}
    if not any(points for metrics in data.values() for points in metrics.values()):
        names = ", ".join(data)
        raise ReconcilerError(
            f"nothing to plot yet for {names}: no checkpoint with metrics. The remote reports "
            "metrics every 10% of training; try again once the job is running."
        )
    return data


def plot_jobs(
    series: Mapping[str, Mapping[str, Any]],
    path: Path,
    *,
    title: str | None = None,
) -> Path:
    """Write the loss and accuracy curves of one or more jobs to ``path`` (PNG or SVG).

    Args:
        series: address -> API-shaped job dict (with ``checkpoints``).
        path: output file; its extension (``.png`` / ``.svg``) picks the format.
        title: figure title; default names the job(s).

    Returns:
        ``path``.

    Raises:
        ReconcilerError: unsupported extension, matplotlib missing, no metrics yet, or the
            file cannot be written.
    """
    suffix = path.suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise ReconcilerError(
            f"cannot draw '{path}': the picture's file name must end in .png or .svg"
        )
    data = _series(series)
    try:
        import matplotlib

        # A headless backend: works in CI and over SSH, never opens a window.
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ReconcilerError(f"drawing '{path}' needs matplotlib: {_INSTALL_HINT}") from exc

    fig, (loss_ax, acc_ax) = plt.subplots(2, 1, figsize=(10, 7.5), dpi=120, sharex=True)
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        has_accuracy = False
        for index, (address, metrics) in enumerate(data.items()):
            color = colors[index % len(colors)]
            train = metrics["train_loss"]
            valid = metrics["valid_loss"]
            accuracy = metrics["valid_mean_token_accuracy"]
            if train:
                loss_ax.plot(
                    *zip(*train, strict=True),
                    "-o",
                    color=color,
                    markersize=3,
                    label=f"{address} train",
                )
            if valid:
                loss_ax.plot(
                    *zip(*valid, strict=True),
                    "--s",
                    color=color,
                    markersize=3,
                    label=f"{address} valid",
                )
            if accuracy:
                has_accuracy = True
                acc_ax.plot(
                    *zip(*accuracy, strict=True), "-o", color=color, markersize=3, label=address
                )
        loss_ax.set_ylabel("loss")
        loss_ax.set_title("Loss (train solid, validation dashed)")
        loss_ax.grid(True, alpha=0.3)
        loss_ax.legend(fontsize="small", loc="best")
        acc_ax.set_ylabel("valid mean token accuracy")
        acc_ax.set_xlabel("step")
        acc_ax.set_title("Validation mean token accuracy")
        acc_ax.grid(True, alpha=0.3)
        acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if has_accuracy:
            acc_ax.legend(fontsize="small", loc="best")
        else:
            acc_ax.text(
                0.5,
                0.5,
                "no validation metrics (the job has no validation files)",
                ha="center",
                va="center",
                transform=acc_ax.transAxes,
            )
        names = list(data)
        default_title = (
            f"Fine-tuning metrics: {names[0]}"
            if len(names) == 1
            else f"Fine-tuning metrics: {len(names)} jobs"
        )
        fig.suptitle(title or default_title)
        fig.tight_layout()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, format=suffix[1:])
        except OSError as exc:
            raise ReconcilerError(
                f"cannot write the picture '{path}': {exc.strerror or exc}. "
                "Check that the directory exists and is writable."
            ) from exc
    finally:
        plt.close(fig)
    return path


def sparkline(values: list[float], width: int) -> str:
    """``values`` as a unicode sparkline of at most ``width`` characters (resampled)."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        # Keep the first and last points: the start and end of training matter most.
        picks = (
            [round(i * (len(values) - 1) / (width - 1)) for i in range(width)]
            if width > 1
            else [-1]
        )
        values = [values[i] for i in picks]
    low, high = min(values), max(values)
    span = high - low
    if span <= 0 or math.isnan(span):
        return _SPARKS[len(_SPARKS) // 2] * len(values)
    top = len(_SPARKS) - 1
    return "".join(_SPARKS[round((v - low) / span * top)] for v in values)


def sparkline_plot(series: Mapping[str, Mapping[str, Any]], width: int = 80) -> str:
    """Text fallback of :func:`terminal_plot`: one sparkline per job and metric, with the
    first and last value, e.g. ``job.a  train_loss  ▇▅▄▂▁  0.9143 -> 0.8161``."""
    data = _series(series)
    label_width = max(len(a) for a in data)
    spark_width = max(width - label_width - 46, 8)
    lines = []
    for address, metrics in data.items():
        for name, points in metrics.items():
            if not points:
                continue
            values = [v for _, v in points]
            lines.append(
                f"{address:<{label_width}}  {name:<25} {sparkline(values, spark_width)}  "
                f"{values[0]:.4f} -> {values[-1]:.4f} (step {points[-1][0]})"
            )
    return "\n".join(lines)


def terminal_plot(
    series: Mapping[str, Mapping[str, Any]], width: int = 100, height: int = 24
) -> str:
    """The loss curves (and accuracy) of one or more jobs as text for a terminal.

    Uses plotext when installed (a line chart of train/valid loss per job, then one of the
    accuracy when reported), else :func:`sparkline_plot`. The text has no colour codes: it
    may go to a log or a file.
    """
    data = _series(series)
    try:
        import plotext
    except ImportError:
        return sparkline_plot(series, width)
    charts = []
    for metric_names, chart_title in (
        (("train_loss", "valid_loss"), "loss (train, valid)"),
        (("valid_mean_token_accuracy",), "valid mean token accuracy"),
    ):
        lines: list[tuple[str, list[int], list[float]]] = []
        for address, metrics in data.items():
            for name in metric_names:
                points = metrics[name]
                if points:
                    label = address if len(metric_names) == 1 else f"{address} {name[:5]}"
                    lines.append((label, [s for s, _ in points], [v for _, v in points]))
        if not lines:
            continue
        try:
            chart = _plotext_chart(plotext, lines, chart_title, width, height)
        except Exception:  # noqa: BLE001 - any plotext failure: the text fallback still works
            return sparkline_plot(series, width)
        charts.append(chart)
    return "\n".join(charts)


def _plotext_chart(
    plotext: Any,
    lines: list[tuple[str, list[int], list[float]]],
    title: str,
    width: int,
    height: int,
) -> str:
    """One plotext line chart as uncoloured text; handles the 5.x and 6.x APIs."""
    if hasattr(plotext, "plot"):  # plotext 5.x: module-level matplotlib-like functions
        plotext.clear_figure()
        plotext.plotsize(width, height)
        for label, xs, ys in lines:
            plotext.plot(xs, ys, label=label)
        plotext.title(title)
        plotext.xlabel("step")
        text = str(plotext.build())
        plotext.clear_figure()
    else:  # plotext 6.x: an explicit figure with signals
        fig = plotext.figure
        fig.clear()
        fig.plot_size(width, height)
        for label, xs, ys in lines:
            signal = fig.signal(xs, ys)
            signal.label(label)
            signal.lines()
            fig.draw(signal)
        fig.title(title)
        fig.label("step", axis="x")
        text = str(fig.build())
        fig.clear()
    return str(plotext.uncolorize(text))
