"""Rule-by-rule table tests: every rule code, on the line where it happens, and nothing else.

Also checks that the validator's fast path for plain samples never accepts a sample that
the full rule check rejects (soundness), on valid samples and on many mutations of them.
"""

from __future__ import annotations

import copy
import io
import json
import random
from typing import Any

import pytest
from data_cases import CASES, OK, TOOL, USER, call, calls, tool_reply

from reconciler.data import rules
from reconciler.data.fastpath import plain_sample_stats
from reconciler.data.validator import validate_stream

# Codes that legitimately come along with the case's code.
EXTRA = {"M4": {"M5"}, "EMPTY-whitespace": {"BLANK"}}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_case(name: str) -> None:
    content, code, lineno = CASES[name]
    report = validate_stream(io.BytesIO(content), f"{name}.jsonl")
    errors = [p for p in report.problems if p.severity == "error"]
    found = {(p.code, p.location.line if p.location else 0) for p in errors}
    assert (code, lineno) in found, report.problems
    extra = {c for c, _ in found} - {code} - EXTRA.get(name, set())
    assert not extra, f"unexpected codes {extra}: {errors}"
    assert report.invalid_by_rule[code] >= 1
    assert not report.ok
    for p in errors:
        assert p.location is not None and p.location.file == f"{name}.jsonl"
        assert p.message


@pytest.mark.parametrize(
    ("name", "sample_index"), [("F1", 1), ("M3", 1), ("BOM", 0), ("TRUNCATED", 1)]
)
def test_sample_index_counts_samples(name: str, sample_index: int) -> None:
    content, code, _ = CASES[name]
    report = validate_stream(io.BytesIO(content), "x.jsonl")
    problem = next(p for p in report.problems if p.code == code)
    assert problem.extra["sample_index"] == sample_index


def test_sample_index_skips_blank_lines() -> None:
    content = b"\n" + json.dumps({"messages": [USER]}).encode() + b"\n"
    report = validate_stream(io.BytesIO(content), "x.jsonl")
    m3 = next(p for p in report.problems if p.code == "M3")
    assert m3.location is not None and m3.location.line == 2
    assert m3.extra["sample_index"] == 0


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("M8", "exactly 9 characters a-z A-Z 0-9"),
        ("M10", "stable 9-character hash"),
        ("F10", "use role 'system'"),
        ("F14", "JSON string"),
        ("M3", "end each sample with the assistant message"),
        ("UTF8", "UTF-8"),
        ("BOM", "without BOM"),
    ],
)
def test_fix_it_hints(name: str, needle: str) -> None:
    content, code, _ = CASES[name]
    report = validate_stream(io.BytesIO(content), "x.jsonl")
    problem = next(p for p in report.problems if p.code == code)
    assert problem.hint and needle in problem.hint


def test_call_id_message_quotes_the_id() -> None:
    content, _, _ = CASES["M8"]
    report = validate_stream(io.BytesIO(content), "x.jsonl")
    (m8,) = [p for p in report.problems if p.code == "M8"]
    assert "'call_abc123'" in m8.message


@pytest.mark.parametrize(
    "sample",
    [
        # Accepted by mistral-finetune / mistral-common 1.13.1 (reference notes §1.2-1.4).
        {
            "messages": [
                USER,
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "ok"},
            ]
        },
        {
            "messages": [
                {"role": "assistant", "content": "a"},
                USER,
                {"role": "assistant", "content": "b"},
            ]
        },
        {
            "messages": [
                USER,
                USER,
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
            ]
        },
        {
            "messages": [
                USER,
                calls(call(arguments="not json")),
                tool_reply(),
                USER,
                {"role": "assistant", "content": "ok"},
            ]
        },  # user after tool: 1.13.1
        {"messages": [USER, calls(call())]},  # predicting a call is a valid target
        {"messages": [USER, calls(call(cid="null"))]},  # "null" id only on the last message
        {"messages": [USER, calls(call())], "tools": [TOOL]},
        {"interactions": [USER, {"role": "assistant", "text": "ok"}], "prompt_id": "x"},
        {"messages": [USER, {"role": "assistant", "content": "ok", "weight": 0}]},
        {"messages": [USER, {"role": "assistant", "content": "ok", "weight": 1.0}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "ok"},
            ]
        },
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "ok"}]},
        {"messages": [USER, {"role": "assistant", "content": "ok", "tool_calls": []}]},
        {
            "messages": [USER, calls(call())],
            "tools": [
                {
                    "type": "retrieval",
                    "function": {"name": "f", "description": "", "parameters": {}},
                }
            ],
        },
        {"messages": [USER, {"role": "assistant", "content": "ok"}], "system_prompt": "s"},
        {"messages": [USER, {"role": "assistant", "content": "ok", "foo": {"a": [1]}}]},
    ],
)
def test_valid_samples(sample: dict[str, Any]) -> None:
    report = validate_stream(io.BytesIO(json.dumps(sample).encode() + b"\n"), "x.jsonl")
    assert report.ok, report.problems
    assert report.valid == report.samples == 1


