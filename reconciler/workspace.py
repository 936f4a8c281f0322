"""The workspace: specs + state backend + provider for one command invocation.

Commands that talk to the remote open a workspace from their spec PATHs. It decides the
target from the Provider document — or, without one, the embedded sandbox (a sandbox server
run inside this process on a loopback port, with its data under ``.reconciler/sandbox``
beside the specs) — and says so on the first line of every command's output. The provider
it builds (:meth:`Workspace.provider`) follows the document's ``type``: Mistral's API (also
for ``sandbox``), or OpenAI's (``openai``; with neither ``endpoint`` nor ``api_key``, an
embedded sandbox in its OpenAI dialect, with its own data under
``.reconciler/sandbox-openai``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from reconciler.engine.backends import open_backend
from reconciler.engine.state_model import StateBackend
from reconciler.errors import InvalidValueError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import Provider as ProviderDoc
from reconciler.spec.models import SecretRef
from reconciler.spec.resolved import SpecSet
from reconciler.spec.secrets import resolve_secret

if TYPE_CHECKING:
    from reconciler.providers.base import Provider
    from reconciler.sandbox.server import EmbeddedSandbox

MISTRAL_ENDPOINT = "https://api.mistral.ai"
OPENAI_ENDPOINT = "https://api.openai.com/v1"
"""OpenAI's official endpoint: where an ``openai`` Provider with an ``api_key`` and no
``endpoint`` points (with neither, it uses an embedded sandbox in the OpenAI dialect)."""
DEFAULT_MISTRAL_KEY = SecretRef(env="MISTRAL_API_KEY")
DEFAULT_OPENAI_KEY = SecretRef(env="OPENAI_API_KEY")
DEFAULT_KEYS = {"mistral": DEFAULT_MISTRAL_KEY, "openai": DEFAULT_OPENAI_KEY}
"""Provider type → the key reference used when the Provider document names none."""
SANDBOX_TIME_SCALE_ENV = "RECONCILER_SANDBOX_TIME_SCALE"
"""Environment variable: time scale of the embedded sandbox (default 1; higher is faster)."""


class Workspace:
    """Specs, state backend and (lazily) the provider of the target.

    Attributes:
        specs: the loaded specs.
        backend: the state backend the Provider names (file by default).
        target: one-line description of where commands act, e.g.
            ``embedded sandbox (.reconciler/sandbox)``.
        cache_dir: where prepared datasets and the hash cache live.
    """

    def __init__(self, specs: SpecSet, *, parallelism: int | None = None) -> None:
        self.specs = specs
        provider = specs.provider.doc if specs.provider else None
        self.backend: StateBackend = open_backend(
            provider.state if provider else None,
            specs.provider.base_dir if specs.provider else specs.root,
            resolve_secret=self._resolve_provider_secret,
        )
        self.cache_dir = specs.root / ".reconciler" / "cache"
        self.parallelism = parallelism or (provider.parallelism if provider else 8)
        self._client: Provider | None = None
        self._sandbox: EmbeddedSandbox | None = None
        if provider is None:
            self.target = f"embedded sandbox ({self._relative(self.sandbox_dir)})"
        elif provider.type == "mistral":
            self.target = f"mistral {provider.endpoint or MISTRAL_ENDPOINT}"
        elif provider.type == "openai":
            # Nothing leaves the machine until the document says where or with which key.
            self.target = (
                f"openai {provider.endpoint or OPENAI_ENDPOINT}"
                if provider.endpoint or provider.api_key
                else f"embedded sandbox, openai dialect ({self._relative(self.sandbox_dir)})"
            )
        elif provider.endpoint:
            self.target = f"sandbox {provider.endpoint}"
        else:
            self.target = f"embedded sandbox ({self._relative(self.sandbox_dir)})"

    @property
    def provider_type(self) -> str:
        """The Provider document's ``type`` (``sandbox`` without one)."""
        return self.specs.provider.doc.type if self.specs.provider else "sandbox"

    @property
    def sandbox_dir(self) -> Path:
        """Data directory of the embedded sandbox (one per dialect: a directory holds one
        dialect's objects)."""
        name = "sandbox-openai" if self.provider_type == "openai" else "sandbox"
        return self.specs.root / ".reconciler" / name

    @property
    def embedded(self) -> bool:
        """Whether the target is the in-process sandbox."""
        return self.target.startswith("embedded sandbox")

    def _relative(self, path: Path) -> str:
        try:
            return os.path.relpath(path)
        except ValueError:
            return str(path)

    def _resolve_provider_secret(self, ref: SecretRef) -> str:
        base = self.specs.provider.base_dir if self.specs.provider else self.specs.root
        return resolve_secret(ref, base, purpose="Provider state dsn")

    def client(self) -> Provider:
        """The provider of the target (an alias of :meth:`provider`)."""
        return self.provider()

    def provider(self) -> Provider:
        """The provider of the target, built from the Provider document's ``type`` (starting
        the embedded sandbox if needed)."""
        if self._client is not None:
            return self._client
        provider = self.specs.provider.doc if self.specs.provider else None
        openai = self.provider_type == "openai"
        rate_limit = provider.rate_limit if provider else None
        if self.embedded:
            from reconciler.sandbox.app import SandboxConfig
            from reconciler.sandbox.clock import parse_time_scale
            from reconciler.sandbox.server import EmbeddedSandbox

            key = secrets.token_hex(20)
            raw_scale = os.environ.get(SANDBOX_TIME_SCALE_ENV, "").strip() or "1"
            try:
                scale = parse_time_scale(raw_scale)
            except ValueError as exc:
                raise InvalidValueError(
                    f"environment variable {SANDBOX_TIME_SCALE_ENV}: {exc}; or unset it"
                ) from None
            self._sandbox = EmbeddedSandbox(
                SandboxConfig(
                    data_dir=self.sandbox_dir,
                    api_key=key,
                    time_scale=scale,
                    dialect="openai" if openai else "mistral",
                )
            )
            self._sandbox.start()
            base_url = self._sandbox.base_url
            api_key: str | None = key
        else:
            assert provider is not None and self.specs.provider is not None
            base_url = provider.endpoint or (OPENAI_ENDPOINT if openai else MISTRAL_ENDPOINT)
            ref = provider.api_key or DEFAULT_KEYS.get(provider.type)
            api_key = (
                resolve_secret(ref, self.specs.provider.base_dir, purpose="Provider api_key")
                if ref is not None
                else None
            )
        self._client = _build_provider(
            provider, base_url, api_key, rate_limit=rate_limit, concurrency=self.parallelism
        )
        return self._client

    def close(self) -> None:
        """Close the client, stop the embedded sandbox, release backend connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None
        self.backend.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _build_provider(
    doc: ProviderDoc | None,
    base_url: str,
    api_key: str | None,
    *,
    rate_limit: float | None,
    concurrency: int,
) -> Provider:
    """The provider for the document's ``type`` (Mistral's API without a document)."""
    if doc is not None and doc.type == "openai":
        from reconciler.providers.openai import OpenAIProvider

        return OpenAIProvider(
            base_url,
            api_key,
            organization=doc.organization,
            project=doc.project,
            rate_limit=rate_limit,
            concurrency=concurrency,
        )
    from reconciler.providers.mistral import MistralProvider

    return MistralProvider(base_url, api_key, rate_limit=rate_limit, concurrency=concurrency)


def open_workspace(paths: Sequence[str | Path], *, parallelism: int | None = None) -> Workspace:
    """Load the specs at ``paths`` (default: the current directory) into a workspace."""
    specs = load_specs(list(paths) or [Path.cwd()])
    return Workspace(specs, parallelism=parallelism)
