"""Per-sample rules of Mistral fine-tuning data: what one parsed JSONL line must satisfy.

The rule codes and semantics follow the reference notes on mistral-finetune's
``build_instruct_sample`` (codes ``F1``..``F17``) and mistral-common's finetuning validator
(``M1``..``M14``, version 1.13.1 where versions differ, e.g. ``user`` after ``tool`` is
allowed), plus pretrain rules ``P1``..``P3``. Where mistral-finetune crashes instead of
reporting (unknown role, wrong JSON types, non-object values, bad tool ids or names in tool
messages or tool definitions) we report the rule and go on. Each rule is declared (code,
title, severity: see :mod:`reconciler.data.registry`) next to the function that checks it.

The checks read a :class:`~reconciler.data.dialect.ChatRules` (default: Mistral's) for what
differs between providers' chat formats; OpenAI's dialect adds the rules ``O1`` (unknown keys)
and ``O2`` (tool types). The message-level checks are public, for the preference format of
:mod:`reconciler.data.preference`.

Unlike mistral-finetune, which stops at the first exception, a sample gets every independent
problem reported at once; the conversation-structure rules (M1..M5) run only when every
message has a known role, so one broken message does not cascade into noise.

Only the standard library is used here (M12's :mod:`~reconciler.data.schema` adds orjson
and, lazily, ``jsonschema``): the sandbox server imports this module. It runs on every
sample the fast path does not accept, so it works on plain dicts with precompiled regexes
and no per-sample allocation beyond the problem list.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.data.dialect import ChatRules
from reconciler.data.registry import Issue, Rule, key_list, rule, short, type_name
from reconciler.data.schema import schema_problem

ROLES = frozenset(("system", "user", "assistant", "tool"))

_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")

NAME_HINT = "use only a-z A-Z 0-9 _ - (1 to 64 characters), e.g. 'get_weather'"

# Type checks run wherever a value is read, so these two are reported all over the module.
F16 = rule("F16", "wrong JSON type (mistral-finetune crashes)")
F17 = rule("F17", "line or message not a JSON object (mistral-finetune crashes)")

# Rules of OpenAI's stricter format (ChatRules.openai), checked wherever keys are read.
O1 = rule("O1", "unknown key (OpenAI's format defines every key)")
O2 = rule("O2", "tool or tool call without type 'function' (OpenAI)")


def check_keys(
    where: str, obj: dict[str, Any], allowed: frozenset[str] | None, issues: list[Issue]
) -> None:
    """O1 on every key of ``obj`` that is not in ``allowed`` (None: any key is fine)."""
    if allowed is None:
        return
    for key in obj:
        if key not in allowed:
            issues.append(
                O1.issue(
                    f"{where} has the unknown key {short(key)}",
                    f"remove it; the keys here are: {', '.join(sorted(allowed))}",
                )
            )


def _check_type(where: str, obj: dict[str, Any], expected: str | None, issues: list[Issue]) -> None:
    """O2: a tool or tool call's ``type`` is ``expected`` (when the dialect wants one)."""
    if expected is not None and obj.get("type") != expected:
        got = f"got {short(obj['type'])}" if "type" in obj else "it has none"
        issues.append(
            O2.issue(f"{where}.type must be {expected!r} ({got})", f'add "type": "{expected}"')
        )


def _check_name(
    name: Any, field: str, bad: Rule, said: str, issues: list[Issue], end: str = ""
) -> None:
    """F16 when a function name (``field``) is not a string; ``bad`` (M9, M11, M13) when it
    breaks the name pattern, said as "``said`` 'name' but must be ...``end``"."""
    if type(name) is not str:
        issues.append(F16.issue(f"{field} must be a string", NAME_HINT))
    elif not _NAME_RE.fullmatch(name):
        issues.append(
            bad.issue(
                f"{said} {short(name)} but must be a-z, A-Z, 0-9, or contain underscores and "
                f"dashes, with a maximum length of 64{end}",
                NAME_HINT,
            )
        )


def _check_id(
    value: Any, field: str, where: str, bad: Rule, issues: list[Issue], rules: ChatRules
) -> None:
    """F16 when a tool call id (``field``) is not a string; ``bad`` (M8, M10) when it is not
    an id of the dialect's format."""
    if type(value) is not str:
        issues.append(F16.issue(f"{field} must be a string, got {type_name(value)}", rules.id_hint))
    elif not rules.id_pattern.fullmatch(value):
        issues.append(
            bad.issue(
                f"{where}: tool call id was {short(value)} but must be {rules.id_text}",
                rules.id_hint,
            )
        )


