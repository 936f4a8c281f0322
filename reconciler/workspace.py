"""The workspace: specs + state backend + provider for one command invocation.

Commands that talk to the remote open a workspace from their spec PATHs. Its root is found
like git finds a repository (:mod:`reconciler.spec.root`); the state is
``ROOT/.reconciler/state.json`` unless the Provider's ``state`` section says otherwise. It
decides the target from the Provider document — or, without one, the embedded sandbox (a
sandbox server run inside this process on a loopback port, with its data under
``ROOT/.reconciler/sandbox``) — and every command says both on its first line
(:attr:`Workspace.headline`). The provider it builds (:meth:`Workspace.provider`) follows the
document's ``type``: Mistral's API (also for ``sandbox``), OpenAI's (``openai``; with
neither ``endpoint`` nor ``api_key``, an embedded sandbox in its OpenAI dialect, with its own
data under ``ROOT/.reconciler/sandbox-openai``), or a Ray cluster and its storage (``ray``).

Opening a workspace first holds the specs against the operator's trust settings
(:func:`check_trust`): the Provider's endpoint (a ray Provider's ``address``) and storage,
every secret reference and every dataset path. Anything refused stops the command before a
file is read or a request is sent.

The state is bound to its target (:class:`~reconciler.engine.state_model.StateTarget`):
:meth:`Workspace.read_state` refuses a state recorded for another remote (for ray, another
address or storage) unless the move is intended (``--rebind``), and writes record the target.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.closing import Closing
from reconciler.errors import (
    InvalidValueError,
    Location,
    Problem,
    SecretError,
    SpecError,
    StateError,
)
from reconciler.spec.loader import load_specs
from reconciler.spec.models import Provider as ProviderDoc
from reconciler.spec.models import SecretRef
from reconciler.spec.resolved import LoadedDocument, SpecSet
from reconciler.spec.root import MARKER_FILE, STATE_DIR, RootDiscovery
from reconciler.spec.secrets import check_secret_ref
from reconciler.spec.trust import (
    ENDPOINTS_ENV,
    OFFICIAL_ENDPOINTS,
    STORAGE_ENV,
    TrustSettings,
    local_storage_path,
    parse_endpoint,
)

if TYPE_CHECKING:
    from reconciler.engine.state_model import State, StateBackend
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


class Workspace(Closing):
    """Specs, state backend and (lazily) the provider of the target.

    Attributes:
        specs: the loaded specs.
        backend: the state backend the Provider names (file by default).
        target: one-line description of where commands act, e.g.
            ``embedded sandbox (.reconciler/sandbox)``.
        binding: the remote the state is bound to when this workspace writes it.
        cache_dir: where prepared datasets and the hash cache live.
        rebinding: whether :meth:`read_state` accepted a state bound to another target
            (``--rebind``); the next write records :attr:`binding`.

    Raises:
        StateError: the PATHs reach more than one workspace, or the state would be created
            although the specs already have one elsewhere (see :func:`check_one_state`).
    """

    def __init__(self, specs: SpecSet, *, parallelism: int | None = None) -> None:
        # PATHs of several workspaces first: their files would otherwise be refused one by one
        # as paths outside "the" workspace, which hides the real mistake.
        check_one_state(specs.discovery, None)
        check_trust(specs)
        # The state modules are imported here, not with this module: `validate` checks trust
        # through it and never opens a state (their import is a twentieth of its start-up).
        from reconciler.engine.backends import open_backend
        from reconciler.engine.state_model import EMBEDDED, StateTarget

        self.specs = specs
        provider = specs.provider.doc if specs.provider else None
        self.backend: StateBackend = open_backend(
            provider.state if provider else None,
            specs.root,
            base_dir=specs.provider.base_dir if specs.provider else None,
            resolve_secret=self._resolve_provider_secret,
        )
        self.cache_dir = specs.root / ".reconciler" / "cache"
        self.parallelism = parallelism or (provider.parallelism if provider else 8)
        self._client: Provider | None = None
        self._sandbox: EmbeddedSandbox | None = None
        if provider is None:
            self.target = f"embedded sandbox ({_shown(self.sandbox_dir)})"
            self.binding = StateTarget(provider="sandbox", endpoint=EMBEDDED)
        elif provider.type == "mistral":
            endpoint = provider.endpoint or MISTRAL_ENDPOINT
            self.target = f"mistral {endpoint}"
            self.binding = StateTarget(provider="mistral", endpoint=normalize_endpoint(endpoint))
        elif provider.type == "ray":
            assert provider.address is not None  # the Provider model requires it for ray
            storage = self.ray_storage
            self.target = f"ray {provider.address} (storage {storage})"
            self.binding = StateTarget(
                provider="ray", endpoint=normalize_endpoint(provider.address), storage=storage
            )
        elif provider.type == "openai":
            # Nothing leaves the machine until the document says where or with which key.
            if provider.endpoint or provider.api_key:
                endpoint = provider.endpoint or OPENAI_ENDPOINT
                self.target = f"openai {endpoint}"
                self.binding = StateTarget(provider="openai", endpoint=normalize_endpoint(endpoint))
            else:
                self.target = f"embedded sandbox, openai dialect ({_shown(self.sandbox_dir)})"
                self.binding = StateTarget(provider="openai", endpoint=EMBEDDED)
        elif provider.endpoint:
            self.target = f"sandbox {provider.endpoint}"
            self.binding = StateTarget(
                provider="sandbox", endpoint=normalize_endpoint(provider.endpoint)
            )
        else:
            self.target = f"embedded sandbox ({_shown(self.sandbox_dir)})"
            self.binding = StateTarget(provider="sandbox", endpoint=EMBEDDED)
        self.backend.bind(self.binding)
        self.rebinding = False
        try:
            check_one_state(specs.discovery, self.backend)
        except StateError:
            self.backend.close()
            raise

    @property
    def state_label(self) -> str:
        """Which state this workspace uses: the file (relative to the current directory, and
        ``(new)`` while it does not exist yet) or the backend's description."""
        from reconciler.engine.state_file import FileStateBackend

        if isinstance(self.backend, FileStateBackend):
            label = _shown(self.backend.path)
            return label if self.backend.path.exists() else f"{label} (new)"
        return self.backend.describe()

    @property
    def headline(self) -> str:
        """The first line of every command: ``Target: ...; state: ...``."""
        return f"Target: {self.target}; state: {self.state_label}"

    def read_state(self, *, rebind: bool = False) -> State | None:
        """The stored state, refused when it belongs to another target (unless ``rebind``).

        With ``rebind`` (the user moved the workspace on purpose), a state bound elsewhere is
        accepted, :attr:`rebinding` is set and the next write records the new target.

        Raises:
            StateError: the state is bound to another target and ``rebind`` is False.
        """
        from reconciler.engine.state_model import check_target

        state = self.backend.read()
        if check_target(state, self.binding, self.state_label, rebind=rebind):
            self.rebinding = True
            self.backend.bind(self.binding, rebind=True)
        return state

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

    @cached_property
    def ray_storage(self) -> str:
        """A ``ray`` Provider's storage as the cluster and this command reach it
        (:func:`resolve_storage`; resolved once: the target and the provider both use it)."""
        assert self.specs.provider is not None
        return resolve_storage(self.specs.provider)

    @property
    def embedded(self) -> bool:
        """Whether the target is the in-process sandbox."""
        return self.target.startswith("embedded sandbox")

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
            base_url = (
                provider.address
                or provider.endpoint
                or (OPENAI_ENDPOINT if openai else MISTRAL_ENDPOINT)
            )
            ref = _provider_key_ref(self.specs.provider)
            api_key = (
                self.specs.provider.resolve_secret("api_key", ref=ref) if ref is not None else None
            )
        self._client = _build_provider(
            provider,
            base_url,
            api_key,
            rate_limit=rate_limit,
            concurrency=self.parallelism,
            storage=self.ray_storage if self.provider_type == "ray" else None,
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


def _build_provider(
    doc: ProviderDoc | None,
    base_url: str,
    api_key: str | None,
    *,
    rate_limit: float | None,
    concurrency: int,
    storage: str | None = None,
) -> Provider:
    """The provider for the document's ``type`` (Mistral's API without a document).

    ``base_url`` is the API's (a ray Provider's ``address``), ``api_key`` its resolved key
    (a Ray cluster's token), ``storage`` a ray Provider's resolved storage.
    """
    if doc is not None and doc.type == "ray":
        from reconciler.providers.ray import RayProvider

        assert storage is not None
        return RayProvider(
            base_url,
            storage,
            token=api_key,
            resources=doc.resources,
            python=doc.python,
            runtime_env=doc.runtime_env,
            price_per_gpu_hour=doc.price_per_gpu_hour,
        )
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

    Checks the Provider's endpoint (:meth:`~reconciler.spec.trust.TrustSettings.endpoint_refusal`;
    a ray Provider's ``address``) and a ray Provider's storage (:func:`resolve_storage`),
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
    # A ray Provider's endpoint is its cluster's Jobs API, written as ``address``.
    field = "address" if provider is not None and provider.doc.type == "ray" else "endpoint"
    endpoint = getattr(provider.doc, field) if provider is not None else None
    if provider is not None and endpoint:
        reason = settings.endpoint_refusal(endpoint, provider.doc.type)
        if reason is not None:
            parsed = parse_endpoint(endpoint)
            problems.append(
                Problem(
                    "endpoint-not-allowed",
                    f"{field} {endpoint} is not allowed: {reason}; nothing was sent",
                    provider.locate(field),
                    subject=provider.subject,
                    hint=(
                        f"only if the operator trusts it: add {parsed.origin} to {ENDPOINTS_ENV} "
                        "(comma-separated) in the environment of the command, not in a spec"
                        if parsed
                        else "write the endpoint as scheme://host[:port][/path]"
                    ),
                )
            )
    if provider is not None and provider.doc.storage is not None:
        try:
            resolve_storage(provider, settings)
        except SpecError as exc:
            problems.extend(exc.problems)
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


def resolve_storage(
    provider: LoadedDocument[ProviderDoc], settings: TrustSettings | None = None
) -> str:
    """A ray Provider's ``storage`` as this command and the cluster reach it.

    A URI (``s3://bucket/prefix``) as written, without a trailing ``/``, once the operator's
    ``RECONCILER_ALLOWED_STORAGE`` allows it
    (:meth:`~reconciler.spec.trust.TrustSettings.storage_refusal`); a local directory (a path,
    or a ``file://`` URI) absolute, held to the rules of every path a spec names: inside the
    workspace, or in a directory ``RECONCILER_ALLOWED_PATHS`` allows
    (:meth:`~reconciler.spec.resolved.LoadedDocument.resolve_path`).

    Raises:
        SpecError: the storage is refused, located at the Provider's ``storage``.
    """
    written = provider.doc.storage
    assert written is not None  # the Provider model requires it for type: ray
    settings = settings or TrustSettings.from_environ()
    local = local_storage_path(written)
    if local is None:
        reason = settings.storage_refusal(written)
        if reason is None:
            return written.rstrip("/")
        raise SpecError(
            [
                Problem(
                    "storage-not-allowed",
                    f"storage {written} is not allowed: {reason}; nothing was read or written",
                    provider.locate("storage"),
                    subject=provider.subject,
                    hint=f"only if the operator trusts it: add it (or a prefix of it) to "
                    f"{STORAGE_ENV} (comma-separated) in the environment of the command, not "
                    "in a spec",
                )
            ],
            summary=f"{provider.subject}: the storage is not allowed",
        )
    return str(provider.resolve_path(local, "storage"))


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


def normalize_endpoint(url: str) -> str:
    """An API base URL as a state records it: scheme and host lower-cased, no trailing ``/``."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def check_one_state(discovery: RootDiscovery | None, backend: StateBackend | None) -> None:
    """Refuse to use (and so perhaps create) a state when the specs have another one.

    Without ``backend``, only whether the PATHs span several workspaces is checked.

    Raises:
        StateError: the PATHs span several workspaces; or the default state file does not
            exist yet while some of the specs belong to a workspace below that has one.
    """
    if discovery is None:
        return
    here = _shown(discovery.root)
    if discovery.conflicts:
        others = ", ".join(_shown(r) for r in discovery.conflicts)
        raise StateError(
            f"the PATHs belong to different workspaces: {here} and {others}. Each workspace "
            "has its own state; run the command once per workspace (give PATHs of one)."
        )
    if backend is None:
        return
    from reconciler.engine.state_file import FileStateBackend

    default = isinstance(backend, FileStateBackend) and backend.path == discovery.state_file
    if not discovery.nested or not default or discovery.state_file.exists():
        return
    states = ", ".join(_shown(r / STATE_DIR) for r in discovery.nested)
    first = _shown(discovery.nested[0])
    raise StateError(
        f"no state in {_shown(discovery.root / STATE_DIR)}, but the specs given belong to a "
        f"workspace that has one: {states}. A second state is never created silently. Run "
        f"the command on that workspace (e.g. 'reconciler plan {first}', or cd {first}); to "
        f"make {here} the workspace instead, move that state here (mv {first}/{STATE_DIR} "
        f"{here}/) or, to start a separate one on purpose, mark it with an empty "
        f"{here}/{MARKER_FILE} and give only the PATHs that belong to it."
    )


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def open_workspace(paths: Sequence[str | Path], *, parallelism: int | None = None) -> Workspace:
    """Load the specs at ``paths`` (default: the current directory) into a workspace.

    Raises:
        SpecError: a PATH is not a directory or a regular file (``/dev/null``, a FIFO), the
            specs are invalid, or the operator's trust settings refuse something they ask for.
    """
    targets = [Path(p) for p in paths] or [Path.cwd()]
    specs = load_specs(targets)
    return Workspace(specs, parallelism=parallelism)
