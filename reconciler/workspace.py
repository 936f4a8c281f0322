"""The workspace: specs + state backend + provider for one command invocation.

Commands that talk to the remote open a workspace from their spec PATHs. It decides the
target from the Provider document — or, without one, the embedded sandbox (a sandbox server
run inside this process on a loopback port, with its data under ``.reconciler/sandbox``
beside the specs) — and says so on the first line of every command's output. The provider
it builds is the Mistral API client for ``mistral`` and ``sandbox``, and a Ray cluster with
its storage for ``ray``.
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
from reconciler.spec.models import SecretRef
from reconciler.spec.resolved import SpecSet
from reconciler.spec.secrets import resolve_secret

if TYPE_CHECKING:
    from reconciler.providers.base import Provider
    from reconciler.sandbox.server import EmbeddedSandbox

MISTRAL_ENDPOINT = "https://api.mistral.ai"
DEFAULT_MISTRAL_KEY = SecretRef(env="MISTRAL_API_KEY")
SANDBOX_TIME_SCALE_ENV = "RECONCILER_SANDBOX_TIME_SCALE"
"""Environment variable: time scale of the embedded sandbox (default 1; higher is faster)."""


class Workspace:
    """Specs, state backend and (lazily) an API client.

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
        elif provider.type == "ray":
            self.target = f"ray {provider.address} (storage {self.ray_storage})"
        elif provider.type == "mistral":
            self.target = f"mistral {provider.endpoint or MISTRAL_ENDPOINT}"
        elif provider.endpoint:
            self.target = f"sandbox {provider.endpoint}"
        else:
            self.target = f"embedded sandbox ({self._relative(self.sandbox_dir)})"

    @property
    def sandbox_dir(self) -> Path:
        """Data directory of the embedded sandbox."""
        return self.specs.root / ".reconciler" / "sandbox"

    @property
    def ray_storage(self) -> str:
        """A ``ray`` Provider's storage: a URI as written, a local path made absolute against
        the Provider's file (the cluster must reach it under that same path). Like the
        address, it is where the operator's cluster lives, not a file of the workspace."""
        loaded = self.specs.provider
        assert loaded is not None and loaded.doc.storage is not None
        storage = loaded.doc.storage
        if "://" in storage:
            return storage
        return str((loaded.base_dir / storage).resolve())

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
        """The provider of the target (starting the embedded sandbox if needed)."""
        if self._client is not None:
            return self._client
        from reconciler.providers.mistral import MistralProvider

        provider = self.specs.provider.doc if self.specs.provider else None
        if provider is not None and provider.type == "ray":
            self._client = self._ray_provider()
            return self._client
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
                SandboxConfig(data_dir=self.sandbox_dir, api_key=key, time_scale=scale)
            )
            self._sandbox.start()
            base_url = self._sandbox.base_url
            api_key: str | None = key
        else:
            assert provider is not None and self.specs.provider is not None
            base_url = provider.endpoint or MISTRAL_ENDPOINT
            ref = provider.api_key or (DEFAULT_MISTRAL_KEY if provider.type == "mistral" else None)
            api_key = (
                resolve_secret(ref, self.specs.provider.base_dir, purpose="Provider api_key")
                if ref is not None
                else None
            )
        self._client = MistralProvider(
            base_url, api_key, rate_limit=rate_limit, concurrency=self.parallelism
        )
        return self._client

    def _ray_provider(self) -> Provider:
        """The Ray cluster of a ``type: ray`` Provider, with its storage and job settings."""
        from reconciler.providers.ray import RayProvider

        loaded = self.specs.provider
        assert loaded is not None
        doc = loaded.doc
        assert doc.address is not None  # the Provider model requires it for type: ray
        token = (
            resolve_secret(doc.api_key, loaded.base_dir, purpose="Provider api_key (Ray token)")
            if doc.api_key is not None
            else None
        )
        return RayProvider(
            doc.address,
            self.ray_storage,
            token=token,
            resources=doc.resources,
            python=doc.python,
            runtime_env=doc.runtime_env,
            price_per_gpu_hour=doc.price_per_gpu_hour,
        )

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


def open_workspace(paths: Sequence[str | Path], *, parallelism: int | None = None) -> Workspace:
    """Load the specs at ``paths`` (default: the current directory) into a workspace."""
    specs = load_specs(list(paths) or [Path.cwd()])
    return Workspace(specs, parallelism=parallelism)