# --------------------------------------------------------------------------- instruct

F4 = rule("F4", "tool without 'function'")
F5 = rule("F5", "tool function without name/description/parameters")
F6 = rule("F6", "tool parameters not an object")
M12 = rule("M12", "tool parameters not a valid JSON Schema")
M13 = rule("M13", "bad function name in tools (mistral-finetune crashes)")


def check_tools(
    tools: Any, issues: list[Issue], rules: ChatRules = ChatRules.mistral, where: str = "tools"
) -> None:
    """F4-F6, M12, M13 (and O2 when the dialect wants a type) on a ``tools``/``available_tools``
    list, named ``where`` in messages."""
    if type(tools) is not list:
        issues.append(
            F16.issue(f"'{where}' must be an array of tool objects, got {type_name(tools)}", None)
        )
        return
    for i, tool in enumerate(tools):
        if type(tool) is not dict:
            issues.append(F17.issue(f"{where}[{i}] must be an object, got {type_name(tool)}", None))
            continue
        _check_type(f"{where}[{i}]", tool, rules.tool_type, issues)
        fn = tool.get("function")
        if "function" not in tool:
            issues.append(
                F4.issue(
                    f"{where}[{i}] does not have a 'function' key",
                    'write tools as {"type": "function", "function": {"name": ..., '
                    '"description": ..., "parameters": {...}}}',
                )
            )
            continue
        if type(fn) is not dict:
            issues.append(
                F16.issue(f"{where}[{i}].function must be an object, got {type_name(fn)}", None)
            )
            continue
        for key in rules.tool_function_keys:
            if key not in fn:
                issues.append(
                    F5.issue(
                        f"{where}[{i}].function does not have a '{key}' key",
                        "mistral-finetune requires name, description and parameters "
                        '(use "" / {} when there is nothing to say)'
                        if key != "name"
                        else None,
                    )
                )
        if "name" in fn:
            _check_name(
                fn["name"], f"{where}[{i}].function.name", M13, "Function name was", issues, "."
            )
        if "description" in fn and type(fn["description"]) is not str:
            issues.append(F16.issue(f"{where}[{i}].function.description must be a string", None))
        if "parameters" in fn:
            params = fn["parameters"]
            if type(params) is not dict:
                issues.append(
                    F6.issue(
                        f"{where}[{i}].function.parameters has to be of type dict, but is "
                        f"{type_name(params)}",
                        "if the function has no parameters pass an empty object {}",
                    )
                )
            else:
                err = schema_problem(params)
                if err:
                    issues.append(
                        M12.issue(
                            f"Invalid tool schema in tools[{i}]: {err}",
                            "parameters must be a JSON Schema (draft 7), e.g. "
                            '{"type": "object", "properties": {...}, "required": [...]}',
                        )
                    )


M14 = rule("M14", "prefix on the last message / unexpected content chunk type")


def check_content(
    where: str,
    role: str,
    content: Any,
    issues: list[Issue],
    key: str = "content",
    rules: ChatRules = ChatRules.mistral,
) -> None:
    """F16/M14 on a message's content: a string, null, or a list of chunks."""
    if content is None or type(content) is str:
        return
    if type(content) is not list:
        issues.append(
            F16.issue(
                f"{where}.{key} must be a string or a list of content chunks, "
                f"got {type_name(content)} {short(content, 20)}",
                "write the text as a JSON string",
            )
        )
        return
    allowed = rules.chunk_types.get(role, rules.chunk_types["user"])
    for j, chunk in enumerate(content):
        if type(chunk) is not dict:
            issues.append(
                F16.issue(
                    f'{where}.{key}[{j}] must be an object like {{"type": "text", '
                    f'"text": ...}}, got {type_name(chunk)}',
                    None,
                )
            )
            continue
        ctype = chunk.get("type", "text")
        if ctype not in allowed:
            issues.append(
                M14.issue(
                    f"Unexpected content chunk types in {role} message: [{short(ctype, 30)}]",
                    f"{role} messages take chunks of type: {', '.join(sorted(allowed))}",
                )
            )
        elif ctype == "text" and type(chunk.get("text")) is not str:
            issues.append(F16.issue(f"{where}.{key}[{j}].text must be a string", None))


