"""``reconciler import --discover``: adopt, in bulk, the remote objects the specs describe.

For every address of the specs that the state does not record, :func:`discover` finds the
remote objects that are exactly what the spec asks for (:mod:`~reconciler.engine.adopt`):

* jobs first — a remote job whose request matches, made from files holding the spec's
  prepared content; its files are adopted with it (for file addresses not recorded yet). On a
  provider whose jobs carry our identity tag (OpenAI's job metadata), a job tagged with the
  spec's address and fingerprint is the spec's job exactly, and such jobs are the only
  candidates when there are any (a job made by hand with the same request is not taken over
  them); of several, the newest generation is the address's last job;
* then the remaining files — a remote file holding the part's prepared content, whatever its
  name.

It never guesses. An address with several candidates is listed as ambiguous with every
candidate, and left alone (adopt one with ``reconciler import ADDRESS ID``): of several
matching jobs, failed or cancelled attempts are passed over only when exactly one other
candidate is not; of several identical files, only the one under the part's own
content-addressed name is taken. A remote object is never bound to two addresses: one that
the state manages (or a job an address held) is no candidate, and one that two addresses
would take is ambiguous for both. Addresses with a pending create are left to apply's
recovery. Where the service does not give back training files' content (OpenAI), a file under
another name than the part's content-addressed one cannot be compared: an address that only
such files could match is listed as unverifiable with its candidates, and left alone.

:func:`discover` is pure (it takes the hashes of the candidate files' content, which
:func:`files_to_hash` names); :func:`discover_and_import` does the reading, hashing and
state write.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.client.types import JobStatus
from reconciler.engine import adopt
from reconciler.engine.desired import DesiredFile, DesiredState
from reconciler.engine.observed import Observed, refresh
from reconciler.engine.state_model import ResourceState, State, StateBackend
from reconciler.identity import TAG_ADDRESS_KEY
from reconciler.providers.base import JobTag

if TYPE_CHECKING:
    from reconciler.providers.base import Provider


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found.

    Attributes:
        records: the records to write, by address (files and jobs), in address order.
        ambiguous: address → every candidate remote id, for addresses left alone.
        unmatched: addresses no remote object matches (apply will create them).
        pending: addresses with a pending create intent (apply's recovery resolves them).
        unverifiable: address → the remote objects that would match if the content of files
            the service does not give back were the spec's (left alone; apply creates the
            address anew). Only where ``capabilities.file_download`` is false.
    """

    records: Mapping[str, ResourceState] = field(default_factory=dict)
    ambiguous: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    unverifiable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Open:
    """The addresses to discover and the remote objects that are no candidates."""

    files: tuple[str, ...]
    jobs: tuple[str, ...]
    pending: tuple[str, ...]
    taken: frozenset[str]
    recorded: Mapping[str, str]


def _open(desired: DesiredState, state: State | None) -> _Open:
    resources = state.resources if state is not None else {}
    pending = {i.address for i in state.intents.values()} if state is not None else set()
    _, held = state.job_bindings() if state is not None else ({}, frozenset[str]())
    free = [a for a in desired.addresses if a not in resources and a not in pending]
    return _Open(
        files=tuple(a for a in free if a in desired.files),
        jobs=tuple(a for a in free if a in desired.jobs),
        pending=tuple(a for a in desired.addresses if a in pending and a not in resources),
        taken=frozenset({r.remote_id for r in resources.values()} | held),
        recorded=adopt.recorded_files(desired.files, resources),
    )


def files_to_hash(desired: DesiredState, state: State | None, observed: Observed) -> set[str]:
    """Remote files whose content hash :func:`discover` needs.

    Those that no address records and that could hold a part to discover — one of an
    address not recorded, or a file of a job not recorded — but do not carry its
    content-addressed name (same size, another name).
    """
    scope = _open(desired, state)
    relevant: dict[str, DesiredFile] = {a: desired.files[a] for a in scope.files}
    for address in scope.jobs:
        relevant.update({d: desired.files[d] for d in desired.jobs[address].depends_on})
    return {
        file_id
        for file_id, remote in observed.files.items()
        if file_id not in scope.taken
        and any(adopt.needs_hash(f, remote) for f in relevant.values())
    }


