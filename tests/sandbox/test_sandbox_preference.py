"""The sandbox's check of DPO preference files: the shared rules of the data package, with
OpenAI's chat dialect, by line number (the same rules `reconciler validate` applies)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from reconciler.sandbox.validation import check_upload
from tests.sandbox.conftest import chat_lines, preference_lines, upload


def _sample(**changes: object) -> str:
    sample: dict[str, object] = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    sample.update(changes)
    return json.dumps(sample)


def test_a_valid_preference_file(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(preference_lines(12))
    check = check_upload(path, "prefs.jsonl", openai=True)
    assert (check.sample_type, check.samples, check.invalid, check.problems) == (
        "preference",
        12,
        0,
        [],
    )
    assert check.num_lines == 12 and check.approx_tokens > 0


def test_every_broken_sample_is_named_by_line(tmp_path: Path) -> None:
    lines = [
        _sample(),
        "not json",
        "[1, 2]",
        _sample(preferred_output=None).replace('"preferred_output": null, ', ""),
        _sample(input={"messages": []}),
        _sample(input={"messages": [{"role": "judge", "content": "q"}]}),
        _sample(
            input={
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        ),
        _sample(preferred_output=[{"role": "assistant", "content": "a"}] * 2),
        _sample(non_preferred_output=[{"role": "user", "content": "a"}]),
        _sample(preferred_output=[{"role": "assistant", "content": ""}]),
        chat_lines(1).decode().strip(),  # a chat sample among preference ones
        _sample(preferred_output=[{"role": "assistant", "tool_calls": [{"id": "t"}]}]),
    ]
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    check = check_upload(path, "prefs.jsonl", openai=True)
    assert check.sample_type == "preference"
    assert (check.samples, check.invalid) == (12, 11)
    assert [(p.line, p.code) for p in check.problems] == [
        (2, "JSON"),
        (3, "F17"),
        (4, "D1"),
        (5, "D2"),
        (6, "F10"),
        (7, "D3"),
        (8, "D4"),
        (9, "D5"),
        (10, "M6"),
        (11, "D1"),
        (12, "F12"),  # a tool call without its function
        (12, "O2"),
    ]
    assert "no 'preferred_output' key" in check.problems[2].message
    assert "must end with a user message" in check.problems[5].message


def test_detection_looks_at_the_first_sample(tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_bytes(chat_lines(12))
    assert check_upload(chat, openai=True).sample_type == "instruct"
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(b"\n" + preference_lines(3))
    # Without the OpenAI dialect's preference option, the shared (chat) rules apply.
    shared = check_upload(prefs)
    assert shared.invalid == shared.samples == 3
    assert check_upload(prefs, openai=True).invalid == 0


def test_mistral_refuses_preference_files(api: httpx.Client) -> None:
    r = upload(api, preference_lines(12), "prefs.jsonl")
    assert r.status_code == 422
    assert "12 of 12 samples break the training-data rules" in r.json()["detail"]