F1 = rule("F1", "no 'messages' (or 'interactions') key")
F2 = rule("F2", "both 'messages' and 'interactions'")
F3 = rule("F3", "both 'tools' and 'available_tools'")


def check_instruct(
    obj: dict[str, Any],
    roles: dict[str, int],
    issues: list[Issue],
    tool_issues: list[Issue] | None = None,
    rules: ChatRules = ChatRules.mistral,
) -> None:
    """Check one chat sample and count its messages per role.

    Args:
        obj: the parsed sample (a dict with ``messages`` or ``interactions``).
        roles: messages per role, updated in place (for the file summary).
        issues: problems are appended here.
        tool_issues: the result of :func:`check_tools` on the sample's tools (in this
            dialect) when the caller already has it (cached: tools repeat across samples);
            None to check here.
        rules: the chat dialect (default: Mistral's).
    """
    spellings = rules.mistral_spellings
    check_keys("the sample", obj, rules.sample_keys, issues)
    has_messages = "messages" in obj
    has_interactions = spellings and "interactions" in obj
    if not has_messages and not has_interactions:
        keys = key_list(obj)
        wanted = "one of 'messages, interactions' key" if spellings else "a 'messages' key"
        issues.append(
            F1.issue(
                f"the conversation does not contain {wanted}, but only {keys}",
                'write chat samples as {"messages": [{"role": "user", "content": ...}, '
                '{"role": "assistant", "content": ...}]}',
            )
        )
        return
    if has_messages and has_interactions:
        issues.append(
            F2.issue(
                "the conversation cannot contain both of 'messages, interactions' key, "
                "but only one of the two",
                "keep 'messages' and remove 'interactions'",
            )
        )
        return
    if spellings and "tools" in obj and "available_tools" in obj:
        issues.append(
            F3.issue(
                "the conversation contains both an 'available_tools' and 'tools' key; "
                "you can only have one",
                "keep 'tools' and remove 'available_tools'",
            )
        )
    tools = obj.get("tools", obj.get("available_tools")) if spellings else obj.get("tools")
    if tool_issues is not None:
        issues.extend(tool_issues)
    elif tools is not None:
        check_tools(tools, issues, rules)
    system_prompt = obj.get("system_prompt") if spellings else None
    if spellings:
        if system_prompt is not None and type(system_prompt) is not str:
            issues.append(F16.issue("'system_prompt' must be a string", None))
        only_last = obj.get("only_last")
        if only_last is not None and type(only_last) is not bool:
            issues.append(F16.issue("'only_last' must be true or false", None))
    else:
        check_parallel_tool_calls(obj, issues)

    messages = obj["messages"] if has_messages else obj["interactions"]
    key = "messages" if has_messages else "interactions"
    if type(messages) is not list:
        issues.append(
            F16.issue(
                f"'{key}' must be an array of message objects, got {type_name(messages)}",
                None,
            )
        )
        return
    flow = check_messages(
        messages, key, roles, issues, rules, system_prompt=system_prompt is not None
    )
    if flow is not None:
        _check_structure(flow, issues)


def check_parallel_tool_calls(obj: dict[str, Any], issues: list[Issue]) -> None:
    """F16 when OpenAI's ``parallel_tool_calls`` is there and not a boolean."""
    value = obj.get("parallel_tool_calls")
    if value is not None and type(value) is not bool:
        issues.append(
            F16.issue(f"'parallel_tool_calls' must be true or false, got {type_name(value)}", None)
        )


Flow = list[tuple[str, int]]
"""The roles of a conversation's non-system messages, in order, with their tool-call counts
(what the structure rules M1-M5 look at)."""

F7 = rule("F7", "message without 'role'")
F8 = rule("F8", "message with both 'text' and 'content'")
F9 = rule("F9", "message without content (and no tool_calls)")
F10 = rule("F10", "unknown role (mistral-finetune crashes)")
F11 = rule("F11", "more than one system message")