def discover(desired: DesiredState, state: State | None, observed: Observed) -> Discovery:
    """The remote objects to adopt for the addresses the state does not record.

    ``observed.content`` must hold the hashes of :func:`files_to_hash`. Pure.
    """
    scope = _open(desired, state)
    records: dict[str, ResourceState] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    unmatched: list[str] = []
    claimed: set[str] = set()  # remote files bound by this run

    candidates: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for address in scope.jobs:
        job = desired.jobs[address]
        for job_id, remote in sorted(observed.jobs.items()):
            if job_id in scope.taken:
                continue
            ids = adopt.job_files(
                job, remote, desired.files, observed.files, observed.content, scope.recorded
            )
            if adopt.made_from_spec_files(job, ids) and adopt.job_matches(job, remote, ids):
                candidates.setdefault(address, []).append((job_id, ids))
        tagged = [
            c for c in candidates.get(address, []) if adopt.tagged_for(job, observed.jobs[c[0]])
        ]
        if tagged:
            candidates[address] = tagged  # exact identity beats a request that looks alike
    wanted_by = Counter(job_id for found in candidates.values() for job_id, _ in found)
    for address in scope.jobs:
        found = candidates.get(address, [])
        chosen = _one_job([j for j, _ in found], observed.jobs)
        if not found:
            unmatched.append(address)
        elif chosen is None or wanted_by[chosen] > 1:
            ambiguous[address] = tuple(j for j, _ in found)
        else:
            records[address] = adopt.job_record(
                desired.jobs[address], observed.jobs[chosen], imported=True
            )
            for dep, file_id in dict(found)[chosen].items():
                if dep in scope.files and dep not in records and file_id in observed.files:
                    name = observed.files[file_id].get("filename")
                    records[dep] = adopt.file_record(
                        desired.files[dep], file_id, name, imported=True
                    )
                    claimed.add(file_id)

    for address in scope.files:
        if address in records:
            continue
        part = desired.files[address]
        matching = [
            file_id
            for file_id, remote in sorted(observed.files.items())
            if file_id not in scope.taken
            and file_id not in claimed
            and adopt.file_matches(part, remote, observed.content) is True
        ]
        own = [f for f in matching if observed.files[f].get("filename") == part.filename]
        chosen_file = matching[0] if len(matching) == 1 else own[0] if len(own) == 1 else None
        if not matching:
            unmatched.append(address)
        elif chosen_file is None:
            ambiguous[address] = tuple(matching)
        else:
            filename = observed.files[chosen_file].get("filename")
            records[address] = adopt.file_record(part, chosen_file, filename, imported=True)
            claimed.add(chosen_file)
    return Discovery(
        records=dict(sorted(records.items())),
        ambiguous=ambiguous,
        unmatched=tuple(sorted(unmatched)),
        pending=scope.pending,
    )


def _one_job(job_ids: list[str], jobs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The one job to adopt among matching ones: the only one, or the only one that did not
    fail or get cancelled, or — among jobs tagged for the address — the only one of its
    newest generation; None when that does not decide."""
    if len(job_ids) < 2:
        return job_ids[0] if job_ids else None
    alive = [j for j in job_ids if not _gave_up(jobs[j])]
    if len(alive) == 1:
        return alive[0]
    generations = [g for j in job_ids if (g := _generation(jobs[j])) is not None]
    if len(generations) < len(job_ids):
        return None  # some are not tagged: nothing says which came last
    last = [j for j in job_ids if _generation(jobs[j]) == max(generations)]
    return last[0] if len(last) == 1 else None


def _generation(job: Mapping[str, Any]) -> int | None:
    """The generation of a job tagged by its address (see ``JobTag``), None if untagged."""
    metadata = job.get("user_metadata")
    if not isinstance(metadata, Mapping) or TAG_ADDRESS_KEY not in metadata:
        return None
    tag = JobTag.from_metadata(metadata)
    return tag.generation if tag is not None else None


def _gave_up(job: Mapping[str, Any]) -> bool:
    status = JobStatus.of(job.get("status"))
    return status is not None and (status.is_failed or status is JobStatus.CANCELLED)


def unverifiable(
    desired: DesiredState, state: State | None, observed: Observed, found: Discovery
) -> dict[str, tuple[str, ...]]:
    """The addresses ``found`` left unmatched that would match if every remote file that
    could hold a part's content (same size, another name: :func:`files_to_hash`) but was not
    hashed held it, with their candidates. Pure."""
    unhashed = files_to_hash(desired, state, observed) - observed.content.keys()
    assumed: dict[str, str] = {}
    for file_id in sorted(unhashed):
        size = observed.files[file_id].get("bytes")
        same = [f for _, f in sorted(desired.files.items()) if size in (None, f.bytes)]
        if same:
            assumed[file_id] = same[0].sha256
    if not assumed:
        return {}
    hopeful = discover(
        desired, state, dataclasses.replace(observed, content={**observed.content, **assumed})
    )
    out: dict[str, tuple[str, ...]] = {}
    for address in found.unmatched:
        if address in hopeful.records:
            out[address] = (hopeful.records[address].remote_id,)
        elif address in hopeful.ambiguous:
            out[address] = hopeful.ambiguous[address]
    return out


def discover_and_import(
    *,
    backend: StateBackend,
    client: Provider,
    desired: DesiredState,
    lock_timeout: float = 0.0,
    scratch: Path | None = None,
    dry_run: bool = False,
) -> Discovery:
    """Read the remote, hash the candidate files, :func:`discover`, and record what it found.

    Under the state lock (waiting up to ``lock_timeout`` seconds), unless ``dry_run``: then
    nothing is written. Candidate files are downloaded into ``scratch`` one at a time to be
    hashed (and removed); where the service does not give their content back, they are not,
    and what only they could match is :attr:`Discovery.unverifiable`.
    """
    lock = contextlib.nullcontext() if dry_run else backend.lock("import --discover", lock_timeout)
    with lock:
        state = backend.read()
        observed = refresh(client)
        hasher = adopt.ContentHasher(client, scratch)
        if hasher.available:
            observed.content.update(hasher.hashes(sorted(files_to_hash(desired, state, observed))))
        found = discover(desired, state, observed)
        if not hasher.available:
            hopeless = unverifiable(desired, state, observed, found)
            found = dataclasses.replace(
                found,
                unverifiable=hopeless,
                unmatched=tuple(a for a in found.unmatched if a not in hopeless),
            )
        if found.records and not dry_run:
            new = state.model_copy(deep=True) if state is not None else State()
            new.resources.update(found.records)
            backend.write(new, state.serial if state is not None else None)
    return found
