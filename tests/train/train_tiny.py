"""A tiny Mistral-architecture model, its tokenizer and chat data, all built locally.

Nothing is downloaded: the tokenizer is a word-level ``tokenizers`` model trained on the test
data and wrapped in ``PreTrainedTokenizerFast`` with a Mistral-style chat template (the system
prompt goes into the last user message, as Mistral's templates do), and the model is a
``MistralForCausalLM`` with random weights from a small ``MistralConfig``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TOPICS = [
    "owls",
    "magic",
    "chess",
    "dragons",
    "potions",
    "friendship",
    "courage",
    "books",
    "music",
    "winter",
    "the lake",
    "the forest",
    "candles",
    "letters",
    "stars",
    "time",
]
QUESTIONS = ["Tell me about {t}.", "What do you think of {t}?", "Is {t} important?"]
SYSTEM = "You answer like a wise old headmaster."

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else none %}"
    "{% set loop_messages = messages[1:] if system else messages %}"
    "{% set last_user = namespace(i=-1) %}"
    "{% for m in loop_messages %}{% if m['role'] == 'user' %}"
    "{% set last_user.i = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in loop_messages %}"
    "{% if m['role'] == 'user' %}[INST] "
    "{% if system and loop.index0 == last_user.i %}{{ system }} {% endif %}"
    "{{ m['content'] }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
)


def answer(topic: str) -> str:
    """The assistant's reply to a question about ``topic``: one fixed style to learn."""
    return f"Ah , my dear child , {topic} is a most wondrous thing indeed ."


def chat_samples(n: int, seed: int = 0, system: bool = True) -> list[dict[str, Any]]:
    """``n`` chat samples (some two-turn), deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}] if system else []
        for _ in range(1 + (i % 3 == 0)):
            topic = rng.choice(TOPICS)
            messages.append({"role": "user", "content": rng.choice(QUESTIONS).format(t=topic)})
            messages.append({"role": "assistant", "content": answer(topic)})
        out.append({"messages": messages})
    return out


def write_jsonl(path: Path, samples: list[dict[str, Any]]) -> Path:
    """Write samples as JSONL; returns ``path``."""
    path.write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    return path


def build_tokenizer(directory: Path) -> Any:
    """A word-level tokenizer over every word of the test data, saved to ``directory``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    corpus = [SYSTEM, *(q.format(t=t) for q in QUESTIONS for t in TOPICS)]
    corpus += [answer(t) for t in TOPICS]
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["[INST]", "[/INST]"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    return fast


def build_model(directory: Path, vocab_size: int, seed: int = 0) -> None:
    """A randomly initialised two-layer Mistral model saved to ``directory``."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    MistralForCausalLM(config).save_pretrained(directory)


def build_tiny_model(directory: Path) -> Path:
    """Tokenizer and model in one directory (what ``base_model`` points at)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    build_model(directory, vocab_size=len(tokenizer))
    return directory
