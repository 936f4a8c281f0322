"""Upload validation: what the sandbox learns from an uploaded training file.

One function, :func:`check_upload`, runs the shared training-data rules
(:mod:`reconciler.data.validator`, the same library ``reconciler validate`` uses) over a file
already written to disk and reduces the report to what the API needs: the detected
``sample_type``, ``num_lines``, how many samples are invalid, an approximate token count,
and the first problems (line + rule) for a precise error message.

In the OpenAI dialect, chat files are held to OpenAI's chat rules (``ChatRules.openai``: an
assistant ``weight``, ``call_...`` tool-call ids) and a file whose first sample has the DPO
preference keys (``input``/``preferred_output``/``non_preferred_output``, the ``dpo``
method's data) to the preference rules.

This module is the sandbox's only dependency on the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from reconciler.data.dialect import ChatRules
from reconciler.data.lines import LineReader
from reconciler.data.validator import validate_path

#: How many problems an error message quotes; the rest are counted.
MAX_QUOTED_PROBLEMS = 5


@dataclass(frozen=True)
class UploadProblem:
    """One rule violation in an uploaded file.

    Attributes:
        line: 1-based line number (0 when it concerns the whole file).
        code: the rule's stable code (e.g. ``json``, ``M3``).
        message: what is wrong, one line.
    """

    line: int
    code: str
    message: str

    def render(self) -> str:
        """``line 3: <message> [code]``."""
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message} [{self.code}]"


@dataclass
class UploadCheck:
    """The verdict on an uploaded file.

    Attributes:
        sample_type: ``instruct`` or ``pretrain`` when detected, else ``None``.
        num_lines: number of lines in the file.
        samples: number of samples (non-empty lines).
        invalid: number of samples that break a rule.
        approx_tokens: approximate token count of the valid samples (for cost estimates).
        problems: the problems found, in file order (possibly truncated by the checker).
    """

    sample_type: str | None
    num_lines: int
    samples: int
    invalid: int
    approx_tokens: int
    problems: list[UploadProblem] = field(default_factory=list)

    @property
    def invalid_fraction(self) -> float:
        """Share of invalid samples; 1.0 for a file without any sample."""
        return self.invalid / self.samples if self.samples else 1.0


def quote(problems: Sequence[UploadProblem]) -> str:
    """The first problems for an error message: ``line 3: ... [code]; ...; and 4 more``."""
    text = "; ".join(p.render() for p in problems[:MAX_QUOTED_PROBLEMS])
    more = len(problems) - MAX_QUOTED_PROBLEMS
    return text + (f"; and {more} more" if more > 0 else "")


def check_upload(
    path: Path, display_name: str | None = None, *, openai: bool = False
) -> UploadCheck:
    """Validate the training file at ``path`` with the shared rules (see module docstring).

    ``display_name`` (the uploaded filename) is how problems name the file. With ``openai``,
    OpenAI's chat rules apply, and a file whose first sample has the DPO preference keys is
    checked as a preference file (``sample_type`` ``preference``).
    """
    if openai:
        data_format = "preference" if _looks_like_preference(path) else "chat"
        report = validate_path(
            path,
            hash=False,
            display_name=display_name,
            data_format=data_format,
            chat_rules=ChatRules.openai,
        )
    else:
        report = validate_path(path, hash=False, display_name=display_name)
    problems = [
        UploadProblem(
            line=p.location.line if p.location else 0,
            code=str(p.code),
            message=str(p.message),
        )
        for p in report.problems
        if p.severity == "error"
    ]
    samples = int(report.samples)
    invalid = int(report.invalid)
    return UploadCheck(
        sample_type=report.sample_type,
        num_lines=int(report.num_lines),
        samples=samples,
        invalid=invalid,
        approx_tokens=int(report.approx_tokens or 0),
        problems=problems,
    )


#: Keys only a DPO preference sample has.
PREFERENCE_KEYS = frozenset({"preferred_output", "non_preferred_output"})


def _looks_like_preference(path: Path) -> bool:
    """Whether the first non-blank line of the file is a JSON object with preference keys."""
    with path.open("rb") as stream:
        for line, _, _ in LineReader(stream):
            if line is not None and not line.strip():
                continue
            try:
                first = orjson.loads(line) if line is not None else None
            except orjson.JSONDecodeError:
                return False
            return isinstance(first, dict) and not PREFERENCE_KEYS.isdisjoint(first)
    return False
