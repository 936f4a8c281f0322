"""``reconciler sandbox``: run the local fine-tuning API server in the foreground.

It speaks the Mistral API, or the OpenAI one with ``--dialect openai``. The server itself
lives in :mod:`reconciler.sandbox` (imported only when the command runs, so other commands
start fast). Bad flag values end with a clear message and exit 1, and so do listening beyond
loopback without an API key and a data directory that holds the other dialect's objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli.consoles import fail, stderr

API_KEY_ENV = "RECONCILER_SANDBOX_API_KEY"
TIME_SCALE_ENV = "RECONCILER_SANDBOX_TIME_SCALE"

HELP = (
    "Run the sandbox: a local Mistral or OpenAI fine-tuning API that NEVER trains a model.\n\n"
    "It serves the Mistral files and fine-tuning API (upload, jobs, start, cancel, fine-tuned "
    "models), or with --dialect openai the OpenAI files, fine-tuning and models API (jobs with "
    "metadata, events, checkpoints, pause, resume, cancel). Jobs move through their statuses "
    "on a simulated clock and report made-up, plausible losses. Data persists in --data-dir "
    "(SQLite + uploaded files) across restarts."
)

commands = typer.Typer()
"""``sandbox``."""


@commands.command("sandbox", help=HELP)
def sandbox_command(
    host: Annotated[
        str,
        typer.Option(
            help="Interface to listen on. Anything but a loopback address needs --api-key."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            help="Directory for the database and uploaded files (created if missing).",
        ),
    ] = Path(".reconciler/sandbox"),
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=API_KEY_ENV,
            show_envvar=True,
            help="Require this bearer token on every /v1 request (401 otherwise). Required "
            "unless --host is a loopback address; an empty key is an error.",
        ),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            envvar=TIME_SCALE_ENV,
            show_envvar=True,
            help="Simulated-time speed: 10 makes jobs progress ten times faster. At 1 a "
            "10-step job goes from created to SUCCESS in about 4 s.",
        ),
    ] = 1.0,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            help="Inject faults, e.g. '500=0.1,503=0.1,429=0.05,drop=0.05,"
            "timeout_after_commit=0.05,job_failure=0.1,methods=POST'. See docs/sandbox.md.",
        ),
    ] = None,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            help="Token-bucket limit on /v1 requests: '5', '5/s', '300/min'. Over it: 429 "
            "with Retry-After.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of fault decisions and loss curves.")] = 0,
    dialect: Annotated[
        str,
        typer.Option(
            "--dialect",
            help="The API to speak: 'mistral' (Mistral's files and fine-tuning API) or "
            "'openai' (OpenAI's files, fine-tuning and models API). A data directory holds "
            "one dialect's objects.",
        ),
    ] = "mistral",
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Base URL clients reach this server at, used in signed download URLs "
            "(e.g. https://sandbox.example.com). Default: the address each client connected "
            "to; never the request's Host header.",
        ),
    ] = None,
) -> None:
    from reconciler.sandbox import SandboxConfig, parse_faults, parse_rate, serve
    from reconciler.sandbox.clock import check_scale
    from reconciler.sandbox.config import DIALECT_NAMES, check_exposure
    from reconciler.sandbox.store import WrongDialect

    try:
        check_scale(time_scale)
    except ValueError as exc:
        raise fail(f"--time-scale (or {TIME_SCALE_ENV}): {exc}") from None
    if api_key is None and os.environ.get(API_KEY_ENV) is not None:
        api_key = ""  # set but empty, which click reads as unset: refused like --api-key ""
    if api_key is not None and not api_key.strip():
        raise fail(
            f"--api-key (or {API_KEY_ENV}): the API key is empty: give a non-empty key, or "
            "none at all to serve without auth (allowed on a loopback address only)"
        )
    dialect = dialect.strip().lower()
    if dialect not in DIALECT_NAMES:
        raise fail(f"--dialect {dialect!r} is not a dialect: use one of {', '.join(DIALECT_NAMES)}")
    try:
        fault_spec = parse_faults(faults) if faults else None
        rate = parse_rate(rate_limit) if rate_limit else None
        config = SandboxConfig(
            data_dir=data_dir,
            api_key=api_key,
            time_scale=time_scale,
            faults=fault_spec,
            rate_limit=rate,
            seed=seed,
            public_url=public_url,
            dialect=dialect,
        )
        check_exposure(host, config.api_key)
    except ValueError as exc:
        raise fail(f"{exc}") from None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(
            f"cannot create the data directory {data_dir}: {exc.strerror or exc}; "
            "choose another --data-dir"
        ) from None
    auth = "bearer token required" if config.api_key else "no auth (set --api-key to require one)"
    extras = []
    if fault_spec:
        extras.append(f"faults {fault_spec.describe()}")
    if rate:
        extras.append(f"rate limit {rate:g}/s")
    if config.public_url:
        extras.append(f"signed URLs on {config.public_url}")

    def announce(url: str) -> None:
        stderr.print(
            f"Sandbox (never trains a model) on {url}  {config.dialect} API  data: {data_dir}  "
            f"{auth}  time scale {time_scale:g}" + ("  " + "  ".join(extras) if extras else ""),
            markup=False,
        )

    try:
        serve(config, host=host, port=port, announce=announce)
    except WrongDialect as exc:
        raise fail(f"--data-dir: {exc}") from None
    except OSError as exc:
        raise fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port"
        ) from None
    except KeyboardInterrupt:
        # Ctrl-C is how a foreground server is meant to stop: a normal exit.
        stderr.print("Sandbox stopped; its data stays in " + str(data_dir), markup=False)