def check_messages(
    messages: list[Any],
    key: str,
    roles: dict[str, int],
    issues: list[Issue],
    rules: ChatRules = ChatRules.mistral,
    *,
    system_prompt: bool = False,
) -> Flow | None:
    """The per-message rules (F7-F17, M6-M11, M14, O1, O2) on a list of chat messages.

    Args:
        messages: the messages.
        key: how the list is named in messages (``messages``, ``input.messages``).
        roles: messages per role, updated in place.
        issues: problems are appended here.
        rules: the chat dialect.
        system_prompt: the sample also has Mistral's top-level ``system_prompt`` (F11).

    Returns:
        The conversation's flow for the structure rules, or None when a message is not an
        object or has no known role (so one broken message does not cascade into noise).
    """
    spellings = rules.mistral_spellings
    message_keys = rules.message_keys
    structure_ok = True
    seen_system = system_prompt
    flow: Flow = []
    last_index = len(messages) - 1
    for i, msg in enumerate(messages):
        where = f"{key}[{i}]"
        if type(msg) is not dict:
            issues.append(
                F17.issue(
                    f"{where} must be an object, got {type_name(msg)} {short(msg, 20)}",
                    'each message is {"role": ..., "content": ...}',
                )
            )
            structure_ok = False
            continue
        if "role" not in msg:
            issues.append(
                F7.issue(
                    f"{where} does not contain a 'role' key, but only {key_list(msg)}",
                    'add "role": one of system, user, assistant, tool',
                )
            )
            structure_ok = False
            continue
        role = msg["role"]
        rname = role if type(role) is str else short(role, 20)
        if spellings and "text" in msg and "content" in msg:
            issues.append(
                F8.issue(
                    f"{where}: a {rname} message contains both a 'text' and 'content' key",
                    "keep only 'content'",
                )
            )
        ckey = "content" if "content" in msg or not spellings else "text"
        content = msg.get(ckey)
        tool_calls = msg.get("tool_calls")
        if tool_calls is None and content is None:
            wanted = "one of 'content', 'text'" if spellings else "'content'"
            issues.append(
                F9.issue(
                    f"{where}: a {rname} message does not contain {wanted} "
                    f"(non-null), but only {key_list(msg)}",
                    'give it "content": "..." (an assistant message may have "tool_calls" instead)',
                )
            )
        if type(role) is not str or role not in ROLES:
            issues.append(
                F10.issue(
                    f"{where}: unrecognized role {short(role, 30)}",
                    "role must be one of system, user, assistant, tool"
                    + (
                        " (use role 'system' for a system prompt)"
                        if role == "system_prompt"
                        else ""
                    ),
                )
            )
            structure_ok = False
            continue
        roles[role] = roles.get(role, 0) + 1
        if message_keys is not None:
            check_keys(where, msg, message_keys[role], issues)
        check_content(where, role, content, issues, ckey, rules)
        if role == "system":
            if seen_system and rules.one_system:
                issues.append(
                    F11.issue(
                        f"{where}: multiple messages with role 'system' encountered; only one "
                        "is allowed"
                        + (" (the sample also sets 'system_prompt')" if system_prompt else ""),
                        "merge the system prompts into one message",
                    )
                )
            seen_system = True
            continue
        if spellings and msg.get("prefix") is True and i == last_index:
            issues.append(
                M14.issue(
                    f"{where}: cannot continue final message in finetuning mode (prefix: true)",
                    "remove 'prefix' from the last message",
                )
            )
        ncalls = 0
        if role == "assistant":
            ncalls = check_assistant(
                where, msg, content, tool_calls, i == last_index, issues, rules
            )
        elif role == "tool":
            _check_tool_message(where, msg, issues, rules)
        flow.append((role, ncalls))
    return flow if structure_ok else None


M6 = rule("M6", "assistant message needs content xor tool_calls")
M7 = rule("M7", "assistant weight not 0 or 1")


