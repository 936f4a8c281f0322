"""``reconciler gc``: the remote files nothing in the state uses any more, and their deletion.

Apply never deletes an upload a new one replaced (a job in history may still need it, and
prune deletes only what the specs dropped). :func:`unused_files` names the remote files that
no address and no job of the state — current or in an address's history — uses:

* by default, the files this state knows it no longer uses: the earlier uploads of its
  dataset addresses (their history);
* with ``everything``, every remote file of the account that the state does not use. Files
  of other workspaces and tools sharing the account are among them: review the list.

Either way a file is kept when a job that is still active uses it (managed or not: deleting
its data could fail it), or when a create this state has pending may have made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.address import ResourceType
from reconciler.client.types import JobStatus
from reconciler.engine.observed import Observed
from reconciler.engine.state_model import State
from reconciler.errors import NotFoundError
from reconciler.identity import job_file_ids


@dataclass(frozen=True)
class UnusedFile:
    """A remote file that nothing in the state uses.

    Attributes:
        id: the remote file id.
        filename: its name on the remote.
        bytes: its size, when the remote reports it.
        replaced_by: the dataset address whose earlier upload it is (None: the state never
            recorded it, ``everything`` only).
    """

    id: str
    filename: str
    bytes: int | None
    replaced_by: str | None


def used_files(state: State | None, observed: Observed) -> set[str]:
    """Remote files in use: recorded by an address, used by a job an address holds or held
    or by any active remote job, or possibly made by a pending create (same name)."""
    used: set[str] = set()
    held: set[str] = set()
    if state is not None:
        for res in state.resources.values():
            if res.type is ResourceType.FILE:
                used.add(res.remote_id)
            else:
                held.add(res.remote_id)
                held.update(str(h.get("remote_id")) for h in res.history)
        pending = {str(i.lookup.get("filename")) for i in state.intents.values()}
        used.update(f for f, remote in observed.files.items() if remote.get("filename") in pending)
    for job_id, job in observed.jobs.items():
        status = JobStatus.of(job.get("status"))
        if job_id in held or (status is not None and status.is_active):
            used.update(job_file_ids(job))
    return used


def unused_files(
    state: State | None, observed: Observed, *, everything: bool = False
) -> list[UnusedFile]:
    """The remote files to list (see the module docstring), oldest first."""
    earlier: dict[str, str] = {}
    if state is not None:
        for res in state.resources.values():
            if res.type is ResourceType.FILE:
                earlier.update({str(h.get("remote_id")): res.address for h in res.history})
    used = used_files(state, observed)
    found = [
        UnusedFile(
            id=file_id,
            filename=str(remote.get("filename") or ""),
            bytes=remote.get("bytes"),
            replaced_by=earlier.get(file_id),
        )
        for file_id, remote in sorted(
            observed.files.items(), key=lambda item: (item[1].get("created_at") or 0, item[0])
        )
        if file_id not in used and (everything or file_id in earlier)
    ]
    return found


def delete_files(files: list[UnusedFile], delete: Callable[[str], None]) -> list[str]:
    """Delete these files with ``delete(file_id)``; returns the ids deleted (or already gone)."""
    done: list[str] = []
    for unused in files:
        try:
            delete(unused.id)
        except NotFoundError:
            pass  # gone already: the goal is reached
        done.append(unused.id)
    return done
