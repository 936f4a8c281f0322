"""The fast path of validation: plain chat samples accepted in one cheap loop.

Most real samples are plain: user/assistant/system messages with string content, tool calls
and tool results in the usual shape. :func:`plain_sample_stats` recognizes such a sample
(which satisfies every rule) with a handful of operations per message and returns the
statistics the report needs; :class:`FastPath` adds them up. Anything else, or a line that
may hide a duplicate key, takes the full rule check. A sample's tools list usually repeats
in every sample, so :func:`tools_info` caches its check by content for both paths.

Only the standard library and orjson are used: the sandbox server imports the validator.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from reconciler.data.dialect import ChatRules
from reconciler.data.registry import Issue
from reconciler.data.report import FileReport
from reconciler.data.rules import check_tools
from reconciler.data.syntax import walk

_TOOLS_CACHE: dict[tuple[ChatRules, bytes], tuple[int, int, list[Issue]]] = {}
_TOOLS_CACHE_MAX = 1024


def tools_info(
    tools: list[Any], rules: ChatRules = ChatRules.mistral
) -> tuple[int, int, list[Issue]]:
    """(keys, colons in strings, rule issues in dialect ``rules``) of a tools list, cached
    by its content."""
    try:
        key = (rules, orjson.dumps(tools))
    except orjson.JSONEncodeError:  # deeper than orjson serializes: no caching
        key = None
    cached = _TOOLS_CACHE.get(key) if key else None
    if cached is not None:
        return cached
    keys, colons = walk(tools, 1)
    issues: list[Issue] = []
    check_tools(tools, issues, rules)
    result = (keys, colons, issues)
    if key:
        if len(_TOOLS_CACHE) >= _TOOLS_CACHE_MAX:
            _TOOLS_CACHE.clear()
        _TOOLS_CACHE[key] = result
    return result


def content_colons(msgs: list[dict[str, Any]]) -> int:
    """Colons inside the message contents of a sample that passed :func:`plain_sample_stats`."""
    n = 0
    for m in msgs:
        content = m.get("content")
        if content:
            n += content.count(":")
    return n


_ID_MATCH = re.compile(r"[a-zA-Z0-9]{9}").fullmatch
_NAME_MATCH = re.compile(r"[a-zA-Z0-9_-]{1,64}").fullmatch

FastStats = tuple[int, int, int, int, int, int, int]
"""(keys, users, assistants, systems, tool messages, colons in the tools list and call
arguments, colons in tool results)."""


def plain_sample_stats(obj: dict[str, Any]) -> FastStats | None:
    """Statistics of a plain, valid chat sample; None means "check it fully".

    Plain: top-level keys ``messages`` (and a ``tools`` list whose cached check found
    nothing); user/system/assistant messages exactly {role, content} with string content
    (non-empty for the assistant); assistant tool calls exactly {role, tool_calls} with
    {id, function[, type: function]} calls, 9-character ids, valid names and string
    arguments; tool messages exactly {role, tool_call_id, content}; at most one system
    message; a valid role order and call/response count; the last non-system message from
    the assistant. Such a sample satisfies every rule (F1-F17, M1-M14), so None never
    means "invalid". It runs once per sample: one loop of cheap operations.
    """
    try:
        return _fast_sample_unchecked(obj)
    except (KeyError, TypeError, AttributeError):
        # A missing key or a non-dict where a dict belongs: not plain.
        return None


def _fast_sample_unchecked(obj: dict[str, Any]) -> FastStats | None:
    # Subscripts instead of .get and no isinstance checks where a subscript fails anyway
    # (measurably faster); the caller maps KeyError/TypeError to None.
    nobj = len(obj)
    keys = nobj
    tool_colons = 0
    # Colons inside strings that are cheap to count here: call arguments and tool results
    # (usually JSON); those in other message texts are counted only when needed.
    arg_colons = result_colons = 0
    msgs = obj["messages"]
    if type(msgs) is not list:
        return None
    if nobj == 2:
        tools = obj["tools"]
        if type(tools) is not list:
            return None
        tkeys, tool_colons, tissues = tools_info(tools)
        if tissues:
            return None
        keys += tkeys
    elif nobj != 1:
        return None
    nuser = nassistant = nsystem = ntool = 0
    pending = 0
    prev = ""
    for m in msgs:
        role = m["role"]
        if len(m) == 2:
            content = m.get("content")
            if type(content) is str:
                if role == "user":
                    nuser += 1
                elif role == "assistant":
                    if not content or pending:
                        return None
                    nassistant += 1
                elif role == "system":
                    nsystem += 1
                    continue
                else:
                    return None
            elif content is None and role == "assistant" and not pending:
                calls = m["tool_calls"]
                if type(calls) is not list or not calls:
                    return None
                for call in calls:
                    nc = len(call)
                    if nc == 3:
                        if call["type"] != "function":
                            return None
                    elif nc != 2:
                        return None
                    fn = call["function"]
                    cid = call["id"]
                    if len(fn) != 2 or type(cid) is not str:
                        return None
                    name = fn["name"]
                    args = fn["arguments"]
                    if (
                        type(name) is not str
                        or type(args) is not str
                        or not _ID_MATCH(cid)
                        or not _NAME_MATCH(name)
                    ):
                        return None
                    keys += nc + 2
                    arg_colons += args.count(":")
                pending = len(calls)
                nassistant += 1
            else:
                return None
        elif role == "tool" and len(m) == 3:
            tid = m["tool_call_id"]
            content = m["content"]
            if (
                type(content) is not str
                or type(tid) is not str
                or prev == "user"
                or not _ID_MATCH(tid)
            ):
                return None
            pending -= 1
            if pending < 0:
                return None
            ntool += 1
            result_colons += content.count(":")
        else:
            return None
        prev = role
    if prev != "assistant" or nsystem > 1 or nuser + nassistant + ntool < 2:
        return None
    # Every message has 2 keys, tool messages 3; tool calls were added above.
    keys += 2 * len(msgs) + ntool
    return keys, nuser, nassistant, nsystem, ntool, tool_colons + arg_colons, result_colons


class FastPath:
    """The plain samples of one file, counted apart from its report until :meth:`fold_into`.

    Plain integer attributes instead of the report's dicts: cheaper on the hot path.

    Attributes:
        samples: plain samples taken.
        bytes: their bytes (for the approximate token count).
        users / assistants / systems / tools: their messages per role.
    """

    __slots__ = ("samples", "bytes", "users", "assistants", "systems", "tools")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.samples = self.bytes = 0
        self.users = self.assistants = self.systems = self.tools = 0

    def take(self, obj: dict[str, Any], line: bytes) -> bool:
        """Count the sample ``obj`` parsed from ``line`` if it is plain; False: check it fully.

        Duplicate keys: every key is followed by a ``:``; colons inside strings are the only
        other source. More colons than keys plus colons in strings means a key occurs twice
        (orjson silently keeps the last), which only the full check reports.
        """
        stats = plain_sample_stats(obj)
        if stats is None:
            return False
        nkeys = stats[0]
        colons = line.count(b":") - stats[5]
        if colons - stats[6] > nkeys and colons - content_colons(obj["messages"]) > nkeys:
            return False
        self.samples += 1
        self.bytes += len(line)
        self.users += stats[1]
        self.assistants += stats[2]
        self.systems += stats[3]
        self.tools += stats[4]
        return True

    def fold_into(self, report: FileReport) -> None:
        """Add the counts to ``report`` (valid samples, tokens, roles) and start again."""
        if not self.samples:
            return
        report.samples += self.samples
        report.valid += self.samples
        report.approx_tokens += (self.bytes + 3) // 4
        for role, count in (
            ("user", self.users),
            ("assistant", self.assistants),
            ("system", self.systems),
            ("tool", self.tools),
        ):
            if count:
                report.roles[role] = report.roles.get(role, 0) + count
        self._reset()