def _full_issues(sample: Any) -> list[rules.Issue]:
    issues: list[rules.Issue] = []
    if not isinstance(sample, dict):
        return [("F17", "", None)]
    rules.check_instruct(sample, {}, issues)
    return issues


VALID = [
    OK,
    {
        "messages": [
            {"role": "system", "content": "s"},
            USER,
            {"role": "assistant", "content": "a: b"},
        ]
    },
    {
        "messages": [USER, calls(call()), tool_reply(), {"role": "assistant", "content": "ok"}],
        "tools": [TOOL],
    },
    {
        "messages": [
            USER,
            calls(call(), call(cid="AAAAAAAA2")),
            tool_reply(),
            tool_reply(cid="AAAAAAAA2"),
            {"role": "assistant", "content": "ok"},
        ]
    },
    {"messages": [USER, calls(call())]},
]


def _mutations(sample: dict[str, Any], rng: random.Random) -> Any:
    """One random structural mutation of a sample (keys dropped, types and values changed)."""
    out = copy.deepcopy(sample)
    msgs = out["messages"]
    choice = rng.randrange(14)
    i = rng.randrange(len(msgs))
    m = msgs[i]
    if choice == 0 and isinstance(m, dict) and m:
        m.pop(rng.choice(sorted(m)))
    elif choice == 1:
        m["role"] = rng.choice(["tool", "user", "assistant", "system", "bob", 5, None])
    elif choice == 2:
        m["content"] = rng.choice(["", None, 5, [], [{"type": "image_url"}], "x"])
    elif choice == 3:
        msgs.insert(
            rng.randrange(len(msgs) + 1),
            rng.choice([USER, {"role": "system", "content": "s"}, tool_reply(), calls(call())]),
        )
    elif choice == 4:
        msgs.pop(i)
    elif choice == 5:
        m["weight"] = rng.choice([0, 1, 0.5, "1"])
    elif choice == 6 and "tool_calls" in m:
        m["tool_calls"][0]["id"] = rng.choice(["call_1", "null", 7, "ABCDEFGH1"])
    elif choice == 7 and "tool_calls" in m:
        m["tool_calls"][0]["function"]["name"] = rng.choice(["a b", "", 3, "ok_name"])
    elif choice == 8 and "tool_calls" in m:
        m["tool_calls"][0]["function"]["arguments"] = rng.choice([{}, None, "x"])
    elif choice == 9 and m.get("role") == "tool":
        m["tool_call_id"] = rng.choice(["call_1", 5, None])
    elif choice == 10:
        out[rng.choice(["tools", "system_prompt", "only_last", "extra"])] = rng.choice(
            [[TOOL], "s", True, [], {"a": 1}]
        )
    elif choice == 11:
        msgs[i] = rng.choice(["text", 5, None, [m]])
    elif choice == 12:
        m["extra"] = rng.choice([1, "x", {"a": "b"}])
    else:
        out["messages"] = rng.choice([[], {}, "x", msgs + msgs])
    return out


def test_fast_path_accepts_plain_valid_samples() -> None:
    for sample in VALID:
        assert plain_sample_stats(sample) is not None, sample
        assert _full_issues(sample) == []


def test_fast_path_is_sound_under_mutations() -> None:
    rng = random.Random(1234)
    fast_taken = 0
    rejected = 0
    for _ in range(4000):
        sample = _mutations(rng.choice(VALID), rng)
        if isinstance(sample, dict) and plain_sample_stats(sample) is not None:
            fast_taken += 1
            assert _full_issues(sample) == [], sample
        elif _full_issues(sample):
            rejected += 1
    # The mutations exercise both sides.
    assert fast_taken > 100 and rejected > 1000