def check_assistant(
    where: str,
    msg: dict[str, Any],
    content: Any,
    tool_calls: Any,
    is_last: bool,
    issues: list[Issue],
    rules: ChatRules = ChatRules.mistral,
) -> int:
    """F16, M6, M7 and each tool call's rules (:func:`_check_tool_call`) on an assistant
    message; returns its number of tool calls.

    ``content`` is the message's content (or Mistral's ``text``) and ``tool_calls`` its
    ``tool_calls``, as the caller read them; ``is_last``: it is the conversation's last."""
    weight = msg.get("weight")
    if weight is not None:
        if type(weight) not in (int, float):
            issues.append(
                F16.issue(
                    f"{where}.weight must be the number 0 or 1, got {type_name(weight)} "
                    f"{short(weight, 20)}",
                    "use 0 to mask the message and 1 (or omit weight) to train on it",
                )
            )
        elif weight not in (0, 1):
            issues.append(
                M7.issue(
                    f"{where}: assistant message weight must be either 0 or 1, got {weight}",
                    "use 0 to mask the message and 1 (or omit weight) to train on it",
                )
            )
    if tool_calls is not None and type(tool_calls) is not list:
        issues.append(
            F16.issue(f"{where}.tool_calls must be an array, got {type_name(tool_calls)}", None)
        )
        tool_calls = None
    if not content and not tool_calls:
        issues.append(
            M6.issue(
                f"{where}: assistant message must have "
                + (
                    "content or tool_calls"
                    if rules.content_with_calls
                    else "either content or tool_calls, but not both"
                )
                + " (has neither content nor tool_calls (empty content))",
                "give the assistant message a non-empty answer, or drop the sample",
            )
        )
    elif content and tool_calls and not rules.content_with_calls:
        issues.append(
            M6.issue(
                f"{where}: assistant message must have either content or tool_calls, but not "
                "both (has both content and tool_calls)",
                "split it into a message with the text and one with the tool calls",
            )
        )
    if not tool_calls:
        return 0
    for j, call in enumerate(tool_calls):
        _check_tool_call(f"{where}.tool_calls[{j}]", call, is_last, issues, rules)
    return len(tool_calls)


F12 = rule("F12", "tool call without 'id' or 'function'")
F13 = rule("F13", "tool call function without 'name' or 'arguments'")
F14 = rule("F14", "tool call arguments not a string")
M8 = rule("M8", "bad tool call id in an assistant message")
M9 = rule("M9", "bad function name in a tool call")


def _check_tool_call(
    cw: str, call: Any, is_last: bool, issues: list[Issue], rules: ChatRules
) -> None:
    """F12-F14, F16, M8, M9 (and O2) on one tool call of an assistant message, named ``cw``."""
    if type(call) is not dict:
        issues.append(F16.issue(f"{cw} must be an object, got {type_name(call)}", None))
        return
    for key in ("id", "function"):
        if key not in call:
            issues.append(
                F12.issue(
                    f"{cw}: a tool call of an assistant message does not have a '{key}' key",
                    rules.id_hint if key == "id" else None,
                )
            )
    _check_type(cw, call, rules.tool_type, issues)
    cid = call.get("id")
    if cid == "null" and rules.null_id_on_last:
        if not is_last:
            issues.append(
                M8.issue(
                    f"{cw}: tool call id of an assistant message that is not last has "
                    "to be defined in finetuning mode",
                    rules.id_hint,
                )
            )
    elif "id" in call:
        _check_id(cid, f"{cw}.id", cw, M8, issues, rules)
    fn = call.get("function")
    if "function" not in call:
        return
    if type(fn) is not dict:
        issues.append(F16.issue(f"{cw}.function must be an object", None))
        return
    for key in ("name", "arguments"):
        if key not in fn:
            issues.append(
                F13.issue(
                    f"{cw}: a tool call function of an assistant message does not have a "
                    f"'{key}' key",
                    None,
                )
            )
    if "name" in fn:
        _check_name(fn["name"], f"{cw}.function.name", M9, f"{cw}: function name was", issues)
    if "arguments" in fn and type(fn["arguments"]) is not str:
        issues.append(
            F14.issue(
                f"{cw}: a tool call function of an assistant message does not have a "
                f"'arguments' key of type str (got {type_name(fn['arguments'])})",
                "encode the arguments as a JSON string, e.g. "
                '"arguments": "{\\"word\\": \\"listen\\"}"',
            )
        )


F15 = rule("F15", "tool message without 'tool_call_id'")
M10 = rule("M10", "bad tool_call_id in a tool message (mistral-finetune crashes)")
M11 = rule("M11", "bad name in a tool message (mistral-finetune crashes)")


def _check_tool_message(
    where: str, msg: dict[str, Any], issues: list[Issue], rules: ChatRules
) -> None:
    """F15, F16, M10, M11 on a tool message."""
    if "tool_call_id" not in msg:
        issues.append(
            F15.issue(
                f"{where}: a tool message does not contain a 'tool_call_id' key, but only "
                f"{key_list(msg)}",
                "set tool_call_id to the id of the tool call it answers",
            )
        )
    else:
        _check_id(msg["tool_call_id"], f"{where}.tool_call_id", where, M10, issues, rules)
    name = msg.get("name")
    if name is not None:
        _check_name(name, f"{where}.name", M11, f"{where}: function name was", issues)


