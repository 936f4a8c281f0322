"""What each provider type supports, declared as data.

A :class:`Capabilities` value says what a fine-tuning service can do and which spec fields
it takes. The spec checks (:mod:`reconciler.spec.provider_checks`) read it to refuse, at
``validate`` time and with the file and line, what the Provider's service cannot do; the
engine reads the same value from its provider (``Provider.capabilities``) to decide the
lifecycle (start gate or not, pause, model updates). It lives with the spec models because
both layers need it; :mod:`reconciler.providers.base` re-exports it.

The declarations are looked up by the ``type`` of the Provider document
(:func:`capabilities_for`); no Provider document means the embedded sandbox, which speaks
Mistral's API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MISTRAL_WANDB_FIELDS = frozenset({"project", "display_name", "run_name", "api_key"})
"""WandbIntegration fields Mistral's W&B integration takes (``display_name`` is its ``name``)."""


@dataclass(frozen=True)
class Capabilities:
    """What a provider's service supports; the spec checks and the engine read it.

    Attributes:
        name: the provider type as written in the ``Provider`` document (``mistral``,
            ``openai``, ``ray``, ``sandbox``), used in error messages ("not supported by
            openai").
        auto_start: jobs can be created without starting (``auto_start=false``), so the
            remote's own cost estimate can gate the start. Without it, jobs start at once,
            ``start: false`` is refused and budgets are enforced at plan time only, from the
            local estimate.
        job_metadata: jobs carry string metadata that can be filtered on when listing, so our
            identity (address + fingerprint) is exact.
        pause: jobs can be paused and resumed (``paused: true``).
        absolute_learning_rate: ``learning_rate`` is an absolute rate (Mistral); without it
            the service takes a multiplier (OpenAI ``learning_rate_multiplier``).
        multiple_training_files: several (weighted) training files per job.
        wandb_key_per_job: a W&B API key can travel with each job (Mistral's integration); OpenAI
            keeps it in the organisation's settings instead.
        model_updates: a fine-tuned model's name/description can be changed and it can be
            archived (``fine_tuned_model`` in the spec).
        remote_estimate: the service estimates a job's cost without creating it (``dry_run``).
        file_download: the content of an uploaded training file can be read back, so a file
            uploaded under another name can be recognised by its content (adoption). Without
            it (OpenAI refuses to give back fine-tune files) a remote file is recognised only
            under the prepared part's own content-addressed name and size.
        methods: training methods it accepts (``supervised``, ``dpo``, ...).
        max_suffix_length: longest ``suffix`` it accepts.
        hyperparameters: hyperparameter names (as the spec spells them) a job may set.
        job_types: ``job_type`` values it accepts (``completion``, ``classifier``).
        seed: a job may set ``seed``.
        wandb_fields: WandbIntegration fields its W&B integration takes.
        skip_invalid_samples: ``invalid_sample_skip_percentage`` other than 0 is accepted.
        multiple_validation_files: several validation files per job.
        whole_epochs: ``epochs`` must be a whole number (OpenAI's ``n_epochs``).
        max_epochs: the most ``epochs`` a job may ask for (None: no limit of its own).
        chat_dialect: the chat sample format its files are checked with (``mistral`` or
            ``openai``; see :mod:`reconciler.data.dialect`).
        lora: a job may set ``lora`` (the adapter a self-hosted trainer makes).
        max_integrations: the most W&B integrations a job may name (None: no limit).
        training_length: a job must set exactly one of ``training_steps`` and ``epochs``
            (the service has no default length of its own).
    """

    name: str
    auto_start: bool
    job_metadata: bool
    pause: bool
    absolute_learning_rate: bool
    multiple_training_files: bool
    wandb_key_per_job: bool
    model_updates: bool
    remote_estimate: bool
    methods: frozenset[str]
    max_suffix_length: int
    hyperparameters: frozenset[str]
    job_types: frozenset[str] = frozenset({"completion"})
    seed: bool = False
    wandb_fields: frozenset[str] = MISTRAL_WANDB_FIELDS
    skip_invalid_samples: bool = False
    multiple_validation_files: bool = True
    whole_epochs: bool = False
    max_epochs: int | None = None
    chat_dialect: str = "mistral"
    file_download: bool = True
    lora: bool = False
    max_integrations: int | None = None
    training_length: bool = False


