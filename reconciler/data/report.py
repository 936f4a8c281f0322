"""The validation report of one JSONL file: :class:`FileReport`.

What the validator accumulates while it reads a file (counts, statistics, the first
problems) and what caches store: it converts to and from JSON-ready dicts and renders the
one-line summary ``reconciler validate`` prints.

Only the standard library and :mod:`reconciler.errors` are used: the sandbox server
imports the validator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from reconciler.errors import HasProblems, Problem

MAX_STORED_PROBLEMS = 1000
"""Problems kept per file; the rest are only counted, so memory stays flat."""


@dataclass
class FileReport(HasProblems):
    """What validating one file found.

    The fields are declared in the order :meth:`to_dict` writes them.

    Attributes:
        path: the file as the user named it (or a display name for streams).
        role: 'training' or 'validation' (what the file is used for).
        sha256: hex digest of the file's bytes ("" when hashing was off).
        bytes: size in bytes.
        num_lines: lines (a last line without newline counts).
        samples: non-blank lines.
        valid: samples without any error.
        invalid: samples with at least one error.
        sample_type: 'instruct', 'pretrain', or None when empty/undecidable.
        invalid_by_rule: error count per rule code (a sample counts once per code).
        roles: chat messages per role.
        approx_tokens: estimated tokens of the valid samples: their bytes / 4 (the JSON
            around the text stands in for the control tokens).
        exact_tokens: tokens by the Mistral v3 tokenizer (full sequence), when asked.
        problem_count: every problem found, stored or not.
        problems: the first :data:`MAX_STORED_PROBLEMS` errors and warnings.
    """

    path: str
    role: str = "training"
    sha256: str = ""
    bytes: int = 0
    num_lines: int = 0
    samples: int = 0
    valid: int = 0
    invalid: int = 0
    sample_type: str | None = None
    invalid_by_rule: dict[str, int] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    approx_tokens: int = 0
    exact_tokens: int | None = None
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file has no error at all (warnings allowed)."""
        return not self.invalid_by_rule

    def add(self, problem: Problem) -> None:
        """Record a problem: counted always, stored up to the cap."""
        self.problem_count += 1
        if len(self.problems) < MAX_STORED_PROBLEMS:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--format json``, caches): every field, in declaration order, with
        the counts by rule and by role sorted and the problems as dicts."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["invalid_by_rule"] = dict(sorted(self.invalid_by_rule.items()))
        data["roles"] = dict(sorted(self.roles.items()))
        data["problems"] = [p.to_dict() for p in self.problems]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileReport:
        """Inverse of :meth:`to_dict` (used by the hash/validation cache); every field must be
        there but ``role`` (older caches have none: ``training``)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name != "role"}
        values["invalid_by_rule"] = dict(values["invalid_by_rule"])
        values["roles"] = dict(values["roles"])
        values["problems"] = [Problem.from_dict(p) for p in values["problems"]]
        return cls(**values, role=data.get("role", "training"))

    def summary_line(self) -> str:
        """One human line, e.g. ``train.jsonl: 1,000 samples (instruct), 998 valid, ...``."""
        kind = f" ({self.sample_type})" if self.sample_type else ""
        text = f"{self.path}: {self.samples:,} samples{kind}, {self.valid:,} valid"
        if self.invalid:
            text += f", {self.invalid:,} invalid"
        if self.invalid_by_rule:
            by = ", ".join(f"{c}: {n:,}" for c, n in sorted(self.invalid_by_rule.items()))
            text += f" [{by}]"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        tokens = (
            f"{self.exact_tokens:,} tokens"
            if self.exact_tokens is not None
            else f"~{self.approx_tokens:,} tokens"
        )
        text += f", {tokens}, {human_bytes(self.bytes)}"
        if self.sha256:
            text += f", sha256 {self.sha256[:12]}"
        return text


def human_bytes(n: int) -> str:
    """A size for people: ``512 B``, ``1.5 kB``, ``12.3 MB``, ``1.20 GB`` (decimal units)."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{n / 1_000_000_000:.2f} GB"
