"""The API key never shows up in reprs, logs, exceptions or httpx event-hook output."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import httpx
import pytest
from client_fakes import KEY, FakeApi, Fault

from reconciler.client import MistralClient
from reconciler.errors import ApiError, ReconcilerError


def test_key_never_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's included
    captured: list[str] = []
    api = FakeApi()
    # A server that echoes the key back in an error body must not make us print it.
    api.fault(Fault("GET", "/v1/files/echo", status=401, body={"detail": f"bad key {KEY}"}))
    api.fault(Fault("GET", "/v1/files/gone", status=503, times=20, body={"message": f"oops {KEY}"}))
    api.fault(Fault("GET", "/v1/files/drop", kind="drop-before", exc=httpx.ReadTimeout, times=20))
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after"))
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')

    client = MistralClient(
        "http://remote.test", KEY, transport=api.transport(), sleep=lambda s: None, max_attempts=2
    )

    def hook(obj: httpx.Request | httpx.Response) -> None:
        captured.append(repr(obj))
        captured.append(repr(obj.headers))
        captured.append(str(obj.headers))
        if isinstance(obj, httpx.Request):
            captured.append(str(obj.url))

    client._http.event_hooks = {"request": [hook], "response": [hook]}
    captured.append(repr(client))
    captured.append(str(vars(client).keys()))
    captured.append(repr(client.stats))
    errors: list[BaseException] = []
    for op in (
        lambda: client.get_file("echo"),
        lambda: client.get_file("gone"),
        lambda: client.get_file("drop"),
        lambda: client.get_file("missing"),
        lambda: client.upload_file(path, path.name),
        lambda: client.create_job({"model": "m", "training_files": [], "hyperparameters": {}}),
    ):
        try:
            op()
        except ApiError as exc:
            errors.append(exc)
    assert len(errors) == 4
    for exc in errors:
        captured += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        captured += [str(getattr(exc, a)) for a in ("reason", "detail", "path", "method")]
    client.close()
    out = capsys.readouterr()
    captured += [out.out, out.err, caplog.text]
    captured += [r.getMessage() for r in caplog.records]
    assert any("retrying" in r.getMessage() for r in caplog.records)  # logs were produced
    assert len(captured) > 30
    for text in captured:
        assert KEY not in text
    assert "***" in str(errors[0])  # the echoed key was scrubbed, not silently dropped


@pytest.mark.parametrize("bad", ["", "   ", "abc def", "abc\ndef"])
def test_malformed_key_is_rejected_without_echoing_it(bad: str) -> None:
    with pytest.raises(ReconcilerError) as info:
        MistralClient("http://remote.test", bad)
    assert "API key" in str(info.value)
    if bad.strip():
        assert bad.strip() not in str(info.value)


def test_key_with_surrounding_newline_is_accepted() -> None:
    # Secrets read from files usually end with a newline.
    api = FakeApi()
    with MistralClient("http://remote.test", KEY + "\n", transport=api.transport()) as client:
        assert client.list_files() == []
