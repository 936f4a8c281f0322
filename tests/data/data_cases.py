"""One bad-input case per rule code: the table behind the rule tests and the corpus files.

Each case is a whole JSONL file (bytes) and the (code, 1-based line) the validator must
report. Most files start with one valid sample so the bad one is on line 2. The committed
files under ``corpus/`` are these cases written out (``python data_cases.py --write``);
a test keeps them equal to this table.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "ok"}
OK = {"messages": [USER, ASSISTANT]}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def call(cid: str = "TX92Jm8Zi", name: str = "get_weather", arguments: Any = "{}") -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_reply(cid: str = "TX92Jm8Zi", **extra: Any) -> dict:
    return {"role": "tool", "content": '{"temp": 21}', "tool_call_id": cid, **extra}


def calls(*items: dict) -> dict:
    return {"role": "assistant", "tool_calls": list(items)}


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def chat(*messages: dict, **top: Any) -> bytes:
    """A file: one valid sample, then a sample with these messages (line 2)."""
    return line(OK) + line({"messages": list(messages), **top})


def tools_sample(tools: list[Any]) -> bytes:
    return line(OK) + line({"messages": [USER, ASSISTANT], "tools": tools})


# name -> (file content, code, line)
CASES: dict[str, tuple[bytes, str, int]] = {
    "F1": (line(OK) + line({"prompt": "x", "prompt_id": "1"}), "F1", 2),
    "F2": (chat(USER, ASSISTANT, interactions=[USER, ASSISTANT]), "F2", 2),
    "F3": (chat(USER, ASSISTANT, tools=[TOOL], available_tools=[TOOL]), "F3", 2),
    "F4": (tools_sample([{"type": "function"}]), "F4", 2),
    "F5": (
        tools_sample([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        "F5",
        2,
    ),
    "F6": (
        tools_sample(
            [
                {
                    "type": "function",
                    "function": {"name": "f", "description": "", "parameters": "none"},
                }
            ]
        ),
        "F6",
        2,
    ),
    "F7": (chat({"content": "hi"}, ASSISTANT), "F7", 2),
    "F8": (chat({"role": "user", "content": "hi", "text": "hi"}, ASSISTANT), "F8", 2),
    "F9": (chat({"role": "user"}, ASSISTANT), "F9", 2),
    "F9-null-content": (chat({"role": "user", "content": None}, ASSISTANT), "F9", 2),
    "F10": (chat({"role": "system_prompt", "content": "be nice"}, USER, ASSISTANT), "F10", 2),
    "F11": (
        chat(
            {"role": "system", "content": "a"}, {"role": "system", "content": "b"}, USER, ASSISTANT
        ),
        "F11",
        2,
    ),
    "F11-system-prompt": (
        chat({"role": "system", "content": "a"}, USER, ASSISTANT, system_prompt="b"),
        "F11",
        2,
    ),
    "F12": (
        chat(
            USER,
            calls({"type": "function", "function": {"name": "f", "arguments": "{}"}}),
            tool_reply(),
            ASSISTANT,
        ),
        "F12",
        2,
    ),
    "F13": (
        chat(USER, calls({"id": "TX92Jm8Zi", "function": {"name": "f"}}), tool_reply(), ASSISTANT),
        "F13",
        2,
    ),
    "F14": (
        chat(USER, calls(call(arguments={"city": "Paris"})), tool_reply(), ASSISTANT),
        "F14",
        2,
    ),
    "F15": (chat(USER, calls(call()), {"role": "tool", "content": "x"}, ASSISTANT), "F15", 2),
    "F16": (chat({"role": "user", "content": 5}, ASSISTANT), "F16", 2),
    "F16-weight": (chat(USER, {"role": "assistant", "content": "ok", "weight": "abc"}), "F16", 2),
    "F16-id": (chat(USER, calls(call(cid=123)), tool_reply(), ASSISTANT), "F16", 2),
    "F17": (line(OK) + b"[1, 2]\n", "F17", 2),
    "F17-message": (chat("hi", ASSISTANT), "F17", 2),  # type: ignore[arg-type]
    "M1": (chat(), "M1", 2),
    "M2": (chat({"role": "system", "content": "s"}, ASSISTANT), "M2", 2),
    "M3": (chat(USER), "M3", 2),
    "M3-trailing-user": (chat(USER, ASSISTANT, USER), "M3", 2),
    "M4": (chat(USER, tool_reply(), ASSISTANT), "M4", 2),
    "M5": (chat(USER, calls(call(), call(cid="AAAAAAAA2")), tool_reply(), ASSISTANT), "M5", 2),
    "M5-more-responses": (
        chat(USER, calls(call()), tool_reply(), tool_reply(), ASSISTANT),
        "M5",
        2,
    ),
    "M6": (chat(USER, {"role": "assistant", "content": ""}), "M6", 2),
    "M6-both": (
        chat(
            USER,
            {"role": "assistant", "content": "ok", "tool_calls": [call()]},
            tool_reply(),
            ASSISTANT,
        ),
        "M6",
        2,
    ),
    "M7": (chat(USER, {"role": "assistant", "content": "ok", "weight": 0.5}), "M7", 2),
    "M8": (chat(USER, calls(call(cid="call_abc123")), tool_reply(), ASSISTANT), "M8", 2),
    "M8-null-not-last": (chat(USER, calls(call(cid="null")), tool_reply(), ASSISTANT), "M8", 2),
    "M9": (chat(USER, calls(call(name="get weather")), tool_reply(), ASSISTANT), "M9", 2),
    "M10": (chat(USER, calls(call()), tool_reply(cid="call_abc123"), ASSISTANT), "M10", 2),
    "M11": (chat(USER, calls(call()), tool_reply(name="get weather"), ASSISTANT), "M11", 2),
    "M12": (
        tools_sample(
            [
                {
                    "type": "function",
                    "function": {"name": "f", "description": "", "parameters": {"type": "objekt"}},
                }
            ]
        ),
        "M12",
        2,
    ),
    "M13": (
        tools_sample(
            [
                {
                    "type": "function",
                    "function": {"name": "bad name", "description": "", "parameters": {}},
                }
            ]
        ),
        "M13",
        2,
    ),
    "M14": (chat(USER, {"role": "assistant", "content": "ok", "prefix": True}), "M14", 2),
    "M14-chunk": (
        chat(USER, {"role": "assistant", "content": [{"type": "image_url", "image_url": "x"}]}),
        "M14",
        2,
    ),
    "P1": (line({"text": "ok"}) + line({"text": "a", "content": "b"}), "P1", 2),
    "P2": (line({"text": "ok"}) + line({"text": None}), "P2", 2),
    "P3": (line({"text": "ok"}) + line({"text": 5}), "P3", 2),
    "MIXED": (line(OK) + line({"text": "plain text"}), "MIXED", 2),
    "JSON": (line(OK) + b'{"messages": [}\n', "JSON", 2),
    "JSON-single-quotes": (line(OK) + b"{'messages': []}\n", "JSON", 2),
    "TRUNCATED": (line(OK) + b'{"messages": [{"role": "us', "TRUNCATED", 2),
    "UTF8": (line(OK) + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n', "UTF8", 2),
    "BOM": (b"\xef\xbb\xbf" + line(OK) + line(OK), "BOM", 1),
    "BLANK": (line(OK) + b"\n" + line(OK), "BLANK", 2),
    "BLANK-whitespace": (line(OK) + b"  \t \n" + line(OK), "BLANK", 2),
    "NAN": (line(OK) + b'{"messages": [], "score": NaN}\n', "NAN", 2),
    "NAN-infinity": (line(OK) + b'{"messages": [], "score": -Infinity}\n', "NAN", 2),
    "NAN-huge-number": (line(OK) + b'{"messages": [], "score": 1e400}\n', "NAN", 2),
    "DEPTH": (
        line(OK) + b'{"messages": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}\n",
        "DEPTH",
        2,
    ),
    "DEPTH-walk": (
        line(OK) + b'{"messages": [], "x": ' + b"[" * 300 + b"]" * 300 + b"}\n",
        "DEPTH",
        2,
    ),
    "DUP_KEY": (
        line(OK) + b'{"messages": [{"role": "user", "content": "a", "content": "b"}, '
        b'{"role": "assistant", "content": "ok"}]}\n',
        "DUP_KEY",
        2,
    ),
    "DUP_KEY-top": (
        line(OK) + b'{"messages": [], "messages": [{"role": "user", "content": "a"}, '
        b'{"role": "assistant", "content": "ok"}]}\n',
        "DUP_KEY",
        2,
    ),
    "EMPTY": (b"", "EMPTY", 0),
    "EMPTY-whitespace": (b"  \n\n", "EMPTY", 1),
}


# --------------------------------------------------------------------------- preference

PREFERRED = {"role": "assistant", "content": "The weather in Paris is 21 degrees Celsius."}
NON_PREFERRED = {"role": "assistant", "content": "It is warm."}
PREF_OK = {
    "input": {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]},
    "preferred_output": [PREFERRED],
    "non_preferred_output": [NON_PREFERRED],
}
OPENAI_TOOL = {"type": "function", "function": {"name": "get_weather"}}


def openai_call(cid: str = "call_abc123") -> dict:
    return {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def pref(*messages: dict, input_extra: Any = None, **top: Any) -> bytes:
    """A preference file: one valid sample, then one with these input messages (default: a
    user question) and these top-level keys over the valid sample's (line 2)."""
    sample: dict[str, Any] = copy.deepcopy(PREF_OK)
    if messages:
        sample["input"]["messages"] = list(messages)
    sample["input"].update(input_extra or {})
    sample.update(top)
    return line(PREF_OK) + line(sample)


