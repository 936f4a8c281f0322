"""Spec fields the Provider's service does not take are validate errors at the line that sets
them, naming the provider; the method and the datasets' format agree whatever the provider."""

from __future__ import annotations

import pytest
from spec_helpers import WriteTree

from reconciler.errors import Problem
from reconciler.spec.capabilities import CAPABILITIES, capabilities_for
from reconciler.spec.loader import check_specs

OPENAI = "kind: Provider\nname: p\ntype: openai\n---\n"
MISTRAL = "kind: Provider\nname: p\ntype: mistral\n---\n"
CHAT = "kind: Dataset\nname: chats\npath: c.jsonl\n---\n"
PAIRS = "kind: Dataset\nname: pairs\npath: p.jsonl\nformat: preference\n---\n"
JOB = "kind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [chats]\n"
# Line numbers below count from the start of the file: OPENAI/MISTRAL are 4 lines, CHAT and
# PAIRS 4 and 5, JOB's fields start on its line 1.

# (case, file text, expected [(code, line, subject, fragment of the message or hint)])
CASES: list[tuple[str, str, list[tuple[str, int, str, str]]]] = [
    (
        "learning_rate on openai: its multiplier is named instead",
        OPENAI + CHAT + JOB + "hyperparameters: {learning_rate: 1.0e-4, epochs: 2}\n",
        [("not-supported", 13, "FineTuningJob/j", "learning_rate_multiplier")],
    ),
    (
        "a profile's training_steps, reported at the profile, naming the job",
        OPENAI
        + CHAT
        + "kind: Hyperparameters\nname: prof\ntraining_steps: 10\n---\n"
        + JOB
        + "hyperparameters: prof\n",
        [("not-supported", 11, "Hyperparameters/prof", "used by FineTuningJob/j")],
    ),
    (
        "a matrix key openai does not take",
        OPENAI + CHAT + JOB + "matrix:\n  weight_decay: [0.1, 0.2]\n",
        [("not-supported", 14, "FineTuningJob/j", "openai takes: batch_size, beta, epochs")],
    ),
    (
        "OpenAI's hyperparameters on mistral",
        MISTRAL + CHAT + JOB + "hyperparameters: {learning_rate_multiplier: 2, batch_size: 4}\n",
        [
            ("not-supported", 13, "FineTuningJob/j", "absolute learning_rate"),
            ("not-supported", 13, "FineTuningJob/j", "training_steps or epochs"),
        ],
    ),
    (
        "fractional and too many epochs on openai",
        OPENAI + CHAT + JOB + "matrix:\n  epochs: [1.5, 60]\n",
        [
            ("invalid-value", 14, "FineTuningJob/j", "whole epochs"),
            ("out-of-range", 14, "FineTuningJob/j", "at most 50 epochs"),
        ],
    ),
    (
        "several training files on openai",
        OPENAI
        + CHAT
        + "kind: Dataset\nname: more\npath: m.jsonl\n---\n"
        + JOB.replace("[chats]", "[chats, more]"),
        [("not-supported", 16, "FineTuningJob/j", "several (weighted) training files")],
    ),
    (
        "a training file weight on openai",
        OPENAI + CHAT + JOB.replace("[chats]", "[{dataset: chats, weight: 2}]"),
        [("not-supported", 12, "FineTuningJob/j", "weights")],
    ),
    (
        "suffix longer than mistral takes (openai takes it)",
        MISTRAL + CHAT + JOB + "suffix: twenty-characters-xx\n",
        [("out-of-range", 13, "FineTuningJob/j", "mistral takes at most 18")],
    ),
    (
        "suffix longer than openai takes is a model error",
        OPENAI + CHAT + JOB + f"suffix: {'s' * 65}\n",
        [("out-of-range", 13, "FineTuningJob/j", "64")],
    ),
    (
        "a W&B api_key on openai; entity and tags are fine",
        OPENAI
        + CHAT
        + "kind: WandbIntegration\nname: w\nproject: p\nentity: team\ntags: [a]\n"
        + "api_key: {env: WANDB_API_KEY}\n---\n"
        + JOB
        + "integrations: [w]\n",
        [("not-supported", 14, "WandbIntegration/w", "organisation's settings")],
    ),
    (
        "a W&B integration without api_key on mistral, with openai's entity",
        MISTRAL
        + CHAT
        + "kind: WandbIntegration\nname: w\nproject: p\nentity: team\n---\n"
        + JOB
        + "integrations: [w]\n",
        [
            ("missing-field", 9, "WandbIntegration/w", "api_key: {env: WANDB_API_KEY}"),
            ("not-supported", 12, "WandbIntegration/w", "W&B 'entity'"),
        ],
    ),
    (
        "start: false, model updates and archive on replace on openai",
        OPENAI
        + CHAT
        + JOB
        + "start: false\nfine_tuned_model: {name: n}\non_replace: {previous_model: archive}\n",
        [
            ("not-supported", 13, "FineTuningJob/j", "starts every job as soon as it is created"),
            ("not-supported", 14, "FineTuningJob/j", "renamed"),
            ("not-supported", 15, "FineTuningJob/j", "archived"),
        ],
    ),
    (
        "seed, paused and method dpo on mistral",
        MISTRAL
        + PAIRS
        + JOB.replace("[chats]", "[pairs]")
        + "seed: 1\npaused: true\n"
        + "method: dpo\n",
        [
            ("not-supported", 14, "FineTuningJob/j", "'seed' is not supported by mistral"),
            ("not-supported", 15, "FineTuningJob/j", "paused"),
            ("not-supported", 16, "FineTuningJob/j", "method: dpo is not supported by mistral"),
        ],
    ),
    (
        "dpo on chat data, and beta without dpo",
        OPENAI
        + CHAT
        + JOB
        + "method: dpo\n---\n"
        + JOB.replace("name: j", "name: k")
        + "hyperparameters: {beta: 0.2}\n",
        [
            ("invalid-value", 12, "FineTuningJob/j", "format: preference"),
            ("invalid-value", 19, "FineTuningJob/k", "'beta' is a hyperparameter of method: dpo"),
        ],
    ),
    (
        "preference data for a supervised job",
        OPENAI + PAIRS + JOB.replace("[chats]", "[pairs]"),
        [("invalid-value", 13, "FineTuningJob/j", "set method: dpo")],
    ),
    (
        "organization and project are openai settings",
        "kind: Provider\nname: p\ntype: mistral\norganization: org-1\nproject: proj-1\n",
        [
            ("not-supported", 4, "Provider/p", "'organization' is not supported by mistral"),
            ("not-supported", 5, "Provider/p", "'project' is not supported by mistral"),
        ],
    ),
    (
        "the embedded sandbox is Mistral's API",
        CHAT + JOB + "hyperparameters: {batch_size: 8}\n",
        [("not-supported", 9, "FineTuningJob/j", "not supported by sandbox")],
    ),
]