MISTRAL_HYPERPARAMETERS = frozenset(
    {
        "training_steps",
        "learning_rate",
        "weight_decay",
        "warmup_fraction",
        "epochs",
        "seq_len",
        "fim_ratio",
    }
)

MISTRAL_CAPABILITIES = Capabilities(
    name="mistral",
    auto_start=True,
    job_metadata=False,
    pause=False,
    absolute_learning_rate=True,
    multiple_training_files=True,
    wandb_key_per_job=True,
    model_updates=True,
    remote_estimate=True,
    methods=frozenset({"supervised"}),
    max_suffix_length=18,
    hyperparameters=MISTRAL_HYPERPARAMETERS,
    job_types=frozenset({"completion", "classifier"}),
    skip_invalid_samples=True,
)
"""Mistral's fine-tuning API."""

SANDBOX_CAPABILITIES = replace(MISTRAL_CAPABILITIES, name="sandbox")
"""The sandbox in its default (Mistral) dialect: what Mistral's API takes."""

OPENAI_HYPERPARAMETERS = frozenset({"epochs", "batch_size", "learning_rate_multiplier", "beta"})
"""Spec hyperparameters OpenAI takes (``epochs`` is sent as ``n_epochs``; ``beta`` is DPO's)."""

OPENAI_CAPABILITIES = Capabilities(
    name="openai",
    auto_start=False,
    job_metadata=True,
    pause=True,
    absolute_learning_rate=False,
    multiple_training_files=False,
    wandb_key_per_job=False,
    model_updates=False,
    remote_estimate=False,
    methods=frozenset({"supervised", "dpo"}),
    max_suffix_length=64,
    hyperparameters=OPENAI_HYPERPARAMETERS,
    seed=True,
    wandb_fields=frozenset({"project", "display_name", "entity", "tags"}),
    multiple_validation_files=False,
    whole_epochs=True,
    max_epochs=50,
    chat_dialect="openai",
    file_download=False,
)
"""OpenAI's fine-tuning API (and the sandbox's OpenAI dialect)."""

RAY_HYPERPARAMETERS = MISTRAL_HYPERPARAMETERS - {"fim_ratio"}
"""Spec hyperparameters the Ray provider's trainer takes (Mistral's, without ``fim_ratio``)."""

RAY_CAPABILITIES = Capabilities(
    name="ray",
    auto_start=False,
    job_metadata=True,
    pause=False,
    absolute_learning_rate=True,
    multiple_training_files=True,
    wandb_key_per_job=True,
    model_updates=False,
    remote_estimate=False,
    methods=frozenset({"supervised"}),
    max_suffix_length=0,
    hyperparameters=RAY_HYPERPARAMETERS,
    lora=True,
    max_integrations=1,
    training_length=True,
)
"""Self-hosted LoRA training as jobs on a Ray cluster (:mod:`reconciler.providers.ray`): a job
runs as soon as it is submitted and carries our identity in its metadata; its "fine-tuned
model" is an adapter in the Provider's storage (no registry to name or archive it in); the
trainer takes completion (chat) data, one W&B run, and needs to be told how long to train."""

CAPABILITIES: dict[str, Capabilities] = {
    "mistral": MISTRAL_CAPABILITIES,
    "sandbox": SANDBOX_CAPABILITIES,
    "openai": OPENAI_CAPABILITIES,
    "ray": RAY_CAPABILITIES,
}
"""Provider type → what it supports. A provider type without an entry is not checked."""


def capabilities_for(provider_type: str | None) -> Capabilities | None:
    """The capabilities of a Provider ``type`` (None: no Provider, the embedded sandbox).

    Returns None for a type without a declaration here (its spec fields are then not
    checked against a service).
    """
    return CAPABILITIES.get(provider_type or "sandbox")
