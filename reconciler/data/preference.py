"""Rules of the preference (DPO) format: one comparison of two answers per line.

A dataset with ``format: preference`` holds OpenAI's preference samples
(``FineTunePreferenceRequestInput`` of its API reference), one per line::

    {"input": {"messages": [...], "tools": [...], "parallel_tool_calls": true},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

``input`` is a conversation in OpenAI's chat format that ends with the user's turn
(``tools`` and ``parallel_tool_calls`` are optional); each output is a list of exactly one
assistant message (the reference allows at most one, and an empty list compares nothing);
the two outputs must differ. Messages, tools and tool calls are checked with the chat rules
of :mod:`reconciler.data.rules` in OpenAI's dialect (:attr:`ChatRules.openai
<reconciler.data.dialect.ChatRules.openai>`), so tool call ids are free-form strings, keys
the format does not define are errors (``O1``) and an output message takes no ``weight``
(only input messages do). The ``D`` rules are the format's own.

Only the standard library is used (plus what the chat rules use): the sandbox server
imports the validator.
"""

from __future__ import annotations

from typing import Any

from reconciler.data.dialect import ChatRules
from reconciler.data.registry import Issue, key_list, rule, short, type_name
from reconciler.data.rules import (
    F16,
    F17,
    check_assistant,
    check_content,
    check_keys,
    check_messages,
    check_order,
    check_pairs,
    check_parallel_tool_calls,
    check_tools,
)

RULES = ChatRules.openai
"""The chat dialect of the messages inside preference samples."""

OUTPUTS = ("preferred_output", "non_preferred_output")
SAMPLE_KEYS = frozenset(("input", *OUTPUTS))
_OUTPUT_MESSAGE_KEYS = frozenset(("role", "content", "name", "tool_calls", "refusal"))
"""The keys of an output message: an assistant message without ``weight``."""

SHAPE_HINT = (
    'write each line as {"input": {"messages": [..., {"role": "user", "content": ...}]}, '
    '"preferred_output": [{"role": "assistant", "content": ...}], '
    '"non_preferred_output": [{"role": "assistant", "content": ...}]}'
)

D1 = rule("D1", "preference sample without 'input', 'preferred_output' or 'non_preferred_output'")
D2 = rule("D2", "preference input without messages")
D3 = rule("D3", "preference input not ending with a user message")
D4 = rule("D4", "preferred/non-preferred output not exactly one message")
D5 = rule("D5", "preferred/non-preferred output not an assistant message")
D6 = rule("D6", "preferred and non-preferred outputs are the same")


def check_preference(
    obj: dict[str, Any],
    roles: dict[str, int],
    issues: list[Issue],
) -> None:
    """Check one preference sample and count its messages per role (input and outputs).

    Args:
        obj: the parsed sample.
        roles: messages per role, updated in place (for the file summary).
        issues: problems are appended here.
    """
    missing = [key for key in ("input", *OUTPUTS) if key not in obj]
    if missing:
        if "messages" in obj:
            message = "a chat sample ('messages') in a preference dataset"
            hint = f"{SHAPE_HINT}; or declare the dataset with 'format: chat'"
        else:
            wanted = ", ".join(repr(k) for k in missing)
            message = f"the preference sample has no {wanted} key, but only {key_list(obj)}"
            hint = SHAPE_HINT
        issues.append(D1.issue(message, hint))
        return
    check_keys("the sample", obj, SAMPLE_KEYS, issues)
    given = obj["input"]
    if type(given) is dict:
        _check_input(given, roles, issues)
    else:
        issues.append(
            F16.issue(
                f"'input' must be an object with 'messages', got {type_name(given)}", SHAPE_HINT
            )
        )
    for key in OUTPUTS:
        _check_output(key, obj[key], roles, issues)
    if obj["preferred_output"] == obj["non_preferred_output"]:
        issues.append(
            D6.issue(
                "preferred_output and non_preferred_output are the same; the sample teaches "
                "nothing",
                "make non_preferred_output the worse answer, or drop the sample",
            )
        )


def _check_input(given: dict[str, Any], roles: dict[str, int], issues: list[Issue]) -> None:
    """O1, D2, D3, the tool rules and the message rules on a sample's ``input``."""
    check_keys("input", given, RULES.sample_keys, issues)
    if "tools" in given:
        check_tools(given["tools"], issues, RULES, "input.tools")
    check_parallel_tool_calls(given, issues)
    messages = given.get("messages")
    if type(messages) is not list:
        if messages is None:
            issues.append(
                D2.issue(
                    "input has no 'messages'",
                    "give input the conversation up to the user's turn: "
                    '{"messages": [{"role": "user", "content": ...}]}',
                )
            )
        else:
            issues.append(
                F16.issue(
                    f"'input.messages' must be an array of message objects, got "
                    f"{type_name(messages)}",
                    None,
                )
            )
        return
    if not messages:
        issues.append(
            D2.issue(
                "input.messages is empty",
                "give input the conversation up to the user's turn",
            )
        )
        return
    flow = check_messages(messages, "input.messages", roles, issues, RULES)
    if flow is None:
        return
    check_order(flow, issues)
    last = flow[-1][0] if flow else "system"
    if last != "user":
        issues.append(
            D3.issue(
                f"input must end with a user message; its last message has role '{last}'",
                "the outputs answer the user's last turn: put the compared assistant answers "
                "in preferred_output and non_preferred_output, not in input",
            )
        )
    check_pairs(flow, issues, answered_at_end=True)


def _check_output(key: str, value: Any, roles: dict[str, int], issues: list[Issue]) -> None:
    """F16, F17, D4, D5, O1 and the assistant message rules on one output list."""
    if type(value) is not list:
        issues.append(
            F16.issue(
                f"'{key}' must be an array with one assistant message, got {type_name(value)}",
                f'write "{key}": [{{"role": "assistant", "content": ...}}]',
            )
        )
        return
    if len(value) != 1:
        issues.append(
            D4.issue(
                f"'{key}' must hold exactly one assistant message, it has {len(value)}",
                f'write "{key}": [{{"role": "assistant", "content": ...}}]',
            )
        )
    for j, msg in enumerate(value):
        where = f"{key}[{j}]"
        if type(msg) is not dict:
            issues.append(
                F17.issue(
                    f"{where} must be an object, got {type_name(msg)} {short(msg, 20)}",
                    '{"role": "assistant", "content": ...}',
                )
            )
            continue
        role = msg.get("role")
        if role != "assistant":
            issues.append(
                D5.issue(
                    f"{where} must be an assistant message, got role {short(role, 30)}",
                    'outputs are the compared answers: {"role": "assistant", "content": ...}',
                )
            )
            continue
        roles["assistant"] = roles.get("assistant", 0) + 1
        check_keys(where, msg, _OUTPUT_MESSAGE_KEYS, issues)
        content = msg.get("content")
        check_content(where, "assistant", content, issues, "content", RULES)
        check_assistant(where, msg, content, msg.get("tool_calls"), True, issues, RULES)
