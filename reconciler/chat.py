"""A chat sample in the shape tokenizers read: one system prompt, messages, tools.

A sample in the format ``reconciler validate`` accepts has ``messages`` (or Mistral's
``interactions``) with ``system``, ``user``, ``assistant`` and ``tool`` roles, optional
``tools`` (or ``available_tools``) and ``system_prompt``; content may be a string or a list
of chunks, and Mistral's ``text`` may stand for ``content``. Exact token counts
(:mod:`reconciler.data.tokens`) and the trainer's renderers (:mod:`reconciler.train.render`)
both hand samples to mistral-common or a chat template, so both read them through
:func:`normalize`. It imports nothing of the package: the trainer, which runs on a worker with
only the base install, and the data validator, which the sandbox imports, both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Message = dict[str, Any]
"""One normalised message (see :func:`normalize`)."""


def content_text(content: Any) -> str | None:
    """Message content as text: a string, or the text chunks of a content list."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(c.get("text", "")) for c in content if isinstance(c, Mapping) and "text" in c
        )
    return str(content)


def normalize(sample: Mapping[str, Any]) -> tuple[str | None, list[Message], list[Any] | None]:
    """(system prompt, messages without system ones, tools) of a sample.

    Messages come out in the shape chat templates and mistral-common both read: ``role``,
    ``content`` as text, and for assistants ``tool_calls`` and ``weight``, for tools
    ``tool_call_id`` and ``name``. System messages (and a top-level ``system_prompt``) are
    joined into one system prompt, which each renderer places as its format wants.
    """
    raw = sample.get("messages", sample.get("interactions")) or []
    system: list[str] = []
    if isinstance(sample.get("system_prompt"), str):
        system.append(sample["system_prompt"])
    messages: list[Message] = []
    for msg in raw:
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        content = content_text(msg.get("content", msg.get("text")))
        if role == "system":
            system.append(content or "")
            continue
        item: Message = {"role": role, "content": content}
        if role == "assistant":
            if msg.get("tool_calls"):
                item["tool_calls"] = list(msg["tool_calls"])
            item["weight"] = msg.get("weight", 1)
        elif role == "tool":
            item["tool_call_id"] = msg.get("tool_call_id")
            if msg.get("name"):
                item["name"] = msg["name"]
        messages.append(item)
    tools = sample.get("tools", sample.get("available_tools")) or None
    return ("\n\n".join(system) if system else None), messages, tools


def without_weight(messages: list[Message]) -> list[Message]:
    """The messages without the assistants' ``weight``, which tokenizers do not take (it only
    says which assistant tokens are trained on)."""
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]
