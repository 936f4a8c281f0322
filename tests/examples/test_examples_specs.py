"""The example specs under specs/: they load, their data is valid, and they show what the
README says they show.

These run the real loader and the real dataset checks on the committed files (copied to a
temporary directory where a check writes a cache), so a broken example fails here before a
user meets it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.data.api import check_datasets, check_files
from reconciler.errors import SpecError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import Dataset, RayResources
from reconciler.spec.resolved import SpecSet

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
EXAMPLES = sorted(p.name for p in SPECS.iterdir() if p.is_dir() and p.name[:2].isdigit())
MODELINE = "# yaml-language-server: $schema=../../schemas/reconciler-v1.schema.json"
SANDBOX_MODELS = {
    "open-mistral-7b",
    "mistral-small-latest",
    "open-mistral-nemo",
    "codestral-latest",
}
OPENAI_SANDBOX_MODELS = {"gpt-4o-mini-2024-07-18"}
OPENAI_EXAMPLES = ["09-openai-tone"]
"""Examples with an openai Provider."""
RAY_EXAMPLES = ["10-self-hosted-ray"]
"""Examples with a ray Provider (a cluster with GPUs of one's own)."""
OWN_WORKSPACES = {**dict.fromkeys(OPENAI_EXAMPLES, "openai"), **dict.fromkeys(RAY_EXAMPLES, "ray")}
"""Examples with a Provider of their own, by its type: each is a workspace of its own (a
``reconciler.yaml`` root marker), skipped when ``specs/`` is loaded."""
SANDBOX_EXAMPLES = [e for e in EXAMPLES if e not in OWN_WORKSPACES]
"""Examples without a Provider (the embedded sandbox): ``specs/`` loads them together."""
TOOL_CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")

# Each example's documents carry its own prefix, so the union of all examples has no clashes.
PREFIXES = {
    "01-tone-dumbledore": "tone-",
    "02-format-medical-notes": "fmt-",
    "03-style-news": "style-",
    "04-coding-text-to-sql": "sql-",
    "05-domain-rag": "rag-",
    "06-knowledge-distillation": "distill-",
    "07-function-calling-agent": "agent-",
    "08-ultrachat-end-to-end": "ultrachat-",
    "09-openai-tone": "openai-tone",
    "10-self-hosted-ray": "ray-",
}


def _each(examples: list[str] = EXAMPLES) -> list[SpecSet]:
    """Every example loaded on its own (one workspace each)."""
    return [load_specs([SPECS / e]) for e in examples]


def _copy(example: str, tmp_path: Path) -> Path:
    target = tmp_path / example
    shutil.copytree(SPECS / example, target, ignore=shutil.ignore_patterns(".reconciler"))
    return target


def _errors(problems: Any) -> list[str]:
    return [p.render() for p in problems if p.severity == "error"]


def test_every_use_case_has_an_example() -> None:
    assert EXAMPLES == sorted(PREFIXES)


def test_the_sandbox_examples_load_together_with_unique_names() -> None:
    specs = load_specs([SPECS])
    assert len(specs.datasets) == len(SANDBOX_EXAMPLES)
    # 7 single jobs + the 2 x 2 matrix of the UltraChat sweep.
    assert len(specs.jobs) == len(SANDBOX_EXAMPLES) - 1 + 4
    assert specs.provider is None, "the examples run on the embedded sandbox by default"
    assert specs.root == SPECS.resolve()  # one workspace, one state: specs/.reconciler


def test_names_are_unique_across_all_examples() -> None:
    names = [
        (kind, name)
        for specs in _each()
        for kind, docs in (
            ("Dataset", specs.datasets),
            ("Hyperparameters", specs.profiles),
            ("WandbIntegration", specs.integrations),
            ("FineTuningJob", specs.job_documents),
        )
        for name in docs
    ]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("example", "provider_type"), OWN_WORKSPACES.items())
