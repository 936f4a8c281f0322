"""The workspace: specs + state backend + API client for one command invocation.

Commands that talk to the remote open a workspace from their spec PATHs. It decides the
target from the Provider document — or, without one, the embedded sandbox (a sandbox server
run inside this process on a loopback port, with its data under ``.reconciler/sandbox``
beside the specs) — and says so on the first line of every command's output.

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
from reconciler.spec.models import Provider, SecretRef
from reconciler.spec.resolved import LoadedDocument, SpecSet
from reconciler.spec.secrets import check_secret_ref
from reconciler.spec.trust import ENDPOINTS_ENV, OFFICIAL_ENDPOINTS, TrustSettings, parse_endpoint

if TYPE_CHECKING:
    from reconciler.client.api import MistralClient
    from reconciler.sandbox.server import EmbeddedSandbox

MISTRAL_ENDPOINT = OFFICIAL_ENDPOINTS["mistral"]
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
        self._client: MistralClient | None = None
        self._sandbox: EmbeddedSandbox | None = None
        if provider is None:
            self.target = f"embedded sandbox ({self._relative(self.sandbox_dir)})"
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

    def client(self) -> MistralClient:
        """The API client for the target (starting the embedded sandbox if needed)."""
        if self._client is not None:
            return self._client
        from reconciler.client.api import MistralClient

        provider = self.specs.provider.doc if self.specs.provider else None
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
            ref = _provider_key_ref(self.specs.provider)
            api_key = (
                self.specs.provider.resolve_secret("api_key", ref=ref) if ref is not None else None
            )
        self._client = MistralClient(
            base_url, api_key, rate_limit=rate_limit, concurrency=self.parallelism
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


def _provider_key_ref(provider: LoadedDocument[Provider]) -> SecretRef | None:
    """The Provider's key reference: as written, else the default of its type."""
    doc = provider.doc
    return doc.api_key or (DEFAULT_MISTRAL_KEY if doc.type == "mistral" else None)


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
