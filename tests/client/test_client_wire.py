"""Odd but contract-valid answers, replayed: the client reads them the way the contract means.

Each test scripts a remote with ``httpx.MockTransport`` that answers as the reference document
allows but our sandbox never does: pages shorter than asked, a list without ``data``, a file
without a size, model cards with nulls, a delete that did not happen, a deleted file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_fakes import KEY, make_file

from reconciler.client import MistralClient
from reconciler.engine.observed import Observed, refresh
from reconciler.errors import ApiError, NotFoundError

Handler = Callable[[httpx.Request], httpx.Response]
FILE_ID = make_file(1)["id"]


def client_with(handler: Handler) -> MistralClient:
    return MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler))


def capped_pages(items: list[dict[str, Any]], cap: int, total: int | None) -> Handler:
    """A list endpoint that never sends more than ``cap`` items per page, whatever was
    asked, and says the list holds ``total`` (or sends no total when it is None)."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        body: dict[str, Any] = {"object": "list", "data": items[page * cap : (page + 1) * cap]}
        if total is not None:
            body["total"] = total
        return httpx.Response(200, json=body)

    return handler


# -- paging -----------------------------------------------------------------------------------


def test_short_pages_are_followed_while_total_says_more_remain() -> None:
    files = [make_file(n) for n in range(5)]
    with client_with(capped_pages(files, cap=2, total=5)) as client:
        listed = client.list_files(page_size=100)
        assert [f.id for f in listed] == [f["id"] for f in files]
        assert client.stats.requests == 3  # 2 + 2 + 1: the third page reaches the total


def test_short_page_without_total_is_the_last() -> None:
    files = [make_file(n) for n in range(5)]
    with client_with(capped_pages(files, cap=2, total=None)) as client:
        assert len(client.list_files(page_size=100)) == 2
        assert client.stats.requests == 1


def test_empty_page_stops_even_though_total_says_more(caplog: pytest.LogCaptureFixture) -> None:
    # The server's total is stale (objects were deleted meanwhile): stop at the empty page.
    files = [make_file(n) for n in range(4)]
    with caplog.at_level(logging.WARNING, "reconciler.client"):
        with client_with(capped_pages(files, cap=2, total=10)) as client:
            assert len(client.list_files(page_size=100)) == 4
            assert client.stats.requests == 3
    assert "page 2 is empty although the list's total says 6 more remain" in caplog.text


def test_a_repeated_short_page_with_a_large_total_does_not_loop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"object": "list", "data": [make_file(1), make_file(2)], "total": 1000}
        )

    with client_with(handler) as client:
        assert len(client.list_files(page_size=100)) == 2
        assert client.stats.requests == 2


def test_a_total_smaller_than_what_was_read_is_not_trusted() -> None:
    # A server that counts something else (total: 0 with items) pages by short pages.
    files = [make_file(n) for n in range(3)]
    with client_with(capped_pages(files, cap=2, total=0)) as client:
        assert len(client.list_files(page_size=2)) == 3
        assert client.stats.requests == 2


@pytest.mark.parametrize("body", [{"object": "list", "total": 0}, {"data": None, "total": 0}])
def test_a_jobs_list_without_data_is_empty(body: dict[str, Any]) -> None:
    # JobsOut requires only `total`.
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        assert client.list_jobs() == []


@pytest.mark.parametrize("body", [["not", "an", "object"], {"data": {"id": "x"}}, None])
def test_a_list_answer_of_another_shape_is_still_an_error(body: Any) -> None:
    answer = json.dumps(body).encode()  # `json=None` would send no body at all
    with client_with(lambda request: httpx.Response(200, content=answer)) as client:
        with pytest.raises(ApiError, match="no 'data' list"):
            client.list_jobs()


# -- files ------------------------------------------------------------------------------------


def sizeless(n: int) -> dict[str, Any]:
    # The contract's own examples answer `bytes: null`.
    return {**make_file(n), "bytes": None}


def test_a_file_without_a_size_matches_by_name() -> None:
    listing = {"object": "list", "data": [sizeless(7)], "total": 1}
    with client_with(lambda request: httpx.Response(200, json=listing)) as client:
        found = client.find_file("train-0007.jsonl", size=10)
        assert found is not None and found.id == make_file(7)["id"] and found.bytes is None
        assert client.find_file("train-0008.jsonl", size=10) is None
    observed = Observed(files={f["id"]: f for f in listing["data"]})
    matched = observed.file_by_name("train-0007.jsonl", 10)
    assert matched is not None and matched["id"] == make_file(7)["id"]
    assert observed.file_by_name("train-0007.jsonl.bak", 10) is None


def test_a_file_of_another_size_still_does_not_match() -> None:
    listing = {"object": "list", "data": [{**make_file(7), "bytes": 11}], "total": 1}
    with client_with(lambda request: httpx.Response(200, json=listing)) as client:
        assert client.find_file("train-0007.jsonl", size=10) is None
    assert Observed(files={"f": listing["data"][0]}).file_by_name("train-0007.jsonl", 10) is None


def test_a_retrieved_file_marked_deleted_is_not_found() -> None:
    body = {**make_file(1), "deleted": True}
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        with pytest.raises(NotFoundError, match=f"file {FILE_ID} was deleted") as caught:
            client.get_file(FILE_ID)
    assert caught.value.path == f"/v1/files/{FILE_ID}"


def test_a_retrieved_file_not_marked_deleted_is_returned() -> None:
    body = {**make_file(1), "deleted": False}
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        assert client.get_file(FILE_ID).id == FILE_ID


