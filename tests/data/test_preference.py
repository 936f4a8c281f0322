"""The preference (DPO) format and the chat dialects: every preference rule on its line and
nothing else, valid samples of OpenAI's reference, token estimates, datasets with
``format: preference`` (preparation, caches, spec errors), and ``ChatRules.openai`` against
Mistral's default."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from data_cases import (
    OK,
    OPENAI_TOOL,
    PREF_OK,
    PREFERENCE_CASES,
    PREFERRED,
    QUESTION,
    USER,
    call,
    calls,
    line,
    openai_call,
    tool_reply,
)
from data_helpers import dataset
from typer.testing import CliRunner

import reconciler.cli.cmd_validate  # noqa: F401  (registers validate on the app)
from reconciler.cli.app import app
from reconciler.data.dialect import ChatRules
from reconciler.data.prepare import prepare_dataset
from reconciler.data.validator import LineValidator, validate_lines, validate_path, validate_stream
from reconciler.errors import DataError
from reconciler.spec.models import Dataset

# Codes that legitimately come along with a case's code.
EXTRA: dict[str, set[str]] = {}


def _errors(content: bytes, **kwargs: Any) -> list[tuple[str, int]]:
    report = validate_stream(io.BytesIO(content), "p.jsonl", **kwargs)
    return [(p.code, p.location.line if p.location else 0) for p in report.errors]


@pytest.mark.parametrize("name", sorted(PREFERENCE_CASES))
def test_preference_rule_case(name: str) -> None:
    content, code, lineno = PREFERENCE_CASES[name]
    found = _errors(content, data_format="preference")
    assert (code, lineno) in found
    assert {c for c, _ in found} - {code} - EXTRA.get(name, set()) == set(), found


def _pref(**changes: Any) -> dict[str, Any]:
    sample: dict[str, Any] = copy.deepcopy(PREF_OK)
    sample.update(changes)
    return sample


WEATHER_CALL = openai_call()
VALID = {
    # The example of OpenAI's reference.
    "reference": {
        "input": {
            "messages": [{"role": "user", "content": "What is the weather in San Francisco?"}]
        },
        "preferred_output": [
            {"role": "assistant", "content": "The weather in San Francisco is 70 degrees F."}
        ],
        "non_preferred_output": [
            {"role": "assistant", "content": "The weather in San Francisco is 21 degrees C."}
        ],
    },
    "tools, calls and weights in the input": _pref(
        input={
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Use tools.", "name": "ops"},
                QUESTION,
                {**calls(WEATHER_CALL), "weight": 0},
                {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_abc123"},
                {"role": "assistant", "content": "21 °C.", "weight": 1},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
            ],
            "tools": [OPENAI_TOOL],
            "parallel_tool_calls": False,
        }
    ),
    "outputs with tool calls, content and a refusal": _pref(
        preferred_output=[
            {"role": "assistant", "content": "Let me check.", "tool_calls": [WEATHER_CALL]}
        ],
        non_preferred_output=[
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
        ],
    ),
    "an image in the question": _pref(
        input={
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ]
        }
    ),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_preference_samples(name: str) -> None:
    report = validate_lines([json.dumps(VALID[name]).encode()], "p.jsonl", data_format="preference")
    assert report.errors == [] and report.valid == 1, report.problems
    assert report.sample_type == "preference"


def test_summary_roles_and_tokens_count_the_input_and_both_outputs() -> None:
    short = _pref()
    long_rejected = _pref(non_preferred_output=[{"role": "assistant", "content": "x " * 400}])
    lines = [json.dumps(s).encode() for s in (short, long_rejected)]
    report = validate_lines(lines, "p.jsonl", data_format="preference")
    assert report.valid == 2
    assert report.approx_tokens == sum((len(raw) + 3) // 4 for raw in lines)
    # The non-preferred output counts: its 789 more characters add about 197 tokens.
    extra = len("x " * 400) - len("It is warm.")
    assert report.approx_tokens - 2 * ((len(lines[0]) + 3) // 4) >= extra // 4
    assert report.roles == {"user": 2, "assistant": 4}
    assert "2 samples (preference), 2 valid" in report.summary_line()


def test_invalid_samples_count_no_tokens_and_exact_counts_are_not_made(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(line(PREF_OK) + line(_pref(non_preferred_output=[PREFERRED])))
    # Mistral's tokenizer is not even loaded for OpenAI's preference data.
    report = validate_path(path, data_format="preference", exact_tokens=True)
    assert report.exact_tokens is None
    assert report.approx_tokens == (len(line(PREF_OK)) - 1 + 3) // 4
    assert report.invalid_by_rule == {"D6": 1}


def test_chat_files_are_unaffected_by_the_format_argument() -> None:
    content = line(OK) * 3
    chat = validate_stream(io.BytesIO(content), "c.jsonl")
    assert chat.sample_type == "instruct" and chat.ok
    assert [c for c, _ in _errors(content, data_format="preference")] == ["D1"] * 3
    with pytest.raises(ValueError, match="unknown data format"):
        LineValidator("x", data_format="dpo")


def _write(tmp_path: Path, *samples: dict[str, Any]) -> None:
    (tmp_path / "pairs.jsonl").write_bytes(b"".join(line(s) for s in samples))


def test_a_preference_dataset_is_prepared_split_and_cleaned(tmp_path: Path) -> None:
    samples = [
        _pref(preferred_output=[{"role": "assistant", "content": f"answer {i}"}]) for i in range(20)
    ]
    _write(tmp_path, *samples, _pref(non_preferred_output=[PREFERRED]))
    doc = dataset(
        tmp_path,
        path="pairs.jsonl",
        format="preference",
        split={"validation_fraction": 0.2, "seed": 1},
        on_invalid="skip",
    )
    prepared = prepare_dataset(doc, tmp_path / "cache")
    train, val = prepared.parts["train"], prepared.parts["validation"]
    assert train.num_lines + val.num_lines == 20
    assert train.report.sample_type == "preference" and train.report.ok and val.report.ok
    assert train.dropped == 1 and train.dropped_by_rule == {"D6": 1}
    # Strict by default: the same file is an error without on_invalid: skip.
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, path="pairs.jsonl", format="preference"), tmp_path / "c2")
    assert [p.code for p in exc.value.problems if p.severity == "error"] == ["D6"]


def test_the_cache_keeps_chat_and_preference_reports_apart(tmp_path: Path) -> None:
    _write(tmp_path, *[PREF_OK] * 10)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, path="pairs.jsonl"), cache)
    assert {p.code for p in exc.value.problems} == {"F1"}
    part = prepare_dataset(dataset(tmp_path, path="pairs.jsonl", format="preference"), cache)
    assert part.parts["all"].report.ok and part.parts["all"].path == tmp_path / "pairs.jsonl"
    with pytest.raises(DataError):  # and the chat answer is still the cached chat report
        prepare_dataset(dataset(tmp_path, path="pairs.jsonl"), cache)


def test_the_model_refuses_a_conversion_of_preference_data() -> None:
    conversion = {"messages": [{"role": "user", "column": "q"}]}
    assert Dataset(name="d", path="x.csv", convert=conversion).format == "chat"
    with pytest.raises(ValueError, match="cannot build preference samples"):
        Dataset(name="d", path="x.csv", format="preference", convert=conversion)


@pytest.mark.parametrize(
    ("spec", "needle", "where"),
    [
        (
            "kind: Dataset\nname: d\npath: x.csv\nformat: preference\nconvert:\n"
            "  messages:\n    - {role: user, column: q}\n",
            "'convert' builds chat samples and cannot build preference samples",
            (6, 3),
        ),
        ("kind: Dataset\nname: d\npath: x.jsonl\nformat: dpo\n", "'format'", (4, 9)),
    ],
)
def test_validate_reports_format_errors_at_the_spec_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    needle: str,
    where: tuple[int, int],
) -> None:
    (tmp_path / "specs.yaml").write_text(spec, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["validate", "specs.yaml", "--format", "json"], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    (problem,) = json.loads(result.stdout)["problems"]
    assert needle in problem["message"]
    assert (problem["file"], problem["line"], problem["column"]) == ("specs.yaml", *where)


def test_validate_checks_a_preference_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "specs.yaml").write_text(
        "kind: Dataset\nname: tone-pairs\npath: pairs.jsonl\nformat: preference\n",
        encoding="utf-8",
    )
    _write(tmp_path, *[PREF_OK] * 9, _pref(preferred_output=[]))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", "specs.yaml"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert (
        "pairs.jsonl:10: error: Dataset/tone-pairs: 'preferred_output' must hold exactly one "
        "assistant message, it has 0 [D4]" in result.output
    )


# --------------------------------------------------------------------------- dialects

# OpenAI's supervised chat example (its reference), with the weights and parallel_tool_calls
# its format allows.
OPENAI_CHAT = {
    "messages": [
        {"role": "user", "content": "What is the weather in San Francisco?"},
        {"role": "assistant", "content": "Let me look.", "weight": 0},
        {"role": "assistant", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": "70F", "tool_call_id": "call_abc123"},
        {"role": "assistant", "content": "It is 70 degrees F.", "weight": 1},
    ],
    "parallel_tool_calls": False,
    "tools": [OPENAI_TOOL],
}


def _codes(sample: dict[str, Any], rules: ChatRules) -> list[str]:
    report = validate_lines([json.dumps(sample).encode()], "c.jsonl", chat_rules=rules)
    return [p.code for p in report.errors]


def test_openai_chat_is_valid_in_its_dialect_and_not_in_mistrals() -> None:
    assert _codes(OPENAI_CHAT, ChatRules.openai) == []
    # No description and parameters (F5 twice), OpenAI's call ids (M8, M10).
    assert _codes(OPENAI_CHAT, ChatRules.mistral) == ["F5", "F5", "M8", "M10"]
    # weight and parallel_tool_calls alone are fine for Mistral too.
    plain = {
        "messages": [USER, {"role": "assistant", "content": "ok", "weight": 0}, USER, PREFERRED],
        "parallel_tool_calls": True,
    }
    assert _codes(plain, ChatRules.mistral) == [] == _codes(plain, ChatRules.openai)


@pytest.mark.parametrize(
    ("sample", "mistral", "openai"),
    [
        # UltraChat's extra keys: ignored by Mistral, unknown to OpenAI.
        ({**OK, "prompt_id": "1"}, [], ["O1"]),
        # Mistral's spellings are OpenAI's unknown keys.
        ({"interactions": OK["messages"]}, [], ["O1", "F1"]),
        ({**OK, "system_prompt": "Be nice."}, [], ["O1"]),
        # A tool call without a type: fine for Mistral (even on its fast path).
        (
            {
                "messages": [
                    USER,
                    calls({"id": "TX92Jm8Zi", "function": call()["function"]}),
                    tool_reply(),
                    PREFERRED,
                ]
            },
            [],
            ["O2"],
        ),
        # Content and tool calls in one message: only Mistral wants one or the other.
        (
            {"messages": [USER, {**calls(call()), "content": "Looking."}, tool_reply(), PREFERRED]},
            ["M6"],
            [],
        ),
        # Several system messages: only Mistral wants one.
        (
            {
                "messages": [
                    {"role": "system", "content": "a"},
                    {"role": "system", "content": "b"},
                    USER,
                    PREFERRED,
                ]
            },
            ["F11"],
            [],
        ),
        ({**OK, "parallel_tool_calls": "no"}, [], ["F16"]),
        ({"messages": [USER, {"role": "assistant", "content": "ok", "weight": 2}]}, ["M7"], ["M7"]),
    ],
)
def test_dialect_differences(sample: dict[str, Any], mistral: list[str], openai: list[str]) -> None:
    assert _codes(sample, ChatRules.mistral) == mistral
    assert _codes(sample, ChatRules.openai) == openai


def test_tool_checks_are_cached_per_dialect() -> None:
    # The same tools list, checked in both dialects in turn, gives each dialect's answer.
    sample = {
        "messages": OK["messages"],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    for _ in range(2):
        assert _codes(sample, ChatRules.mistral) == ["F5", "F5"]
        assert _codes(sample, ChatRules.openai) == []
