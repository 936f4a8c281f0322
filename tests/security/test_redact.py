"""The registry of resolved secrets and where it scrubs: errors, logs, every escaped form."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from reconciler.errors import ApplyError, ReconcilerError, SecretError
from reconciler.redact import MIN_LENGTH, register_secret, registered_count, scrub, scrub_obj

KEY = 'k3y-with-"quote"\\and/slash-0123456789'


def test_every_form_of_a_registered_value_is_scrubbed() -> None:
    register_secret(KEY)
    for form in (KEY, json.dumps(KEY)[1:-1], repr(KEY)[1:-1], quote(KEY, safe="")):
        assert scrub(f"before {form} after") == "before *** after"


def test_a_dsn_password_is_scrubbed_on_its_own_too() -> None:
    register_secret("postgresql://svc:pg%40ssw0rd-long@db.example/state")
    assert scrub("auth failed for password pg@ssw0rd-long") == "auth failed for password ***"
    assert scrub("dsn=postgresql://svc:pg%40ssw0rd-long@db.example/state") == "dsn=***"


def test_short_values_are_not_registered() -> None:
    register_secret("x" * (MIN_LENGTH - 1))
    assert registered_count() == 0
    assert scrub("x" * 20) == "x" * 20


def test_errors_print_scrubbed_whatever_built_them() -> None:
    register_secret(KEY)
    errors: list[ReconcilerError] = [
        SecretError(f"echo: {KEY}"),
        ApplyError([("job.a", f"server said {KEY}")]),
    ]
    for error in errors:
        assert KEY not in str(error) and "***" in str(error)
        assert KEY not in f"{error}"


def test_log_records_are_scrubbed_with_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    register_secret(KEY)
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("reconciler.test")
    log.info("request body %s", {"api_key": KEY})
    logging.getLogger("some.library").warning("header: Bearer " + KEY)
    assert KEY not in caplog.text
    assert [r.getMessage() for r in caplog.records] == [
        "request body {'api_key': '***'}",
        "header: Bearer ***",
    ]


def test_scrub_obj_reaches_keys_and_nested_values() -> None:
    register_secret(KEY)
    value = {KEY: [{"input": {"api_key": KEY}}, 3, None]}
    assert scrub_obj(value) == {"***": [{"input": {"api_key": "***"}}, 3, None]}


def test_extra_values_are_scrubbed_without_being_registered() -> None:
    assert scrub("bearer abcd1234", ["abcd1234", None]) == "bearer ***"
    assert registered_count() == 0
