"""The chat dialect follows the Provider's service, and cached reports never mix dialects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.data.api import check_datasets, specs_chat_rules
from reconciler.data.cache import DataCache
from reconciler.data.dialect import ChatRules
from reconciler.data.prepare import cached_validate
from reconciler.spec.loader import load_specs

# A tool call id OpenAI accepts and Mistral refuses (9 characters a-z A-Z 0-9 there).
SAMPLE = {
    "messages": [
        {"role": "user", "content": "What is 2 + 2?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "4"},
        {"role": "assistant", "content": "It is 4."},
    ],
    "tools": [{"type": "function", "function": {"name": "add"}}],
}

PROVIDERS = {
    "none": "",
    "openai": "kind: Provider\nname: p\ntype: openai\n---\n",
}


def _project(root: Path, provider: str, model: str, split: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    data = root / "data" / "tools.jsonl"
    if not data.exists():  # written once: the cache keys on its size and mtime
        data.write_text("\n".join([json.dumps(SAMPLE)] * 12) + "\n", encoding="utf-8")
    (root / "specs.yaml").write_text(
        PROVIDERS[provider]
        + "kind: Dataset\nname: tools\npath: data/tools.jsonl\n"
        + ("split: {validation_fraction: 0.25}\n" if split else "")
        + "---\n"
        + f"kind: FineTuningJob\nname: j\nmodel: {model}\ntraining_files: [tools]\n",
        encoding="utf-8",
    )
    return root


def test_the_provider_picks_the_dialect(tmp_path: Path) -> None:
    mistral = load_specs([_project(tmp_path / "m", "none", "open-mistral-7b")])
    openai = load_specs([_project(tmp_path / "o", "openai", "gpt-4o-mini-2024-07-18")])
    assert specs_chat_rules(mistral) is ChatRules.mistral
    assert specs_chat_rules(openai) is ChatRules.openai


@pytest.mark.parametrize("split", [False, True], ids=["as-is", "prepared-split"])
def test_openai_specs_accept_openai_samples_mistral_specs_do_not(
    tmp_path: Path, split: bool
) -> None:
    # The same data file (same path, size and mtime) and one cache for both: only the
    # dialect tells the cached reports and prepared manifests apart.
    root = tmp_path / "p"
    cache = tmp_path / "cache"

    def check(provider: str, model: str) -> bool:
        _project(root, provider, model, split)
        return check_datasets(load_specs([root]), cache_dir=cache).ok

    for _ in range(2):  # the second round is answered from the cache
        assert check("openai", "gpt-4o-mini-2024-07-18")
        assert not check("none", "open-mistral-7b")


@pytest.mark.parametrize("first", [ChatRules.mistral, ChatRules.openai])
def test_cached_reports_are_kept_per_dialect(tmp_path: Path, first: ChatRules) -> None:
    path = _project(tmp_path / "p", "none", "m") / "data" / "tools.jsonl"
    second = ChatRules.openai if first is ChatRules.mistral else ChatRules.mistral
    cache = DataCache(tmp_path / "cache")
    a = cached_validate(cache, path, role="training", exact_tokens=False, chat_rules=first)
    b = cached_validate(cache, path, role="training", exact_tokens=False, chat_rules=second)
    assert (cache.hits, cache.misses) == (0, 2)  # the second dialect did not reuse the first's
    assert a.ok is (first is ChatRules.openai) and b.ok is (second is ChatRules.openai)
    again = cached_validate(cache, path, role="training", exact_tokens=False, chat_rules=first)
    assert cache.hits == 1 and again.ok is a.ok


def test_unknown_dialect_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown chat dialect"):
        ChatRules.named("anthropic")