def test_an_example_with_a_provider_is_a_workspace_of_its_own(
    example: str, provider_type: str
) -> None:
    # Its root marker makes it a workspace of its own: its Provider would apply to every
    # document loaded with it.
    assert (SPECS / example / "reconciler.yaml").is_file()
    specs = load_specs([SPECS / example])
    assert specs.root == (SPECS / example).resolve()
    assert specs.provider is not None and specs.provider.doc.type == provider_type
    if provider_type == "openai":
        # No endpoint and no key: the embedded sandbox in the OpenAI dialect, nothing sent out.
        assert specs.provider.doc.endpoint is None and specs.provider.doc.api_key is None
    else:
        # A head on this machine and storage in the workspace: no operator setting needed.
        assert specs.provider.doc.address == "http://127.0.0.1:8265"
        assert specs.provider.doc.storage == ".ray-storage"
    # Loading specs/ skips it, and says so.
    together = load_specs([SPECS])
    assert not any(f.is_relative_to(SPECS / example) for f in together.files)
    notes = [p.render() for p in together.warnings if p.code == "own-workspace-skipped"]
    assert (
        f"{SPECS / example}: warning: a workspace of its own; apply it on its own "
        "[own-workspace-skipped]\n"
        f"    hint: it holds reconciler.yaml: name it as a PATH of its own, e.g. "
        f"'reconciler apply {SPECS / example}'"
    ) in notes
    assert len(notes) == len(OWN_WORKSPACES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_is_self_contained_and_follows_the_conventions(example: str) -> None:
    directory = SPECS / example
    specs = load_specs([directory])  # loads on its own: no reference to another example
    prefix = PREFIXES[example]
    names = [
        *specs.datasets,
        *specs.profiles,
        *specs.integrations,
        *specs.job_documents,
    ]
    assert names and all(n.startswith(prefix) for n in names), names
    assert (directory / "README.md").read_text(encoding="utf-8").startswith("# ")
    for spec_file in specs.files:
        assert spec_file.read_text(encoding="utf-8").splitlines()[0] == MODELINE, spec_file
    assert specs.jobs
    for job in specs.jobs.values():
        if example in RAY_EXAMPLES:
            # The open weights of open-mistral-7b, as a LoRA run sized in epochs.
            assert job.model == "mistralai/Mistral-7B-v0.3" and job.lora is not None
            assert job.hyperparameters.get("epochs") and "training_steps" not in job.hyperparameters
            continue
        if example in OPENAI_EXAMPLES:
            assert job.model in OPENAI_SANDBOX_MODELS
            assert job.hyperparameters["epochs"] <= 3, job.name  # quick on the sandbox
            assert job.suffix is None or len(job.suffix) <= 64
            if job.budget is not None:
                assert job.budget.max_cost >= 1, "generous enough for the local estimate"
            continue
        assert job.model in SANDBOX_MODELS
        assert 10 <= job.hyperparameters["training_steps"] <= 20, job.name
        assert job.suffix is None or len(job.suffix) <= 18
        if job.budget is not None:
            assert job.budget.max_cost >= 50, "generous enough for the sandbox's estimates"


def test_the_examples_cover_the_spec_language() -> None:
    each = _each()
    profiles = [p.doc for specs in each for p in specs.profiles.values()]
    jobs = [j.doc for specs in each for j in specs.job_documents.values()]
    datasets: list[Dataset] = [d.doc for specs in each for d in specs.datasets.values()]
    assert any(p.extends for p in profiles), "a profile extends another"
    assert any(
        not isinstance(j.hyperparameters, str) and j.hyperparameters.extends for j in jobs
    ), "inline hyperparameters on top of a profile"
    assert any(j.budget for j in jobs) and any(j.fine_tuned_model for j in jobs)
    assert any(d.split for d in datasets) and any(d.paths for d in datasets)
    assert any(d.on_invalid == "skip" for d in datasets)
    formats = {(d.convert.format or Path(d.sources[0]).suffix[1:]) for d in datasets if d.convert}
    assert formats == {"csv", "json", "jsonl"}
    afters = [m.after for d in datasets if d.convert for m in d.convert.messages]
    assert "Input:" in afters
    [sweep] = [j for j in jobs if j.matrix]
    assert set(sweep.matrix or {}) == {"learning_rate", "training_steps"}
    integrations = [i.doc for specs in each for i in specs.integrations.values()]
    [wandb] = [i for i in integrations if i.api_key is not None]
    assert wandb.api_key is not None and wandb.api_key.env == "WANDB_API_KEY"
    # The OpenAI example: DPO on preference data, OpenAI's hyperparameters and W&B tags.
    assert any(j.method == "dpo" for j in jobs) and any(d.format == "preference" for d in datasets)
    assert any(p.learning_rate_multiplier for p in profiles)
    assert any(i.api_key is None and i.tags for i in integrations)


def _sweep(specs: SpecSet) -> list[str]:
    return sorted(n for n, j in specs.jobs.items() if j.source == "ultrachat-sweep")


def test_the_sweep_expands_to_four_jobs_with_stable_names() -> None:
    first = _sweep(load_specs([SPECS / "08-ultrachat-end-to-end"]))
    assert len(first) == 4 and len(set(first)) == 4
    assert first == _sweep(load_specs([SPECS]))


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_datasets_are_valid(example: str, tmp_path: Path) -> None:
    specs = load_specs([_copy(example, tmp_path)])
    result = check_datasets(specs, cache_dir=tmp_path / "cache")
    assert _errors(result.problems) == []
    for name, loaded in specs.datasets.items():
        assert set(result.prepared[name].parts) == set(loaded.doc.parts)
    warnings = [p for p in result.problems if p.severity != "error"]
    if example == "03-style-news":
        # The one failed generation is dropped and reported, not uploaded.
        assert warnings and all("style-news-refined" in p.render() for p in warnings)
    else:
        assert warnings == []


def test_the_split_is_deterministic(tmp_path: Path) -> None:
    digests = []
    for run in ("a", "b"):
        specs = load_specs([_copy("08-ultrachat-end-to-end", tmp_path / run)])
        parts = (
            check_datasets(specs, cache_dir=tmp_path / run / "cache")
            .prepared["ultrachat-chunk"]
            .parts
        )
        digests.append({part: f.sha256 for part, f in parts.items()})
    assert digests[0] == digests[1]
    assert digests[0]["train"] != digests[0]["validation"]


CHAT_FILES = sorted(
    path.relative_to(SPECS).as_posix()
    for path in SPECS.glob("*/data/*.jsonl")
    # Files without a conversion are uploaded as they are, so they must be chat samples.
    if not any(
        isinstance(d.doc, Dataset)
        and (d.doc.convert is not None or d.doc.format != "chat")
        and str(path) in map(str, (d.resolve_path(s) for s in d.doc.sources))
        for specs in _each()
        for d in specs.datasets.values()
    )
)


def test_chat_files_are_the_unconverted_ones() -> None:
    assert CHAT_FILES == [
        "01-tone-dumbledore/data/dumbledore.jsonl",
        "07-function-calling-agent/data/anagram_tool_calls.jsonl",
        "08-ultrachat-end-to-end/data/ultrachat_chunk.jsonl",
        "09-openai-tone/data/dumbledore.jsonl",
        "10-self-hosted-ray/data/dumbledore.jsonl",
    ]


def test_the_ray_example_trains_the_tone_use_case_on_a_gpu_cluster(tmp_path: Path) -> None:
    directory = _copy("10-self-hosted-ray", tmp_path)
    specs = load_specs([directory])
    assert specs.provider is not None
    provider = specs.provider.doc
    assert provider.resources == RayResources(gpus=1, cpus=8, memory=64 * 2**30)
    assert provider.price_per_gpu_hour and provider.tokens_per_gpu_second
    [job] = specs.jobs.values()
    assert job.lora is not None and job.lora.rank == 16
    assert job.hyperparameters["epochs"] == 3
    result = check_datasets(specs, cache_dir=tmp_path / "cache")
    assert _errors(result.problems) == []
    # The same chats as example 01, so the two use cases compare.
    same = "01-tone-dumbledore/data/dumbledore.jsonl"
    assert (directory / "data" / "dumbledore.jsonl").read_bytes() == (SPECS / same).read_bytes()
    text = (directory / "README.md").read_text(encoding="utf-8")
    assert "reconciler apply specs/10-self-hosted-ray" in text and "reconciler.yaml" in text


@pytest.mark.parametrize("relative", CHAT_FILES)
def test_chat_files_are_valid_training_files(relative: str, tmp_path: Path) -> None:
    copy = tmp_path / Path(relative).name
    shutil.copyfile(SPECS / relative, copy)
    result = check_files([copy])
    assert _errors(result.problems) == []
    samples = [json.loads(line) for line in copy.read_text(encoding="utf-8").splitlines()]
    assert len(samples) >= 20, "tens of samples"
    for sample in samples:
        assert sample["messages"][-1]["role"] == "assistant"


def test_function_calling_samples_follow_the_tool_rules() -> None:
    path = SPECS / "07-function-calling-agent" / "data" / "anagram_tool_calls.jsonl"
    calls = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        sample = json.loads(line)
        declared = {t["function"]["name"] for t in sample["tools"]}
        pending: list[str] = []
        for message in sample["messages"]:
            if message["role"] == "assistant":
                assert not pending, "every call is answered before the next assistant turn"
                for call in message.get("tool_calls", []):
                    assert TOOL_CALL_ID.match(call["id"]), call["id"]
                    assert call["function"]["name"] in declared
                    json.loads(call["function"]["arguments"])  # a JSON string
                    pending.append(call["id"])
                    calls += 1
            elif message["role"] == "tool":
                assert message["tool_call_id"] == pending.pop(0)
    assert calls >= 20


def test_the_failed_generation_in_the_style_example_is_reported_with_its_line(
    tmp_path: Path,
) -> None:
    # With on_invalid: error instead of skip, the same data is refused, naming the line.
    directory = _copy("03-style-news", tmp_path)
    spec = directory / "news-stylist.yaml"
    text = spec.read_text(encoding="utf-8")
    assert "on_invalid: skip" in text
    spec.write_text(text.replace("on_invalid: skip", "on_invalid: error"), encoding="utf-8")
    result = check_datasets(load_specs([directory]), cache_dir=tmp_path / "cache")
    errors = [p for p in result.problems if p.severity == "error"]
    assert errors
    where = {(Path(p.location.file).name, p.location.line) for p in errors if p.location}
    assert ("generated_refined_news.jsonl", 10) in where


def test_a_broken_example_would_be_caught(tmp_path: Path) -> None:
    # The checks above can fail: a typo in a copied example is a located spec error.
    directory = _copy("01-tone-dumbledore", tmp_path)
    spec = directory / "dumbledore.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("suffix:", "sufix:"), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_specs([directory])
    assert "sufix" in str(caught.value)
