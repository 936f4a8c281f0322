"""Chat samples to token ids with a loss mask: only assistant tokens are trained on.

A sample is a JSON object in the format ``reconciler validate`` accepts: ``messages`` (or
``interactions``) with ``system``, ``user``, ``assistant`` and ``tool`` roles, optional
``tools`` (or ``available_tools``) and ``system_prompt``. As in mistral-finetune, the loss
covers the tokens of each assistant message (content or tool calls, and the end-of-sequence
token that closes it) unless the message has ``weight: 0``; system, user and tool tokens and
the template's role markers only give context.

Two renderers produce the token sequence:

* :class:`ChatTemplateRenderer`: the tokenizer's chat template (``transformers``).
* :class:`MistralCommonRenderer`: Mistral's own tokenizer from mistral-common (the sequence
  mistral-finetune trains on), for models that ship ``tekken.json`` or ``tokenizer.model.v*``.

Both find the assistant tokens the same way (:func:`assistant_mask`): the tokens one assistant
message adds are what rendering the conversation up to and including it adds to rendering the
conversation before it; that piece is then located in the full conversation's tokens, after
the previous one. Locating the piece, rather than assuming every prefix renders as the start
of the whole, keeps templates right that move things (Mistral's put the system prompt in the
last user message). A piece that the full rendering leaves out (some tokenizers drop tool
calls before the last user message) is not trained on, as there is nothing to train.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler import install_command
from reconciler.chat import Message, normalize, without_weight
from reconciler.errors import TrainingError

Encoder = Callable[[list[Message], list[dict[str, Any]] | None, bool], list[int]]
"""(messages, tools, add_generation_prompt) -> token ids of the rendered conversation."""

MISTRAL_TOKENIZER_FILES = ("tekken.json", "tokenizer.model.v*", "tokenizer.model")
"""File names of Mistral tokenizers in a model directory, in order of preference."""


@dataclass(frozen=True)
class Encoded:
    """A rendered sample.

    Attributes:
        tokens: token ids of the whole conversation.
        targets: per token, whether predicting it counts in the loss.
    """

    tokens: list[int]
    targets: list[bool]

    @property
    def n_targets(self) -> int:
        """How many tokens are trained on."""
        return sum(self.targets)


class Renderer(Protocol):
    """Turns one chat sample into an :class:`Encoded`, or ``None`` if it has nothing to
    train on."""

    eos_id: int | None
    pad_id: int

    def encode(self, sample: Mapping[str, Any]) -> Encoded | None:
        """The sample's tokens and loss mask (``None`` when no assistant token is left)."""
        ...


def _find(haystack: Sequence[int], needle: Sequence[int], start: int) -> int:
    """First index >= ``start`` where ``needle`` occurs in ``haystack``, or -1."""
    n = len(needle)
    if n == 0:
        return -1
    first = needle[0]
    last = len(haystack) - n
    i = start
    while i <= last:
        try:
            i = haystack.index(first, i, last + 1)
        except ValueError:
            return -1
        if list(haystack[i : i + n]) == list(needle):
            return i
        i += 1
    return -1


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def assistant_mask(
    messages: list[Message], tools: list[Any] | None, encode: Encoder
) -> Encoded | None:
    """Render ``messages`` with ``encode`` and mark the tokens of trained assistant messages.

    Returns ``None`` when no assistant token is trained on (no assistant message, all of
    them with weight 0, or none found in the rendering).
    """
    full = encode(messages, tools, False)
    targets = [False] * len(full)
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = encode(messages[:index], tools, True) if index else []
        upto = encode(messages[: index + 1], tools, False)
        piece = upto[_common_prefix(before, upto) :]
        at = _find(full, piece, cursor)
        if at < 0:
            continue
        cursor = at + len(piece)
        if message.get("weight", 1) != 0:
            targets[at:cursor] = [True] * len(piece)
    if not any(targets):
        return None
    return Encoded(tokens=full, targets=targets)


class ChatTemplateRenderer:
    """Renders with a ``transformers`` tokenizer's chat template.

    The system prompt becomes a leading ``system`` message (templates place it themselves),
    and assistant ``weight`` fields are removed before rendering.
    """

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise TrainingError(
                f"the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                "use a model that ships one, or set chat_format: mistral_common for a Mistral "
                "tokenizer file"
            )
        self._tokenizer = tokenizer
        self.eos_id: int | None = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad if pad is not None else (self.eos_id or 0))

    def _encode(
        self, system: str | None, messages: list[Message], tools: list[Any] | None, gen: bool
    ) -> list[int]:
        chat: list[Message] = [{"role": "system", "content": system}] if system else []
        chat += without_weight(messages)
        text = self._tokenizer.apply_chat_template(
            chat, tools=tools, tokenize=False, add_generation_prompt=gen
        )
        ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return [int(i) for i in ids]

    def encode(self, sample: Mapping[str, Any]) -> Encoded | None:
        """See :class:`Renderer`."""
        system, messages, tools = normalize(sample)
        return assistant_mask(messages, tools, lambda m, t, gen: self._encode(system, m, t, gen))


def find_mistral_tokenizer(directory: Path) -> Path | None:
    """The Mistral tokenizer file in a model directory, if there is one."""
    if not directory.is_dir():
        return None
    for pattern in MISTRAL_TOKENIZER_FILES:
        found = sorted(directory.glob(pattern))
        if found:
            return found[-1]
    return None


class MistralCommonRenderer:
    """Renders with mistral-common's tokenizer, as mistral-finetune does.

    The system prompt and the tools go into the request, which places them (in the last user
    message for the v3 tokenizers); tool results before the last user message are left out by
    the tokenizer itself.
    """

    def __init__(self, tokenizer_file: Path) -> None:
        try:
            from mistral_common.protocol.instruct.request import InstructRequest
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
        except ImportError as exc:
            raise TrainingError(
                "chat_format mistral_common needs the mistral-common package: "
                f"{install_command('tokens')} ({exc})"
            ) from exc
        try:
            tokenizer = MistralTokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # noqa: BLE001 - any failure of a foreign file format
            raise TrainingError(
                f"cannot load the Mistral tokenizer {tokenizer_file}: {exc}"
            ) from exc
        self._request = InstructRequest
        self._instruct = tokenizer.instruct_tokenizer
        raw = tokenizer.instruct_tokenizer.tokenizer
        self.eos_id: int | None = int(raw.eos_id)
        pad = getattr(raw, "pad_id", None)
        self.pad_id = int(pad) if isinstance(pad, int) and pad >= 0 else int(raw.eos_id)

    def _encode(
        self, system: str | None, messages: list[Message], tools: list[Any] | None, gen: bool
    ) -> list[int]:
        chat = without_weight(messages)
        request: Any = self._request.model_validate(
            {"messages": chat, "system_prompt": system, "available_tools": tools}
        )
        return [int(t) for t in self._instruct.encode_instruct(request).tokens]

    def encode(self, sample: Mapping[str, Any]) -> Encoded | None:
        """See :class:`Renderer`."""
        system, messages, tools = normalize(sample)
        return assistant_mask(messages, tools, lambda m, t, gen: self._encode(system, m, t, gen))
