"""Opening a workspace holds the specs to the operator's settings before anything happens,
and a PATH that is no spec directory or file is an error."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from security_helpers import run_cli, write_tree

from reconciler.errors import InvalidValueError, SpecError
from reconciler.spec.trust import ENDPOINTS_ENV, PATHS_ENV, SECRETS_ENV, STORAGE_ENV
from reconciler.workspace import open_workspace
from tests.cli_inprocess import run_cli as run_in_process

PROVIDER = "kind: Provider\nname: p\ntype: {type}\nendpoint: {endpoint}\n"


def _problems(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, str, str]]:
    root = write_tree(tmp_path / "ws", files)
    with pytest.raises(SpecError) as info:
        open_workspace([root])
    return [
        (p.code, str(p.location).removeprefix(f"{root}/"), p.message + " " + (p.hint or ""))
        for p in info.value.problems
    ]


def test_a_mistral_provider_elsewhere_is_refused_at_its_endpoint_line(tmp_path: Path) -> None:
    files = {"p.yaml": PROVIDER.format(type="mistral", endpoint="https://api.mistral.ai.evil.com")}
    [(code, where, text)] = _problems(tmp_path, files)
    assert (code, where) == ("endpoint-not-allowed", "p.yaml:4:11")
    assert "https://api.mistral.ai.evil.com" in text and "nothing was sent" in text
    assert f"add https://api.mistral.ai.evil.com:443 to {ENDPOINTS_ENV}" in text


def test_a_sandbox_elsewhere_than_loopback_is_refused_by_default(tmp_path: Path) -> None:
    files = {"p.yaml": PROVIDER.format(type="sandbox", endpoint="http://10.1.2.3:8080")}
    [(code, _, text)] = _problems(tmp_path, files)
    assert code == "endpoint-not-allowed" and "loopback" in text


def test_the_operator_allows_an_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(
        tmp_path / "ws",
        {"p.yaml": PROVIDER.format(type="sandbox", endpoint="http://10.1.2.3:8080")},
    )
    monkeypatch.setenv(ENDPOINTS_ENV, "http://10.1.2.3:8080")
    with open_workspace([root]) as ws:  # nothing is sent until a command asks the client
        assert ws.target == "sandbox http://10.1.2.3:8080"


def test_every_refusal_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRETS_ENV, "WANDB_API_KEY")
    problems = _problems(
        tmp_path,
        {
            "p.yaml": "kind: Provider\nname: p\ntype: mistral\n"
            "state: {backend: postgres, dsn: {env: HOME}}\n",
            "w.yaml": "kind: WandbIntegration\nname: w\nproject: x\napi_key: {file: ../k}\n",
            "d.yaml": "kind: Dataset\nname: d\npaths: [ok.jsonl, /etc/passwd]\n",
        },
    )
    got = [(code, where) for code, where, _ in problems]
    assert got == [
        ("path-not-allowed", "d.yaml:3:19"),
        ("secret-not-allowed", "p.yaml:1:1"),  # the default key, MISTRAL_API_KEY: no line
        ("secret-not-allowed", "p.yaml:4:28"),
        ("secret-not-allowed", "w.yaml:4:1"),
    ]
    texts = " ".join(text for _, _, text in problems)
    assert "MISTRAL_API_KEY" in texts and "HOME" in texts and "leads out" in texts


def test_a_malformed_trust_setting_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "ws", {"d.yaml": "kind: Dataset\nname: d\npath: x.jsonl\n"})
    monkeypatch.setenv(ENDPOINTS_ENV, "ftp://files.example")
    with pytest.raises(InvalidValueError, match=ENDPOINTS_ENV):
        open_workspace([root])


def test_a_bad_trust_setting_through_the_cli_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "ws", {"d.yaml": "kind: Dataset\nname: d\npath: x.jsonl\n"})
    result = run_cli(["plan", "."], root, {ENDPOINTS_ENV: "https://user@host.example"})
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: environment variable {ENDPOINTS_ENV}: ")
    assert "Traceback" not in result.stderr


def test_apply_dev_null_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    existed = Path("/dev/.reconciler").exists()
    result = run_cli(["apply", "/dev/null", "--yes"], tmp_path, {})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "/dev/null: error: not a directory of specs or a spec file" in result.stderr
    assert existed or not Path("/dev/.reconciler").exists()


def test_a_fifo_named_as_path_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "specs.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            open_workspace([fifo])
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        with open(fifo, "w", encoding="utf-8"):
            pass  # unblock the reader so the run can end
        pytest.fail("loading a FIFO as a spec file blocked")
    [error] = outcome
    assert isinstance(error, SpecError) and error.problems[0].code == "not-a-spec-path"


def test_a_secret_file_the_up_front_check_passes_is_read_at_apply_too(tmp_path: Path) -> None:
    # The W&B key lives beside the specs, one directory up from the integration's file: inside
    # the workspace, so the check at open passes it; the apply must read it under the same root.
    key = "k" * 8 + "0123456789abcdef" * 2
    root = write_tree(
        tmp_path / "ws",
        {
            "specs/keys/wandb": key + "\n",
            "specs/integrations/w.yaml": "kind: WandbIntegration\nname: w\nproject: p\n"
            "api_key: {file: ../keys/wandb}\n",
            "specs/data.yaml": "kind: Dataset\nname: d\npath: train.jsonl\n",
            "specs/train.jsonl": '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "ok"}]}\n',
            "specs/job.yaml": "kind: FineTuningJob\nname: j\nmodel: open-mistral-7b\n"
            "training_files: [d]\nintegrations: [w]\nhyperparameters: {training_steps: 10}\n",
        },
    )
    result = run_cli(["apply", "specs/", "--yes"], root, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert key not in result.stdout + result.stderr


def test_validate_shows_the_refusals_plan_would_stop_at(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "ws",
        {
            "specs/p.yaml": "kind: Provider\nname: p\ntype: mistral\n"
            "endpoint: https://api.mistral.ai.evil.com\n",
            "specs/w.yaml": "kind: WandbIntegration\nname: w\nproject: x\napi_key: {env: HOME}\n",
            "specs/d.yaml": "kind: Dataset\nname: d\npaths: [ok.jsonl, ../../etc/passwd]\n",
            "specs/ok.jsonl": '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "ok"}]}\n',
        },
    )
    env = {**os.environ, SECRETS_ENV: "MISTRAL_API_KEY,WANDB_API_KEY"}
    env.pop(ENDPOINTS_ENV, None)
    plan = run_in_process(["plan", "specs"], cwd=root, env=env)
    validate = run_in_process(["validate", "specs"], cwd=root, env=env)
    assert plan.returncode == validate.returncode == 1
    refusals = [line for line in plan.stderr.splitlines() if ": error: " in line]
    assert len(refusals) == 3, plan.stderr  # the endpoint, HOME, the path out
    for line in refusals:
        assert validate.stdout.count(line) == 1, (line, validate.stdout)
    assert "Traceback" not in validate.stdout + validate.stderr


RAY = "kind: Provider\nname: p\ntype: ray\naddress: {address}\nstorage: {storage}\n"


def test_a_ray_head_on_this_machine_and_storage_in_the_workspace_need_no_setting(
    tmp_path: Path,
) -> None:
    root = write_tree(
        tmp_path / "ws", {"p.yaml": RAY.format(address="http://127.0.0.1:8265", storage="ft")}
    )
    with open_workspace([root]) as ws:  # nothing is sent until a command asks the provider
        assert ws.target == f"ray http://127.0.0.1:8265 (storage {(root / 'ft').resolve()})"


@pytest.mark.parametrize(
    ("address", "storage", "expected"),
    [
        # A cluster elsewhere is the operator's decision, like any endpoint.
        (
            "http://10.1.2.3:8265",
            "ft",
            [
                (
                    "endpoint-not-allowed",
                    "p.yaml:4:10",
                    "address http://10.1.2.3:8265 is not allowed",
                )
            ],
        ),
        # Storage outside the workspace: a directory anywhere on this machine ...
        (
            "http://127.0.0.1:8265",
            "/home/someone/.ssh",
            [("path-not-allowed", "p.yaml:5:10", "'/home/someone/.ssh': absolute paths")],
        ),
        ("http://127.0.0.1:8265", "../../x", [("path-not-allowed", "p.yaml:5:10", "leads out")]),
        (
            "http://127.0.0.1:8265",
            "file:///etc",
            [("path-not-allowed", "p.yaml:5:10", "'/etc': absolute paths are not allowed")],
        ),
        # ... or a bucket the spec names (the operator's credentials would write there).
        (
            "http://127.0.0.1:8265",
            "s3://someone-elses-bucket/loot",
            [
                (
                    "storage-not-allowed",
                    "p.yaml:5:10",
                    f"storage s3://someone-elses-bucket/loot is not allowed: no storage URI is "
                    f"allowed unless the operator lists it in {STORAGE_ENV}",
                )
            ],
        ),
    ],
)
def test_a_ray_address_and_storage_from_a_spec_are_held_to_the_operators_settings(
    tmp_path: Path, address: str, storage: str, expected: list[tuple[str, str, str]]
) -> None:
    found = _problems(tmp_path, {"p.yaml": RAY.format(address=address, storage=storage)})
    assert [(code, where) for code, where, _ in found] == [(c, w) for c, w, _ in expected]
    for (_, _, text), (_, _, fragment) in zip(found, expected, strict=True):
        assert fragment in text, text


def test_the_operator_allows_a_cluster_its_shared_storage_and_a_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    monkeypatch.setenv(ENDPOINTS_ENV, "http://10.1.2.3:8265")
    monkeypatch.setenv(PATHS_ENV, str(shared))
    monkeypatch.setenv(STORAGE_ENV, "s3://ft-bucket/tone")
    for storage, resolved in (
        (str(shared / "ft"), str(shared / "ft")),
        ("s3://ft-bucket/tone/v2/", "s3://ft-bucket/tone/v2"),
    ):
        root = write_tree(
            tmp_path / "ws", {"p.yaml": RAY.format(address="http://10.1.2.3:8265", storage=storage)}
        )
        with open_workspace([root]) as ws:
            assert ws.binding.storage == resolved
    monkeypatch.setenv(STORAGE_ENV, "s3://ft-bucket/other")
    [(code, _, text)] = _problems(
        tmp_path,
        {"p.yaml": RAY.format(address="http://10.1.2.3:8265", storage="s3://ft-bucket/tone")},
    )
    assert code == "storage-not-allowed" and f"not among the storage URIs {STORAGE_ENV}" in text
