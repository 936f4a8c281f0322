"""Chat dialects: what differs between providers' chat sample formats, as data.

The chat rules of :mod:`reconciler.data.rules` read a :class:`ChatRules` instead of branching
on a provider's name. Two dialects exist:

* :attr:`ChatRules.mistral`, the default and what every caller uses today: mistral-finetune
  and mistral-common (9-character tool call ids, tool functions with name, description and
  parameters, one system message, content *or* tool calls, unknown keys ignored, Mistral's
  alternative spellings ``interactions``, ``available_tools``, ``text``, ``system_prompt``).
* :attr:`ChatRules.openai`, OpenAI's fine-tuning chat format (``FineTuneChatRequestInput``
  of its API reference): any non-empty tool call id, tool functions need only a name, tools
  and tool calls have ``type: function``, assistant messages may have content and tool calls,
  several system messages are fine, ``parallel_tool_calls`` is a boolean, and any key the
  format does not define is an error (``O1``). The preference (DPO) format's messages are
  always checked with it.

Only the standard library is used: the sandbox server imports the validator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

MISTRAL_ID_HINT = (
    "tool call ids must be exactly 9 characters a-z A-Z 0-9 (e.g. 'TX92Jm8Zi'); rewrite ids "
    "such as 'call_abc123' with a stable 9-character hash of the original id, and use the "
    "same new id in the answering tool message's tool_call_id"
)
OPENAI_ID_HINT = (
    "give every tool call a non-empty string id (e.g. 'call_abc123') and use the same id as "
    "the answering tool message's tool_call_id"
)

_TEXT = frozenset(("text",))


@dataclass(frozen=True, slots=True, eq=False)
class ChatRules:
    """One provider's chat sample format (see the module docstring).

    Compared and hashed by identity: there is one instance per dialect.

    Attributes:
        name: ``mistral`` or ``openai``.
        id_pattern: what a tool call id (``tool_calls[].id``, a tool message's
            ``tool_call_id``) must fully match (``M8``, ``M10``).
        id_text: that pattern in words, for messages.
        id_hint: fix-it hint of a bad id.
        null_id_on_last: the id ``"null"`` is accepted on the last message (mistral-common).
        tool_function_keys: keys a tool's ``function`` must have (``F5``).
        tool_type: the ``type`` tools and tool calls must have (``O2``), or None for any.
        mistral_spellings: accept ``interactions``, ``available_tools``, a message's
            ``text``, ``system_prompt``, ``only_last`` and ``prefix`` (with their rules F2,
            F3, F8, F11 for ``system_prompt``, M14 for ``prefix``).
        one_system: at most one system message (``F11``).
        content_with_calls: an assistant message may have both content and tool calls
            (otherwise ``M6`` wants exactly one of them).
        sample_keys: the top-level keys a sample may have, or None for any (``O1``).
        message_keys: the keys a message may have per role, or None for any (``O1``).
        chunk_types: the content chunk types each role takes (``M14``).
    """

    name: str
    id_pattern: re.Pattern[str]
    id_text: str
    id_hint: str
    null_id_on_last: bool
    tool_function_keys: tuple[str, ...]
    tool_type: str | None
    mistral_spellings: bool
    one_system: bool
    content_with_calls: bool
    sample_keys: frozenset[str] | None
    message_keys: Mapping[str, frozenset[str]] | None
    chunk_types: Mapping[str, frozenset[str]]

    mistral: ClassVar[ChatRules]
    """mistral-finetune and mistral-common 1.13.1: what ``reconciler validate`` checks."""
    openai: ClassVar[ChatRules]
    """OpenAI's fine-tuning chat format (supervised), also the preference format's messages."""

    @classmethod
    def named(cls, name: str) -> ChatRules:
        """The dialect called ``name`` (``mistral`` or ``openai``); ValueError otherwise."""
        for rules in (cls.mistral, cls.openai):
            if rules.name == name:
                return rules
        raise ValueError(f"unknown chat dialect {name!r}: expected 'mistral' or 'openai'")


ChatRules.mistral = ChatRules(
    name="mistral",
    id_pattern=re.compile(r"[a-zA-Z0-9]{9}"),
    id_text="a-z, A-Z, 0-9, with a length of 9",
    id_hint=MISTRAL_ID_HINT,
    null_id_on_last=True,
    tool_function_keys=("name", "description", "parameters"),
    tool_type=None,
    mistral_spellings=True,
    one_system=True,
    content_with_calls=False,
    sample_keys=None,
    message_keys=None,
    # Chunk types mistral-common 1.13.1 accepts per role in finetuning requests; vision
    # fine-tunes put images in user messages, so those stay allowed there.
    chunk_types={
        "system": _TEXT,
        "user": frozenset(("text", "image_url", "image")),
        "assistant": _TEXT,
        "tool": _TEXT,
    },
)

ChatRules.openai = ChatRules(
    name="openai",
    id_pattern=re.compile(r".+", re.S),
    id_text="a non-empty string",
    id_hint=OPENAI_ID_HINT,
    null_id_on_last=False,
    tool_function_keys=("name",),
    tool_type="function",
    mistral_spellings=False,
    one_system=False,
    content_with_calls=True,
    sample_keys=frozenset(("messages", "tools", "parallel_tool_calls")),
    message_keys={
        "system": frozenset(("role", "content", "name")),
        "user": frozenset(("role", "content", "name")),
        "assistant": frozenset(("role", "content", "name", "tool_calls", "refusal", "weight")),
        "tool": frozenset(("role", "content", "tool_call_id")),
    },
    # Fine-tuning takes text and images only (no audio or file parts).
    chunk_types={
        "system": _TEXT,
        "user": frozenset(("text", "image_url")),
        "assistant": frozenset(("text", "refusal")),
        "tool": _TEXT,
    },
)
