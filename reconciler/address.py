"""Addresses of managed objects, shared by specs, state, plans and the command line.

An address names one remote object the tool manages, stably across runs:

* ``dataset.<name>[<part>]``: the uploaded file of one part (``all``, ``train`` or
  ``validation``) of a Dataset document;
* ``job.<name>``: a fine-tuning job (matrix cells have derived names, ``job.sweep-lr-1e-4``).

:class:`Address` is a ``str`` (so addresses stay plain dictionary keys and JSON strings) that
is only made from a well-formed text, and that knows its parts; nothing else in the package
builds or takes apart address strings by hand. This module depends on nothing else in the
package, so every layer can use it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

JOB_PREFIX = "job."
DATASET_PREFIX = "dataset."

_JOB = re.compile(r"job\.([^\s\[\]]+)")
_DATASET = re.compile(r"dataset\.([^\s\[\]]+)\[([^\s\[\]]+)\]")


class ResourceType(StrEnum):
    """The kind of remote object an address names."""

    FILE = "file"
    JOB = "job"


class Address(str):
    """A well-formed address (see the module docstring); compares and hashes as its text.

    ``Address("job.x")`` raises :class:`ValueError` for a malformed text; build new ones with
    :meth:`job` and :meth:`dataset`.
    """

    __slots__ = ()

    def __new__(cls, text: str) -> Address:
        if isinstance(text, Address):
            return text
        if not (_JOB.fullmatch(text) or _DATASET.fullmatch(text)):
            raise ValueError(
                f"{text!r} is not an address: expected job.NAME or dataset.NAME[PART] "
                "(PART: all, train or validation)"
            )
        return super().__new__(cls, text)

    @classmethod
    def job(cls, name: str) -> Address:
        """``job.<name>``."""
        return cls(f"{JOB_PREFIX}{name}")

    @classmethod
    def dataset(cls, name: str, part: str) -> Address:
        """``dataset.<name>[<part>]``."""
        return cls(f"{DATASET_PREFIX}{name}[{part}]")

    @classmethod
    def is_valid(cls, text: str) -> bool:
        """Whether ``text`` is a well-formed address."""
        return bool(_JOB.fullmatch(text) or _DATASET.fullmatch(text))

    @property
    def kind(self) -> ResourceType:
        """What the address names: an uploaded file or a job."""
        return ResourceType.JOB if self.startswith(JOB_PREFIX) else ResourceType.FILE

    @property
    def name(self) -> str:
        """The job's name, or the dataset's name (without the part)."""
        if self.kind is ResourceType.JOB:
            return self[len(JOB_PREFIX) :]
        return self[len(DATASET_PREFIX) : self.index("[")]

    @property
    def part(self) -> str | None:
        """The dataset part (``all``, ``train``, ``validation``); None for a job."""
        if self.kind is ResourceType.JOB:
            return None
        return self[self.index("[") + 1 : -1]

    @property
    def base(self) -> str:
        """The address without its part: ``dataset.<name>`` for a file, itself for a job."""
        return self if self.kind is ResourceType.JOB else self[: self.index("[")]

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    @classmethod
    def _validate(cls, value: Any) -> Address:
        if isinstance(value, Address):
            return value
        if isinstance(value, str):
            return cls(value)
        raise ValueError(f"an address is a string, not {type(value).__name__}")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Validated from (and serialized as) a plain string; an Address is taken as it is.
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.to_string_ser_schema()
        )