QUESTION = PREF_OK["input"]["messages"][0]

# name -> (file content, code, line), validated with format: preference
PREFERENCE_CASES: dict[str, tuple[bytes, str, int]] = {
    "D1": (
        line(PREF_OK) + line({"input": PREF_OK["input"], "preferred_output": [PREFERRED]}),
        "D1",
        2,
    ),
    "D1-chat-sample": (line(PREF_OK) + line(OK), "D1", 2),
    "D2": (pref(input={"messages": []}), "D2", 2),
    "D2-no-messages": (pref(input={}), "D2", 2),
    "D3": (pref(QUESTION, PREFERRED), "D3", 2),
    "D4": (pref(non_preferred_output=[]), "D4", 2),
    "D4-two": (pref(preferred_output=[PREFERRED, PREFERRED]), "D4", 2),
    "D5": (pref(preferred_output=[{"role": "user", "content": "x"}]), "D5", 2),
    "D6": (pref(non_preferred_output=[dict(PREFERRED)]), "D6", 2),
    "O1": (pref(score=1), "O1", 2),
    "O1-output-weight": (pref(preferred_output=[{**PREFERRED, "weight": 1}]), "O1", 2),
    "O1-message": (pref({**QUESTION, "text": "x"}), "O1", 2),
    "O2": (pref(input_extra={"tools": [{"function": {"name": "get_weather"}}]}), "O2", 2),
    "F5": (pref(input_extra={"tools": [{"type": "function", "function": {}}]}), "F5", 2),
    "F10": (pref({"role": "bot", "content": "x"}, QUESTION), "F10", 2),
    "F16": (pref(input="What is the weather?"), "F16", 2),
    "F16-parallel": (pref(input_extra={"parallel_tool_calls": "yes"}), "F16", 2),
    "F17": (pref(preferred_output=["The weather is fine."]), "F17", 2),
    "M5": (
        pref(QUESTION, calls(openai_call()), QUESTION, input_extra={"tools": [OPENAI_TOOL]}),
        "M5",
        2,
    ),
    "M6": (pref(preferred_output=[{"role": "assistant", "content": ""}]), "M6", 2),
    "M8": (pref(preferred_output=[calls(openai_call(cid=""))]), "M8", 2),
    "M14": (
        pref(preferred_output=[{"role": "assistant", "content": [{"type": "image_url"}]}]),
        "M14",
        2,
    ),
}

PREFERENCE_CORPUS = CORPUS / "preference"


def _write(directory: Path, cases: dict[str, tuple[bytes, str, int]]) -> None:
    directory.mkdir(exist_ok=True)
    expected = {}
    for name, (content, code, lineno) in cases.items():
        (directory / f"{name}.jsonl").write_bytes(content)
        expected[f"{name}.jsonl"] = {"code": code, "line": lineno}
    text = json.dumps(expected, indent=1, sort_keys=True) + "\n"
    (directory / "expected.json").write_text(text)


def write_corpus() -> None:
    """Write every case to ``corpus/<name>.jsonl`` plus ``expected.json``, and the
    preference cases to ``corpus/preference/``."""
    _write(CORPUS, CASES)
    _write(PREFERENCE_CORPUS, PREFERENCE_CASES)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_corpus()
    else:
        print("usage: python data_cases.py --write")