def _found(problems: list[Problem]) -> list[tuple[str, int, str]]:
    return [(p.code, p.location.line if p.location else 0, p.subject or "") for p in problems]


@pytest.mark.parametrize(("case", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_unsupported_field_is_an_error_at_its_line_naming_the_provider(
    case: str, text: str, expected: list[tuple[str, int, str, str]], write_tree: WriteTree
) -> None:
    root = write_tree({"a.yaml": text})
    specs, problems = check_specs([root / "a.yaml"])
    assert specs is None, case
    assert _found(problems) == [(c, line, s) for c, line, s, _ in expected], [
        p.render() for p in problems
    ]
    for problem, (_, _, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.render(), problem.render()
        assert problem.location is not None and problem.location.file.endswith("a.yaml")


def test_what_openai_takes_loads(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "a.yaml": OPENAI
            + PAIRS
            + "kind: WandbIntegration\nname: w\nproject: p\nentity: team\ntags: [a]\n---\n"
            + JOB.replace("[chats]", "[pairs]")
            + "method: dpo\nseed: 42\npaused: true\nsuffix: a-suffix-longer-than-eighteen\n"
            + "integrations: [w]\nbudget: {max_cost: 5}\n"
            + "hyperparameters: {epochs: 3, beta: 0.1, learning_rate_multiplier: 2, batch_size: 8}"
            + "\n"
        }
    )
    specs, problems = check_specs([root / "a.yaml"])
    assert problems == [] and specs is not None
    job = specs.jobs["j"]
    assert (job.method, job.seed, job.paused) == ("dpo", 42, True)


def test_every_provider_type_of_the_spec_language_is_declared() -> None:
    from typing import get_args

    from reconciler.spec.models import Provider

    types = set(get_args(Provider.model_fields["type"].annotation))
    assert types <= set(CAPABILITIES)
    assert capabilities_for(None) is CAPABILITIES["sandbox"]
    assert capabilities_for("not-a-type") is None
