"""A minimal check of DPO preference files, the training data of OpenAI's ``dpo`` method.

One sample per line::

    {"input": {"messages": [{"role": "user", "content": "..."}]},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

The shared training-data rules (:mod:`reconciler.data`) do not know this format yet; until
they do, the sandbox checks its shape here — JSON objects, the three keys, an input
conversation that does not end with the answer, and one assistant message on each side —
with line numbers, like every other rule. Once the data package validates preference files,
:func:`~.validation.check_upload` should use it and this module can go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from reconciler.data.lines import LineReader
from reconciler.sandbox.validation import UploadCheck, UploadProblem

#: Roles an input message may have.
INPUT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: Problems kept per file (the rest are only counted).
MAX_PROBLEMS = 100


def check_preference(path: Path, name: str) -> UploadCheck:
    """Check every line of the preference file at ``path`` (``name`` in messages)."""
    check = UploadCheck(
        sample_type="preference", num_lines=0, samples=0, invalid=0, approx_tokens=0
    )
    with path.open("rb") as stream:
        for lineno, (line, size, _) in enumerate(LineReader(stream), 1):
            check.num_lines = lineno
            if line is not None and not line.strip():
                continue
            check.samples += 1
            problem = _sample_problem(line, size)
            if problem is None:
                check.approx_tokens += (size + 3) // 4
                continue
            check.invalid += 1
            if len(check.problems) < MAX_PROBLEMS:
                check.problems.append(UploadProblem(lineno, *problem))
    if check.samples == 0:
        check.problems.append(UploadProblem(0, "EMPTY", f"{name} holds no samples"))
    return check


def _sample_problem(line: bytes | None, size: int) -> tuple[str, str] | None:
    """(code, message) of the first thing wrong with one sample, or None when it is valid."""
    if line is None:
        return "LONG_LINE", f"line of {size:,} bytes is too long to be a sample"
    try:
        sample = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return "DPO_JSON", f"not valid JSON ({exc})"
    if not isinstance(sample, dict):
        return "DPO_OBJECT", "a preference sample is a JSON object"
    missing = [k for k in ("input", "preferred_output", "non_preferred_output") if k not in sample]
    if missing:
        return "DPO_KEYS", f"missing {', '.join(repr(k) for k in missing)}"
    conversation = sample["input"]
    messages = conversation.get("messages") if isinstance(conversation, dict) else None
    if not isinstance(messages, list) or not messages:
        return "DPO_INPUT", "'input' must be an object with a non-empty 'messages' list"
    for i, message in enumerate(messages):
        if not _is_message(message, INPUT_ROLES):
            return "DPO_INPUT", (
                f"input.messages[{i}] must be an object with a role "
                f"({', '.join(sorted(INPUT_ROLES))}) and a content"
            )
    if messages[-1]["role"] == "assistant":
        return "DPO_INPUT", "the input must not end with the assistant's answer"
    for key in ("preferred_output", "non_preferred_output"):
        output = sample[key]
        if not (
            isinstance(output, list)
            and len(output) == 1
            and _is_message(output[0], frozenset({"assistant"}))
        ):
            return "DPO_OUTPUT", f"'{key}' must be a list of one assistant message with a content"
    return None


def _is_message(message: Any, roles: frozenset[str]) -> bool:
    """Whether ``message`` is an object with one of ``roles`` and a non-empty content."""
    if not isinstance(message, dict) or message.get("role") not in roles:
        return False
    content = message.get("content")
    if isinstance(content, str | list):
        return bool(content)
    # An assistant turn may call tools instead of answering in text.
    return bool(message.get("tool_calls"))
