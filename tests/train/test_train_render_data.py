"""Chat rendering with the assistant-only loss mask, and the streaming data mixture."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from train_tiny import SYSTEM, answer, chat_samples, write_jsonl

from reconciler.errors import TrainingError
from reconciler.train.data import Shard, TrainingStream, iter_samples, validation_batches
from reconciler.train.job import TrainingFile
from reconciler.train.render import (
    ChatTemplateRenderer,
    Encoded,
    MistralCommonRenderer,
    find_mistral_tokenizer,
)


def _targets(tokenizer: Any, encoded: Encoded) -> list[str]:
    return [
        t
        for t, m in zip(
            tokenizer.convert_ids_to_tokens(encoded.tokens), encoded.targets, strict=True
        )
        if m
    ]


@pytest.fixture(scope="module")
def template_tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_chat_template_trains_on_assistant_tokens_only(template_tokenizer: Any) -> None:
    renderer = ChatTemplateRenderer(template_tokenizer)
    sample = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Tell me about owls."},
            {"role": "assistant", "content": answer("owls")},
            {"role": "user", "content": "Tell me about chess."},
            {"role": "assistant", "content": answer("chess")},
        ]
    }
    encoded = renderer.encode(sample)
    assert encoded is not None
    tokens = template_tokenizer.convert_ids_to_tokens(encoded.tokens)
    # Mistral-style: the system prompt sits in the last user message, not the first.
    assert tokens.index("You") > tokens.index("owls")
    expected = answer("owls").split() + ["</s>"] + answer("chess").split() + ["</s>"]
    assert _targets(template_tokenizer, encoded) == expected


def test_weight_zero_and_content_chunks(template_tokenizer: Any) -> None:
    renderer = ChatTemplateRenderer(template_tokenizer)
    sample = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Tell me about owls."}]},
            {"role": "assistant", "content": answer("owls"), "weight": 0},
            {"role": "user", "content": "Tell me about chess."},
            {"role": "assistant", "content": answer("chess"), "weight": 1},
        ]
    }
    encoded = renderer.encode(sample)
    assert encoded is not None
    assert _targets(template_tokenizer, encoded) == answer("chess").split() + ["</s>"]
    only_zero = {"messages": sample["messages"][:2]}
    assert renderer.encode(only_zero) is None


def test_mistral_common_masks_content_tool_calls_and_eos(tmp_path: Path) -> None:
    mistral_common = pytest.importorskip("mistral_common", reason="pip install -e '.[tokens]'")
    data = Path(mistral_common.__file__).parent / "data"
    shutil.copy(
        data / "mistral_instruct_tokenizer_240323.model.v3", tmp_path / "tokenizer.model.v3"
    )
    found = find_mistral_tokenizer(tmp_path)
    assert found == tmp_path / "tokenizer.model.v3"
    renderer = MistralCommonRenderer(found)
    call = {"id": "abcDEF123", "function": {"name": "lookup", "arguments": '{"q": "owls"}'}}
    sample = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look a topic up.",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            }
        ],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Good day"},
            {"role": "user", "content": "Owls?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "abcDEF123", "content": "nocturnal birds"},
            {"role": "assistant", "content": "Owls are nocturnal birds."},
        ],
    }
    encoded = renderer.encode(sample)
    assert encoded is not None
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    raw = MistralTokenizer.from_file(str(found)).instruct_tokenizer.tokenizer
    pieces: list[list[int]] = [[]]
    for token, target in zip(encoded.tokens, encoded.targets, strict=True):
        if target:
            pieces[-1].append(token)
        elif pieces[-1]:
            pieces.append([])
    pieces = [p for p in pieces if p]
    assert [p[-1] for p in pieces] == [raw.eos_id] * 3
    texts = [raw.decode(p[:-1]) for p in pieces]
    assert texts[0].strip() == "Good day"
    assert "lookup" in texts[1] and "owls" in texts[1]
    assert texts[2].strip() == "Owls are nocturnal birds."
    # Nothing but those: user text, the system prompt and the tool result give context only.
    assert sum(encoded.targets) == sum(len(p) for p in pieces)
    assert "Be brief" in raw.decode(
        [t for t, m in zip(encoded.tokens, encoded.targets, strict=True) if not m]
    )


def test_weighted_mixture_follows_the_weights(tmp_path: Path, template_tokenizer: Any) -> None:
    renderer = ChatTemplateRenderer(template_tokenizer)
    heavy = write_jsonl(tmp_path / "heavy.jsonl", chat_samples(5, seed=1, system=True))
    light = write_jsonl(tmp_path / "light.jsonl", chat_samples(50, seed=2, system=False))
    stream = TrainingStream(
        [TrainingFile(uri=str(heavy), weight=3), TrainingFile(uri=str(light), weight=1)],
        renderer,
        seq_len=256,
        seed=7,
        buffer=4,
    )
    system_id = template_tokenizer.convert_tokens_to_ids("You")
    drawn = Counter(system_id in e.tokens for e in stream.batch(800))
    # The small heavy file is drawn ~3 times as often as the large light one, pass after pass.
    assert 0.70 < drawn[True] / 800 < 0.80
    assert stream.stats.used == 800 and stream.stats.skipped == 0


def test_shards_are_disjoint_and_complete(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", chat_samples(11))
    with path.open("a") as handle:
        handle.write("\n")  # a blank line is not a sample
    shards = [list(iter_samples(str(path), Shard(r, 3))) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 3]
    everything = [s for shard in shards for s in shard]
    assert sorted(map(str, everything)) == sorted(map(str, chat_samples(11)))


def test_truncation_and_unusable_files(tmp_path: Path, template_tokenizer: Any) -> None:
    renderer = ChatTemplateRenderer(template_tokenizer)
    valid = write_jsonl(tmp_path / "v.jsonl", chat_samples(5))
    batches = list(
        validation_batches([str(valid)], renderer, seq_len=12, batch_size=2, shard=Shard())
    )
    kept = [e for b in batches for e in b]
    # Two-turn samples (0 and 3) answer the first question before the system prompt (which
    # goes to the last user message) within 12 tokens; the other three lose every answer.
    assert len(kept) == 2
    assert all(len(e.tokens) == 12 and e.n_targets for e in kept)
    no_answers = write_jsonl(
        tmp_path / "u.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}] * 3
    )
    stream = TrainingStream([TrainingFile(uri=str(no_answers))], renderer, seq_len=64)
    with pytest.raises(TrainingError, match="no sample with an assistant message"):
        stream.batch(1)
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"messages": []}\n{not json\n')
    with pytest.raises(TrainingError, match=r"b.jsonl:2: not valid JSON"):
        list(iter_samples(str(broken)))
