"""``Import`` and ``Moved`` documents: checked against the addresses the specs declare.

What one document cannot check alone, and ``validate`` reports without any network access:

* the address an Import or a Moved goes ``to`` is declared by the specs (a job, a matrix
  cell's job, or a dataset part);
* the address a Moved comes ``from`` is no longer declared (else it is not a rename), and is
  of the same type as its ``to``;
* no two documents adopt into one address, no two Moved documents take one ``from``, and no
  two Import documents adopt one remote object (a remote object has one address).

Whether the remote object matches, and what the state records, is the planner's to decide.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

from reconciler.address import Address
from reconciler.errors import Problem
from reconciler.spec.models import Import, Moved
from reconciler.spec.resolved import DeclaredImport, DeclaredMove, LoadedDocument

Adopting = LoadedDocument[Import] | LoadedDocument[Moved]
"""An Import or a Moved document."""


def check_adoption(
    imports: Sequence[LoadedDocument[Import]],
    moves: Sequence[LoadedDocument[Moved]],
    declared: Collection[str],
) -> tuple[tuple[DeclaredImport, ...], tuple[DeclaredMove, ...], list[Problem]]:
    """The checked Import and Moved documents, and every problem found (see the module doc).

    Args:
        imports, moves: the documents, in load order.
        declared: every address the specs declare (jobs and dataset parts).
    """
    problems: list[Problem] = []
    known = sorted(declared)
    # First document that claims each `to` address / remote id / `from` address.
    targets: dict[str, Adopting] = {}
    remote_ids: dict[str, Adopting] = {}
    sources: dict[str, Adopting] = {}

    def undeclared(doc: Adopting, to: str) -> bool:
        if to in declared:
            return False
        problems.append(
            Problem(
                "unknown-reference",
                f"'to' names {to}, which the specs do not declare",
                doc.locate("to"),
                subject=doc.subject,
                hint=_closest(to, known),
            )
        )
        return True

    def first_claim(
        claimed: dict[str, Adopting],
        value: str,
        doc: Adopting,
        field: str,
        taken: str,
        why: str,
        hint: str,
    ) -> bool:
        """Whether ``doc`` is the first to claim ``value`` (its ``field``). If not, a problem
        names the first claimant (``taken`` leads up to it) and says why one may (``why``)."""
        first = claimed.setdefault(value, doc)
        if first is doc:
            return True
        problems.append(
            Problem(
                "conflicting-adoption",
                f"{taken} {first.subject} at {first.location}: {why}",
                doc.locate(field),
                subject=doc.subject,
                hint=hint,
            )
        )
        return False

    def claim(doc: Adopting, to: str) -> bool:
        return first_claim(
            targets,
            to,
            doc,
            "to",
            f"{to} is also the 'to' of",
            "one address takes one remote object",
            "keep one of the two documents",
        )

    checked_imports: list[DeclaredImport] = []
    for loaded in imports:
        doc = loaded.doc
        ok = not undeclared(loaded, doc.to) and claim(loaded, doc.to)
        ok &= first_claim(
            remote_ids,
            doc.id,
            loaded,
            "id",
            f"remote object {doc.id} is also imported by",
            "a remote object has one address",
            "keep one of the two Import documents",
        )
        if ok:
            checked_imports.append(
                DeclaredImport(
                    address=Address(doc.to),
                    remote_id=doc.id,
                    location=loaded.location,
                    name=doc.name,
                )
            )

    checked_moves: list[DeclaredMove] = []
    for moved in moves:
        source, target = Address(moved.doc.from_), Address(moved.doc.to)
        ok = not undeclared(moved, target)
        if source == target:
            ok = False
            problems.append(
                Problem(
                    "invalid-value",
                    f"'from' and 'to' are both {target}: a move renames an address",
                    moved.locate("to"),
                    subject=moved.subject,
                    hint="set 'from' to the address the state records now",
                )
            )
        elif source.kind is not target.kind:
            ok = False
            problems.append(
                Problem(
                    "invalid-value",
                    f"'from' {source} is a {source.kind} address and 'to' {target} a "
                    f"{target.kind} address: a move keeps the type",
                    moved.locate("to"),
                    subject=moved.subject,
                )
            )
        elif source in declared:
            ok = False
            problems.append(
                Problem(
                    "invalid-value",
                    f"'from' names {source}, which the specs still declare: a move renames an "
                    "address the specs no longer name",
                    moved.locate("from"),
                    subject=moved.subject,
                    hint=f"rename or remove the document that declares {source}, or remove "
                    "this Moved",
                )
            )
        ok &= first_claim(
            sources,
            source,
            moved,
            "from",
            f"{source} is also the 'from' of",
            "one record moves to one address",
            "keep one of the two Moved documents",
        )
        if ok and claim(moved, target):
            checked_moves.append(
                DeclaredMove(
                    source=source, address=target, location=moved.location, name=moved.doc.name
                )
            )
    return tuple(checked_imports), tuple(checked_moves), problems


def _closest(address: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(address, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "declare it first (a FineTuningJob, or a Dataset for dataset.NAME[PART])"
