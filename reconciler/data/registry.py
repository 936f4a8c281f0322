"""The registry of validation rules: every code the data validator emits, with its title.

A rule is declared with :func:`rule` in the module that checks it, next to the check, and
the check reports through it (``issues.append(F4.issue(message, hint))``), so a code, its
title and its severity cannot drift apart from the code that emits them. Declaring a code
twice is an error at import time.

:mod:`reconciler.data.validator` imports every module that declares rules, so
:data:`RULES` is complete once the validator is imported.

Also here: :func:`short`, :func:`key_list` and :func:`type_name`, with which every check
quotes values.

Only the standard library and :mod:`reconciler.errors` are used: the sandbox server
imports the validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.errors import Severity

Issue = tuple[str, str, str | None]
"""One problem of a sample: (rule code, message, fix-it hint or None)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One validation rule.

    Attributes:
        code: the stable code in problems (``F4``, ``M12``, ``DUP_KEY``, ...).
        title: a short description for documentation and summaries.
        severity: what a violation is; file-size and sample-count rules only warn.
    """

    code: str
    title: str
    severity: Severity = Severity.ERROR

    def issue(self, message: str, hint: str | None = None) -> Issue:
        """A violation of this rule, as the checks collect them."""
        return (self.code, message, hint)


RULES: dict[str, Rule] = {}
"""Every declared rule by code, in declaration order."""


def rule(code: str, title: str, severity: Severity = Severity.ERROR) -> Rule:
    """Declare a rule and add it to :data:`RULES`.

    Raises:
        ValueError: ``code`` is already declared.
    """
    if code in RULES:
        raise ValueError(f"rule {code} is declared twice")
    declared = RULES[code] = Rule(code, title, severity)
    return declared


def short(value: Any, limit: int = 40) -> str:
    """A value as issues quote it, shortened so that a 10 MB field stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_list(obj: dict[str, Any]) -> str:
    """The first keys of an object, as issues list what a sample or message has instead."""
    return ", ".join(repr(k) for k in list(obj)[:10]) or "none"


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type (``object``, ``array``, ``string``, ...)."""
    if value is None:
        return "null"
    return _JSON_NAMES.get(type(value), type(value).__name__)


_JSON_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