M1 = rule("M1", "no (non-system) message")
M2 = rule("M2", "single message that is not a user message")
M3 = rule("M3", "last message not from the assistant")
M4 = rule("M4", "unexpected role order")
M5 = rule("M5", "tool calls and tool responses do not match")


def _check_structure(flow: Flow, issues: list[Issue]) -> None:
    """M1-M5 on the non-system messages (system messages are pulled out first)."""
    if not flow:
        issues.append(
            M1.issue(
                "conversation must have at least one message (system messages do not count)",
                "add a user message and the assistant answer to train on",
            )
        )
        return
    if len(flow) == 1 and flow[0][0] != "user":
        issues.append(
            M2.issue(
                "conversation must start with a user message or system message "
                f"(its only non-system message is {flow[0][0]})",
                "add the user message the assistant answers",
            )
        )
        return
    check_order(flow, issues)
    last = flow[-1][0]
    if last != "assistant":
        issues.append(
            M3.issue(
                f"expected last role Assistant for finetuning but got {last}",
                "end each sample with the assistant message to train on; drop trailing "
                f"{last} messages",
            )
        )
    check_pairs(flow, issues)


def check_order(flow: Flow, issues: list[Issue]) -> None:
    """M4: no tool message right after a user message."""
    prev = ""
    for role, _ in flow:
        # user -> tool is the only order 1.13.1 rejects among known roles.
        if prev == "user" and role == "tool":
            issues.append(
                M4.issue(
                    f"unexpected role '{role}' after role '{prev}'",
                    "a tool message must follow the assistant message with the tool call",
                )
            )
            break
        prev = role


def check_pairs(flow: Flow, issues: list[Issue], *, answered_at_end: bool = False) -> None:
    """M5: every assistant message's tool calls are answered by as many tool messages before
    the next assistant message; ``answered_at_end``: also before the end of the flow (a
    conversation that does not end with the assistant)."""
    pending = 0
    for role, ncalls in flow:
        if role == "assistant":
            if pending != 0:
                issues.append(
                    M5.issue(
                        "not the same number of function calls and responses",
                        "answer every tool call with exactly one tool message before the next "
                        "assistant message",
                    )
                )
                return
            pending = ncalls
        elif role == "tool":
            pending -= 1
    if pending < 0:
        issues.append(
            M5.issue(
                "more tool responses than tool calls",
                "answer every tool call with exactly one tool message",
            )
        )
    elif pending > 0 and answered_at_end:
        issues.append(
            M5.issue(
                "not the same number of function calls and responses",
                "answer every tool call with exactly one tool message",
            )
        )


# --------------------------------------------------------------------------- pretrain

P1 = rule("P1", "pretrain sample with both 'text' and 'content'")
P2 = rule("P2", "pretrain sample without 'text'")
P3 = rule("P3", "pretrain text not a string")


def check_pretrain(obj: dict[str, Any], issues: list[Issue]) -> None:
    """P1-P3 on a pretrain sample."""
    has_text = "text" in obj
    has_content = "content" in obj
    if has_text and has_content:
        issues.append(
            P1.issue(
                "make sure to have either 'text' or 'content' in your data, not both",
                "keep only 'text'",
            )
        )
        return
    value = obj.get("text") if has_text else obj.get("content")
    if value is None:
        keys = key_list(obj)
        issues.append(
            P2.issue(
                f"must have one of 'text' or 'content' (non-null) in your data; only have {keys}",
                'write pretrain samples as {"text": "..."}',
            )
        )
        return
    if type(value) is not str:
        issues.append(
            P3.issue(
                f"pretrain '{'text' if has_text else 'content'}' must be a string, got "
                f"{type_name(value)}",
                None,
            )
        )


def sample_kind(obj: dict[str, Any]) -> str | None:
    """'instruct' for chat samples, 'pretrain' for text samples, None when undecidable."""
    if "messages" in obj or "interactions" in obj:
        return "instruct"
    if "text" in obj or "content" in obj:
        return "pretrain"
    return None