# -- deletes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delete", "object_id", "what"),
    [
        (MistralClient.delete_file, FILE_ID, "file"),
        (MistralClient.delete_model, "ft:open-mistral-7b:abc:20250101:1234", "model"),
    ],
)
def test_deleted_false_is_a_failure(
    delete: Callable[[MistralClient, str], None], object_id: str, what: str
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json={"id": object_id, "object": what, "deleted": False})

    with client_with(handler) as client:
        with pytest.raises(ApiError, match=f"{what} {object_id} was not deleted") as caught:
            delete(client, object_id)
    assert caught.value.method == "DELETE" and caught.value.status == 200
    assert sent == ["DELETE"]  # not retried: the server answered, and said no


@pytest.mark.parametrize("body", [{"id": "x", "object": "file", "deleted": True}, {"id": "x"}])
def test_a_delete_that_says_deleted_or_says_nothing_succeeds(body: dict[str, Any]) -> None:
    # DeleteModelOut's `deleted` defaults to true: its absence is not a refusal.
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        client.delete_file(FILE_ID)
        client.delete_model("ft:x")


@pytest.mark.parametrize(
    ("action", "answered", "failure"),
    [
        (
            MistralClient.archive_model,
            False,
            "was not archived: the server answered 'archived: false'",
        ),
        (
            MistralClient.unarchive_model,
            True,
            "was not unarchived: the server answered 'archived: true'",
        ),
    ],
)
def test_an_archive_answer_that_contradicts_the_action_is_a_failure(
    action: Callable[[MistralClient, str], None], answered: bool, failure: str
) -> None:
    body = {"id": "ft:x", "object": "model", "archived": answered}
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        with pytest.raises(ApiError, match=f"model ft:x {failure}"):
            action(client, "ft:x")
    # ArchiveFTModelOut / UnarchiveFTModelOut default the flag: its absence is success.
    with client_with(lambda request: httpx.Response(200, json={"id": "ft:x"})) as client:
        action(client, "ft:x")


# -- models -----------------------------------------------------------------------------------

BASE_CARD_WITH_NULLS = {
    "id": "open-mistral-7b",
    "object": "model",
    "created": None,
    "owned_by": None,
    "capabilities": None,
    "name": None,
    "description": None,
    "max_context_length": None,
    "aliases": None,
    "deprecation": None,
    "type": "base",
}
FT_CARD = {
    "id": "ft:open-mistral-7b:abc:20250101:1234",
    "object": "model",
    "capabilities": {"completion_chat": True},
    "job": "4fa85f64-5717-4562-b3fc-2c963f66afa6",
    "root": "open-mistral-7b",
    "name": "tutor",
    "description": None,
    "archived": None,
    "type": "fine-tuned",
}


def test_a_base_card_with_unexpected_nulls_reads_as_defaults() -> None:
    with client_with(lambda request: httpx.Response(200, json=BASE_CARD_WITH_NULLS)) as client:
        card = client.get_model("open-mistral-7b")
    assert card.capabilities == {} and card.aliases == [] and card.max_context_length is None
    assert card.owned_by is None and not card.is_fine_tuned


def test_malformed_descriptive_card_fields_are_ignored() -> None:
    card = {**BASE_CARD_WITH_NULLS, "capabilities": "all", "aliases": "none", "created": "soon"}
    with client_with(lambda request: httpx.Response(200, json=card)) as client:
        model = client.get_model("open-mistral-7b")
    assert (model.capabilities, model.aliases, model.created) == ({}, [], None)


def test_a_card_that_does_not_parse_is_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = [{"object": "model", "type": "base"}, {**FT_CARD, "id": "ft:bad", "archived": "?"}]
    body = {"object": "list", "data": [BASE_CARD_WITH_NULLS, *broken, FT_CARD]}
    with caplog.at_level(logging.WARNING, "reconciler.client"):
        with client_with(lambda request: httpx.Response(200, json=body)) as client:
            models = client.list_models()
            assert client.stats.skipped_objects == 2
    assert [m.id for m in models] == ["open-mistral-7b", FT_CARD["id"]]
    assert models[1].archived is False and models[1].is_fine_tuned
    assert "skipped 2 model card(s) that do not parse: (no id): id: Field required" in caplog.text
    assert "ft:bad: archived:" in caplog.text


@pytest.mark.parametrize("body", [{"object": "list"}, {"data": None}, []])
def test_a_models_list_without_cards_is_empty(body: Any) -> None:
    with client_with(lambda request: httpx.Response(200, json=body)) as client:
        assert client.list_models() == []


def test_refresh_survives_odd_cards_and_a_jobs_list_without_data() -> None:
    answers: dict[str, Any] = {
        "/v1/files": {"object": "list", "data": [sizeless(1)], "total": None},
        "/v1/fine_tuning/jobs": {"object": "list", "total": 0},
        "/v1/models": {"object": "list", "data": [BASE_CARD_WITH_NULLS, FT_CARD, {"id": None}]},
    }
    with client_with(lambda request: httpx.Response(200, json=answers[request.url.path])) as c:
        observed = refresh(c)
    assert list(observed.files) == [make_file(1)["id"]] and observed.jobs == {}
    assert list(observed.models) == [FT_CARD["id"]]
    assert observed.models[FT_CARD["id"]]["archived"] is False


def test_a_download_accepts_what_the_content_endpoint_answers(tmp_path: Path) -> None:
    # GET /v1/files/{id}/content answers application/octet-stream; the client-wide
    # `Accept: application/json` would let a negotiating server refuse it (406).
    accepted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        accepted.append(request.headers["accept"])
        return httpx.Response(
            200, content=b"line\n", headers={"content-type": "application/octet-stream"}
        )

    with client_with(handler) as client:
        client.download_file(FILE_ID, tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_bytes() == b"line\n"
    assert accepted[0].split(",")[0] == "application/octet-stream"
