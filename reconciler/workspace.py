"""The workspace: specs + state backend + provider for one command invocation.

Commands that talk to the remote open a workspace from their spec PATHs. It decides the
target from the Provider document — or, without one, the embedded sandbox (a sandbox server
run inside this process on a loopback port, with its data under ``.reconciler/sandbox``
beside the specs) — and says so on the first line of every command's output. The provider
it builds (:meth:`Workspace.provider`) follows the document's ``type``: Mistral's API (also
for ``sandbox``), or OpenAI's (``openai``; with neither ``endpoint`` nor ``api_key``, an
embedded sandbox in its OpenAI dialect, with its own data under
``.reconciler/sandbox-openai``).

Opening a workspace first holds the specs against the operator's trust settings
(:func:`check_trust`): the Provider's endpoint, every secret reference and every dataset path.
Anything refused stops the command before a file is read or a request is sent.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from reconciler.engine.backends import open_backend
from reconciler.engine.state_model import StateBackend
from reconciler.errors import InvalidValueError, Location, Problem, SecretError, SpecError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import Provider as ProviderDoc
from reconciler.spec.models import SecretRef
from reconciler.spec.resolved import LoadedDocument, SpecSet
from reconciler.spec.secrets import check_secret_ref
from reconciler.spec.trust import ENDPOINTS_ENV, OFFICIAL_ENDPOINTS, TrustSettings, parse_endpoint

if TYPE_CHECKING:
    from reconciler.providers.base import Provider
    from reconciler.sandbox.server import EmbeddedSandbox

MISTRAL_ENDPOINT = OFFICIAL_ENDPOINTS["mistral"]
OPENAI_ENDPOINT = OFFICIAL_ENDPOINTS["openai"]
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
        check_trust(specs)
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
        if self.specs.provider is None:  # no Provider, no postgres backend: never reached
            raise SecretError("a state backend secret needs a Provider document")
        return self.specs.provider.resolve_secret("state", "dsn", ref=ref)

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
            ref = _provider_key_ref(self.specs.provider)
            api_key = (
                self.specs.provider.resolve_secret("api_key", ref=ref) if ref is not None else None
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


def _provider_key_ref(provider: LoadedDocument[ProviderDoc]) -> SecretRef | None:
    """The Provider's key reference: as written, else the default of its type (for openai,
    only once it points at an endpoint: without one it is the embedded sandbox)."""
    doc = provider.doc
    if doc.api_key is not None or (doc.type == "openai" and not doc.endpoint):
        return doc.api_key
    return DEFAULT_KEYS.get(doc.type)


def check_trust(specs: SpecSet) -> None:
    """Refuse what the operator's trust settings do not allow, before anything is read or sent.

    Checks the Provider's endpoint (:meth:`~reconciler.spec.trust.TrustSettings.endpoint_refusal`),
    every secret reference (allowed names and files, files inside the workspace) and every
    dataset path (inside the workspace, regular files or directories). All refusals are
    reported at once, each at the spec line that asks for it.

    Raises:
        SpecError: something is refused.
        InvalidValueError: a trust setting in the environment is malformed.
    """
    settings = TrustSettings.from_environ()
    problems: list[Problem] = []
    provider = specs.provider
    if provider is not None and provider.doc.endpoint:
        endpoint = provider.doc.endpoint
        reason = settings.endpoint_refusal(endpoint, provider.doc.type)
        if reason is not None:
            parsed = parse_endpoint(endpoint)
            problems.append(
                Problem(
                    "endpoint-not-allowed",
                    f"endpoint {endpoint} is not allowed: {reason}; nothing was sent",
                    provider.locate("endpoint"),
                    subject=provider.subject,
                    hint=(
                        f"only if the operator trusts it: add {parsed.origin} to {ENDPOINTS_ENV} "
                        "(comma-separated) in the environment of the command, not in a spec"
                        if parsed
                        else "write the endpoint as scheme://host[:port][/path]"
                    ),
                )
            )
    for loaded, at, ref in _secret_refs(specs):
        try:
            check_secret_ref(ref, loaded.base_dir, purpose=".".join(at), root=loaded.workspace_root)
        except SecretError as exc:
            problems.append(
                Problem("secret-not-allowed", str(exc), loaded.locate(*at), subject=loaded.subject)
            )
    for dataset in specs.datasets.values():
        for source in dataset.doc.sources:
            try:
                dataset.resolve_path(source)
            except SpecError as exc:
                problems.extend(exc.problems)
    if problems:
        problems.sort(key=lambda p: p.location or Location(""))
        raise SpecError(
            problems, summary="refused by the operator's trust settings (see SECURITY.md)"
        )


def _secret_refs(
    specs: SpecSet,
) -> list[tuple[LoadedDocument[Any], tuple[str, ...], SecretRef]]:
    """Every secret reference the specs make: (document, field path, reference)."""
    found: list[tuple[LoadedDocument[Any], tuple[str, ...], SecretRef]] = []
    if specs.provider is not None:
        key = _provider_key_ref(specs.provider)
        if key is not None:
            found.append((specs.provider, ("api_key",), key))
        dsn = specs.provider.doc.state.dsn
        if dsn is not None:
            found.append((specs.provider, ("state", "dsn"), dsn))
    for integration in specs.integrations.values():
        if integration.doc.api_key is not None:  # openai's integrations carry none
            found.append((integration, ("api_key",), integration.doc.api_key))
    return found


def _check_spec_paths(paths: Sequence[Path]) -> None:
    """Every PATH must be a directory of specs or a spec file (not a device, FIFO, socket)."""
    problems = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue  # a missing path: the loader says so in its words
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            problems.append(
                Problem(
                    "not-a-spec-path",
                    "neither a directory of specs nor a spec file",
                    Location(str(path)),
                    hint="name the directory that holds your specs, or a .yaml file",
                )
            )
    if problems:
        raise SpecError(problems, summary="nothing to load")


def open_workspace(paths: Sequence[str | Path], *, parallelism: int | None = None) -> Workspace:
    """Load the specs at ``paths`` (default: the current directory) into a workspace.

    Raises:
        SpecError: a PATH is not a directory or a regular file (``/dev/null``, a FIFO), the
            specs are invalid, or the operator's trust settings refuse something they ask for.
    """
    targets = [Path(p) for p in paths] or [Path.cwd()]
    _check_spec_paths(targets)
    specs = load_specs(targets)
    return Workspace(specs, parallelism=parallelism)
