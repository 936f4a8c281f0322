"""Exact token counts with Mistral's own tokenizer (optional extra ``tokens``).

Counts follow mistral-finetune's ``validate_data`` (reference notes §2.3): the SentencePiece
v3 tokenizer (``MistralTokenizer.v3()``), the full sequence of a chat sample (BOS,
``[INST]``/``[/INST]``, the ``[AVAILABLE_TOOLS]`` JSON, tool calls and results, EOS), masked
turns included; ``[user "hi", assistant "ok"]`` is 6 tokens. Pretrain text is
``encode(text, bos=True, eos=True)``. The tokenizer files ship inside mistral-common, so no
network is needed.

mistral-common is imported lazily, only when exact counts are asked for.
"""

from __future__ import annotations

from typing import Any

from reconciler import install_command
from reconciler.chat import normalize, without_weight
from reconciler.errors import DataError, Problem

INSTALL_HINT = install_command("tokens")


def _no_text(*args: Any, **kwargs: Any) -> str:
    return ""


class MistralTokenCounter:
    """Counts tokens of valid samples (dicts as parsed from JSONL)."""

    def __init__(self) -> None:
        try:
            from mistral_common.protocol.instruct.request import InstructRequest
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

            tokenizer = MistralTokenizer.v3()
        except ImportError as exc:
            raise DataError(
                [
                    Problem(
                        "TOKENIZER",
                        f"exact token counts need mistral-common with sentencepiece ({exc})",
                        hint=f"install the optional extra: {INSTALL_HINT}, or drop "
                        "--exact-tokens (an estimate is always shown)",
                    )
                ],
                summary="cannot count tokens exactly",
            ) from exc
        self._request = InstructRequest
        self._instruct = tokenizer.instruct_tokenizer
        # encode_instruct also decodes the tokens back to text, which takes most of its time
        # and is not needed to count. This instance is ours alone (v3() builds a new one).
        self._instruct.decode = _no_text  # type: ignore[method-assign]
        self._raw = tokenizer.instruct_tokenizer.tokenizer

    def count(self, obj: dict[str, Any], kind: str) -> int:
        """Tokens of one sample; 0 when mistral-common cannot build the request."""
        if kind == "pretrain":
            text = obj.get("text", obj.get("content"))
            return len(self._raw.encode(text if isinstance(text, str) else "", True, True))
        system, messages, tools = normalize(obj)
        chat = without_weight(messages)
        for item in chat:
            if item.get("tool_calls"):
                item["content"] = item["content"] or None  # empty content beside tool calls: none
        try:
            request: Any = self._request(messages=chat, system_prompt=system, available_tools=tools)
            return len(self._instruct.encode_instruct(request).tokens)
        except Exception:  # noqa: BLE001 - a sample our rules accept but the library doesn't
            return 0
