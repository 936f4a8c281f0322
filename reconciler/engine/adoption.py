"""``Import`` and ``Moved`` documents in the plan: the state as apply will find it.

The planner plans against the state these documents make (:func:`adopt_declared`): each
Moved's record under its new address, each Import's remote object recorded for its address
(and the files a job is made from, for file addresses not recorded yet). Each change of such
an address carries ``moved_from`` or ``import_id``; apply records them first, then does the
rest of the change. Pure: reads only its arguments.

Documents are harmless left in the specs:

* a Moved whose ``from`` is not recorded does nothing (already moved, or never applied);
* an Import whose address holds — or held — its remote object does nothing.

Conflicts are plan errors (:class:`~reconciler.errors.PlanError`), all listed at once, each
with its document's ``file:line``: a Moved whose ``from`` and ``to`` are both recorded; an
Import into an address that holds another object, of an object another address holds or
held, of an object the remote does not have, or of one that is not what the spec asks for
(a job whose request differs, a file whose content differs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.address import Address, ResourceType
from reconciler.engine.adopt import (
    file_matches,
    file_record,
    job_differences,
    job_files,
    job_record,
    made_from_spec_files,
    needs_hash,
    recorded_files,
)
from reconciler.engine.desired import DesiredState, file_line
from reconciler.engine.moves import move_record
from reconciler.engine.observed import Observed
from reconciler.engine.state_model import State
from reconciler.errors import PlanError
from reconciler.identity import job_file_ids
from reconciler.spec.resolved import DeclaredImport

_UNREADABLE = (
    "the remote does not give back the content of training files (openai), so there a file "
    "is recognised only under the prepared part's own content-addressed name and size, as "
    "apply uploads it; remove the Import and let apply upload the data"
)


@dataclass(frozen=True)
class Adoption:
    """The state as apply will find it once the Import and Moved documents are applied.

    Attributes:
        state: that state (a copy; the given one is unchanged).
        moved: address → the address whose record moves to it.
        imported: address → the remote object recorded for it (jobs, and the files a job
            is made from).
    """

    state: State
    moved: Mapping[str, Address]
    imported: Mapping[str, str]


def adopt_declared(desired: DesiredState, state: State, observed: Observed) -> Adoption:
    """The state after the specs' Import and Moved documents (see the module docstring).

    ``observed.content`` must hold the content hash of every remote file an unrecorded
    Import needs compared by content (see :func:`remote_files_to_hash`).

    Raises:
        PlanError: a document conflicts with the state or the remote, naming each.
    """
    if not desired.moves and not desired.imports:
        return Adoption(state=state, moved={}, imported={})
    after = state.model_copy(deep=True)
    errors: list[str] = []
    moved: dict[str, Address] = {}
    for address, move in sorted(desired.moves.items()):
        if move.source not in after.resources:
            continue  # already moved, or nothing was ever recorded there
        if address in after.resources:
            errors.append(
                f"{file_line(move.location)}: Moved {move.source} -> {address}: both are "
                "recorded "
                f"(remote {after.resources[move.source].remote_id} and "
                f"{after.resources[address].remote_id}); keep one with 'reconciler state rm', "
                "or remove the Moved document"
            )
            continue
        move_record(after, move.source, address)
        moved[address] = move.source
    importer = _Importer(desired, after, observed)
    for address, declared in sorted(desired.imports.items()):
        problem = importer.record(declared)
        if problem is not None:
            errors.append(
                f"{file_line(declared.location)}: Import {address} = {declared.remote_id}: {problem}"
            )
    if errors:
        raise PlanError(
            "the Import and Moved documents cannot be planned:\n  "
            + "\n  ".join(errors)
            + "\nNothing was changed."
        )
    return Adoption(state=after, moved=moved, imported=importer.imported)


def remote_files_to_hash(
    desired: DesiredState, state: State | None, observed: Observed
) -> set[str]:
    """Remote files whose content an Import not recorded yet must be compared by.

    The imported file itself, or the files an imported job uses, when only a content hash
    can tell whether they hold a part of the specs (same size, another name).
    """
    wanted: set[str] = set()
    resources = state.resources if state is not None else {}
    for address, declared in desired.imports.items():
        if address in resources:
            continue
        targets = [address]
        candidates = [declared.remote_id]
        job = desired.jobs.get(address)
        if job is not None:
            remote_job = observed.jobs.get(declared.remote_id) or {}
            targets = list(job.depends_on)
            candidates = [str(f) for f in remote_job.get("training_files") or []]
            candidates += [str(f) for f in remote_job.get("validation_files") or []]
        for file_id in candidates:
            remote = observed.files.get(file_id)
            if remote is None:
                continue
            if any(
                t in desired.files and _unresolved(desired, t, remote, observed) for t in targets
            ):
                wanted.add(file_id)
    return wanted


def _unresolved(
    desired: DesiredState, address: str, remote: Mapping[str, object], observed: Observed
) -> bool:
    return file_matches(desired.files[address], remote, observed.content) is None


@dataclass
class _Importer:
    """Records Import documents in ``after``, the state being built.

    Attributes:
        desired, observed: what the specs ask for and what the remote shows.
        after: the state the Imports are recorded in.
        imported: address → the remote object recorded for it, so far.
    """

    desired: DesiredState
    after: State
    observed: Observed
    imported: dict[str, str] = field(default_factory=dict)

    def record(self, declared: DeclaredImport) -> str | None:
        """Record one Import; what conflicts, if anything."""
        address, remote_id = declared.address, declared.remote_id
        res = self.after.resources.get(address)
        if res is not None:
            held = {res.remote_id, *(str(h.get("remote_id")) for h in res.history)}
            if remote_id in held:
                return None  # applied before: harmless
            return (
                f"{address} holds {res.remote_id}; remove the Import document, or forget that "
                f"record first with 'reconciler state rm {address}'"
            )
        for other in self.after.resources.values():
            earlier = {str(h.get("remote_id")) for h in other.history}
            if other.remote_id == remote_id or remote_id in earlier:
                how = "is managed as" if other.remote_id == remote_id else "was held by"
                return f"the remote object {how} {other.address}; a remote object has one address"
        if address.kind is ResourceType.JOB:
            return self._job(declared)
        remote = self.observed.files.get(remote_id)
        if remote is None:
            return "the remote has no such file; check the id and the Provider"
        part = self.desired.files[address]
        same = file_matches(part, remote, self.observed.content)
        if same is None:
            return (
                f"its content cannot be compared with the prepared part's: {_UNREADABLE} "
                f"({part.filename}, {part.bytes} bytes)"
            )
        if same is False:
            return (
                f"its content is not the prepared part's ({part.bytes} bytes, sha256 "
                f"{part.sha256[:12]}…; the remote file has {remote.get('bytes')} bytes, another "
                "content)"
            )
        self.after.resources[address] = file_record(
            part, remote_id, str(remote.get("filename") or ""), imported=True
        )
        self.imported[address] = remote_id
        return None

    def _job(self, declared: DeclaredImport) -> str | None:
        desired, observed, after = self.desired, self.observed, self.after
        job = desired.jobs[declared.address]
        remote_job = observed.jobs.get(declared.remote_id)
        if remote_job is None:
            return "the remote has no such job; check the id and the Provider"
        recorded = recorded_files(desired.files, after.resources)
        file_ids = job_files(
            job, remote_job, desired.files, observed.files, observed.content, recorded
        )
        if not made_from_spec_files(job, file_ids):
            unread = [
                f
                for f in job_file_ids(remote_job)
                if f in observed.files
                and f not in observed.content
                and any(needs_hash(desired.files[d], observed.files[f]) for d in job.depends_on)
            ]
            if unread:
                return (
                    f"the content of the file(s) it uses ({', '.join(unread)}) cannot be "
                    f"compared with the spec's datasets: {_UNREADABLE}"
                )
            return (
                "the job's files are not the spec's datasets (no file it uses holds the "
                "prepared content of " + ", ".join(job.depends_on) + ")"
            )
        diff = job_differences(job, remote_job, file_ids)
        if diff:
            return (
                "the job's request differs from the spec in: "
                + ", ".join(diff)
                + "; change the spec to match it, or remove the Import"
            )
        after.resources[job.address] = job_record(job, remote_job, imported=True)
        self.imported[job.address] = declared.remote_id
        for dep, file_id in file_ids.items():
            remote = observed.files.get(file_id)
            if dep not in after.resources and remote is not None:
                after.resources[dep] = file_record(
                    desired.files[dep], file_id, str(remote.get("filename") or ""), imported=True
                )
                self.imported[dep] = file_id
        return None
