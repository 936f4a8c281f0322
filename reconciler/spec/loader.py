"""The spec loader: PATHs → checked, resolved :class:`~reconciler.spec.resolved.SpecSet`.

Steps, each collecting :class:`~reconciler.errors.Problem` values instead of stopping at the
first one, so a run reports everything at once:

1. find spec files (files and directories, recursive, stable order, hidden entries skipped;
   symbolic links to directories are never followed and only regular files are read, each
   entry skipped for this reported as a warning; ``reconciler.yaml`` root markers are
   checked, never read as specs; a directory below a PATH that holds its own root marker is
   a workspace of its own, skipped with a warning — it is loaded when named itself) and the
   workspace root (:mod:`reconciler.spec.root`);
2. read each file as YAML with positions (:mod:`reconciler.spec.yamlpos`);
3. validate each document against its ``kind``'s model, translating pydantic's errors into
   problems with the exact field location, a stable code and "did you mean" hints;
4. resolve references and expand matrices (:mod:`reconciler.spec.resolve`).

Public entry points: :func:`load_specs` (raises :class:`~reconciler.errors.SpecError`) and
:func:`check_specs` (returns the problems).
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import functools
import os
import stat
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from reconciler.errors import Location, Problem, Severity, SpecError
from reconciler.files import NotRegularFile, kind_of, open_regular
from reconciler.spec.models import API_VERSION, KINDS, SecretRef
from reconciler.spec.resolve import did_you_mean, resolve_documents
from reconciler.spec.resolved import LoadedDocument, SpecSet
from reconciler.spec.root import MARKER_FILE, FoundBy, check_marker, discover_root
from reconciler.spec.yamlpos import FieldPath, YamlDocument, decode_text, load_yaml_text

SPEC_SUFFIXES = (".yaml", ".yml")
"""File name endings that are read as specs when a directory is loaded."""

# Spec files are small; a huge .yaml file is most likely data put in the wrong place.
MAX_SPEC_BYTES = 10 * 1024 * 1024

OWN_WORKSPACE = "own-workspace-skipped"
"""Code of the warning for a directory skipped because it holds its own root marker."""


def load_specs(paths: Sequence[Path | str] = ()) -> SpecSet:
    """Load, validate and resolve the specs under ``paths`` (default: the current directory).

    Raises:
        SpecError: with every problem of the run (errors and warnings), when any is an error.
    """
    specs, problems = check_specs(paths)
    if specs is None or any(p.severity is Severity.ERROR for p in problems):
        raise SpecError(problems, summary=_summary(problems))
    return specs


def check_specs(paths: Sequence[Path | str] = ()) -> tuple[SpecSet | None, list[Problem]]:
    """Like :func:`load_specs` but returns ``(specs or None, problems)`` instead of raising.

    ``specs`` is None when any problem is an error; problems are in file order.
    """
    targets = [Path(p) for p in paths] or [Path(".")]
    problems: list[Problem] = []
    files, markers = _collect_files(targets, problems)
    discovery = discover_root(targets, [f.path for f in files])
    root_marker = discovery.root / MARKER_FILE
    seen = {os.path.realpath(m) for m in markers}
    if discovery.found_by is FoundBy.MARKER and str(root_marker) not in seen:
        markers[root_marker] = os.path.relpath(root_marker)
    for marker, display in markers.items():
        problems.extend(check_marker(marker, display))
    loaded: list[LoadedDocument[Any]] = []
    for spec_file in files:
        loaded.extend(_load_file(spec_file, problems))
    specs, resolve_problems = resolve_documents(
        loaded, root=discovery.root, files=tuple(f.path for f in files)
    )
    problems.extend(resolve_problems)
    # One list in file/line order reads best; Location sorts by (file, line, column).
    problems.sort(key=lambda p: (p.location or Location(""), p.code))
    if specs is None or any(p.severity is Severity.ERROR for p in problems):
        return None, problems
    warnings = tuple(p for p in problems if p.severity is Severity.WARNING)
    return dataclasses.replace(specs, discovery=discovery, warnings=warnings), problems


def _summary(problems: Sequence[Problem]) -> str:
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    files = {p.location.file for p in problems if p.location and p.severity is Severity.ERROR}
    return f"the specs are invalid: {errors} problem(s) in {len(files)} file(s)"


# --------------------------------------------------------------------------- finding files


@dataclass(frozen=True)
class SpecFile:
    """A spec file to read.

    Attributes:
        path: the path to open.
        display: the path as shown in messages (relative when the user named a relative PATH).
    """

    path: Path
    display: str


def _collect_files(
    targets: Sequence[Path], problems: list[Problem]
) -> tuple[list[SpecFile], dict[Path, str]]:
    """The spec files under ``targets``, and the root marker files met (path → display).

    A PATH named on the command line is followed even when it is a symbolic link (the
    operator chose it), but must be a directory or a regular file.
    """
    files: list[SpecFile] = []
    markers: dict[Path, str] = {}
    seen: set[str] = set()  # real paths, so a file reached twice (via a symlink) loads once
    for target in targets:
        try:
            info = target.stat()
        except OSError as exc:
            problems.append(_path_problem(target, exc))
            continue
        if stat.S_ISDIR(info.st_mode):
            found = _walk(target, problems)
            below = [p for p in problems if p.location and p.location.file.startswith(str(target))]
            if not found and not any(p.severity is Severity.ERROR for p in below):
                own = [str(p.location) for p in below if p.code == OWN_WORKSPACE]
                problems.append(
                    Problem(
                        "no-specs",
                        "directory holds no spec files (*.yaml, *.yml)"
                        + (" outside the workspaces of their own below it" if own else ""),
                        Location(str(target)),
                        hint=f"name one of them instead: {', '.join(own)}"
                        if own
                        else "point at the directory that holds your specs, or add one",
                    )
                )
        elif stat.S_ISREG(info.st_mode):
            found = [target]
        else:
            problems.append(
                Problem(
                    "not-a-spec-path",
                    f"not a directory of specs or a spec file: it is {kind_of(info.st_mode)}",
                    Location(str(target)),
                    hint="name a directory that holds *.yaml spec files, or a spec file",
                )
            )
            continue
        for path in found:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            if path.name == MARKER_FILE:
                markers[path] = str(path)
            else:
                files.append(SpecFile(path, str(path)))
    return files, markers


def _walk(top: Path, problems: list[Problem]) -> list[Path]:
    """Spec files below ``top`` in sorted order.

    Only real directories are descended into and only regular files are read: a symbolic
    link to a directory is never followed (a link to ``/`` would make the walk endless), a
    FIFO or device is never opened (it could block forever), and a link to a file is read
    only when the file is inside ``top``. A directory below ``top`` that holds its own root
    marker (``reconciler.yaml``) is a workspace of its own, with its own Provider and state:
    it is not descended into (its documents would join this workspace's). Each entry skipped
    for these reasons is reported as a warning, once.
    """
    found: list[Path] = []
    top_real = os.path.realpath(top)

    def visit(directory: Path) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            problems.append(_path_problem(directory, exc))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .git, .reconciler, editor files: never specs
            path = directory / entry.name
            spec_name = entry.name.endswith(SPEC_SUFFIXES)
            try:
                if entry.is_symlink():
                    kept = _followed_link(path, spec_name, top_real, problems)
                    if kept:
                        found.append(path)
                elif entry.is_dir(follow_symlinks=False):
                    if os.path.lexists(path / MARKER_FILE):
                        problems.append(
                            Problem(
                                OWN_WORKSPACE,
                                "a workspace of its own; apply it on its own",
                                Location(str(path)),
                                hint=f"it holds {MARKER_FILE}: name it as a PATH of its own, "
                                f"e.g. 'reconciler apply {path}'",
                                severity=Severity.WARNING,
                            )
                        )
                    else:
                        visit(path)
                elif spec_name:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISREG(mode):
                        found.append(path)
                    else:
                        problems.append(_skipped(path, f"it is {kind_of(mode)}"))
            except OSError as exc:
                if spec_name:
                    problems.append(_path_problem(path, exc))

    visit(top)
    return found


def _followed_link(path: Path, spec_name: bool, top_real: str, problems: list[Problem]) -> bool:
    """Whether a symbolic link met in a walk is read as a spec file (warnings for the rest).

    Raises:
        OSError: a link named like a spec file leads nowhere (or loops).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        if spec_name:
            raise
        return False  # a broken link that is no spec: not ours to judge
    if stat.S_ISDIR(mode):
        problems.append(
            Problem(
                "symlink-not-followed",
                "symbolic link to a directory: skipped, links to directories are never followed",
                Location(str(path)),
                hint="name the linked directory as a PATH of its own if its specs belong here",
                severity=Severity.WARNING,
            )
        )
        return False
    if not spec_name:
        return False
    if not stat.S_ISREG(mode):
        problems.append(_skipped(path, f"the link leads to {kind_of(mode)}"))
        return False
    real = os.path.realpath(path)
    if os.path.commonpath([real, top_real]) != top_real:
        problems.append(
            _skipped(path, f"the link leads out of {top_real}", hint="copy the file here instead")
        )
        return False
    return True


def _skipped(path: Path, why: str, *, hint: str | None = None) -> Problem:
    """The warning for a spec-named entry that is not read."""
    return Problem(
        "not-a-regular-file",
        f"skipped: {why}; only regular files are read as specs",
        Location(str(path)),
        hint=hint or "remove it, or replace it with a regular file",
        severity=Severity.WARNING,
    )


# (errno values, code, message, hint) of the ways a PATH cannot be read.
_PATH_ERRORS = (
    (
        (errno.ELOOP,),
        "symlink-loop",
        "symbolic link loop: the path resolves to itself",
        "remove the looping link or point it at a real file",
    ),
    (
        (errno.ENOENT, errno.ENOTDIR),
        "path-not-found",
        "path does not exist",
        "check the spelling; PATH is relative to the current directory",
    ),
    (
        (errno.EACCES, errno.EPERM),
        "unreadable-file",
        "permission denied",
        "make it readable (chmod) or leave it out of PATH",
    ),
)


def _path_problem(path: Path, exc: OSError) -> Problem:
    where = Location(str(path))
    for numbers, code, message, hint in _PATH_ERRORS:
        if exc.errno in numbers:
            return Problem(code, message, where, hint=hint)
    return Problem("unreadable-file", f"cannot read: {exc.strerror or exc}", where)


# --------------------------------------------------------------------------- documents


def _load_file(spec_file: SpecFile, problems: list[Problem]) -> list[LoadedDocument[Any]]:
    display = spec_file.display
    try:
        # Regular files only, opened without blocking: the entry may have been swapped for a
        # FIFO since the directory was read.
        with open_regular(spec_file.path) as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except NotRegularFile as exc:
        problems.append(
            Problem(
                "not-a-regular-file",
                f"not read: it is {exc.kind}; only regular files are read as specs",
                Location(display),
            )
        )
        return []
    except OSError as exc:
        problems.append(_path_problem(spec_file.path, exc))
        return []
    if len(raw) > MAX_SPEC_BYTES:
        problems.append(
            Problem(
                "file-too-large",
                f"spec file is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB",
                Location(display),
                hint="specs name data files with 'path:'; do not put data in a .yaml file",
            )
        )
        return []
    text, problem = decode_text(raw, display)
    if problem is not None or text is None:
        problems.append(problem or Problem("invalid-encoding", "unreadable", Location(display)))
        return []
    docs, yaml_problems = load_yaml_text(text, display)
    problems.extend(yaml_problems)
    base_dir = spec_file.path.parent.resolve()
    loaded = []
    for ydoc in docs:
        doc = validate_document(ydoc, base_dir, problems)
        if doc is not None:
            loaded.append(doc)
    return loaded


def _subject(data: Mapping[Any, Any]) -> str:
    kind = data.get("kind")
    name = data.get("name")
    kind_text = kind if isinstance(kind, str) and kind else "?"
    name_text = str(name) if isinstance(name, str | int | float) and name != "" else "?"
    return f"{kind_text}/{name_text}"


def validate_document(
    ydoc: YamlDocument, base_dir: Path, problems: list[Problem]
) -> LoadedDocument[Any] | None:
    """Validate one YAML document against the model of its ``kind``.

    Appends every problem found to ``problems``; returns the loaded document when valid.
    """
    data = ydoc.data
    if not isinstance(data, dict):
        problems.append(
            Problem(
                "not-a-mapping",
                f"a spec document must be a mapping with 'kind' and 'name', not {_type_name(data)}",
                ydoc.location,
                hint="start the document with 'kind: ...' and 'name: ...'",
            )
        )
        return None
    subject = _subject(data)
    model = _model_of(data.get("kind"), ydoc, subject)
    if isinstance(model, Problem):
        problems.append(model)
        return None
    secret_paths = _secret_paths(model)
    literal_secret_paths = _literal_secrets(ydoc, secret_paths, subject, problems)
    try:
        doc = model.model_validate(data)
    except PydanticValidationError as exc:
        before = len(problems)
        problems.extend(
            translate_errors(
                exc.errors(),
                data=data,
                model=model,
                ydoc=ydoc,
                subject=subject,
                skip=literal_secret_paths,
                secret_paths=secret_paths,
            )
        )
        if len(problems) == before and not literal_secret_paths:  # pragma: no cover - safety
            problems.append(
                Problem("invalid-value", str(exc).splitlines()[0], ydoc.location, subject=subject)
            )
        return None
    if literal_secret_paths:
        return None
    return LoadedDocument(
        doc=doc,
        location=ydoc.location,
        base_dir=base_dir,
        field_locations=_field_locations(ydoc),
    )


def _model_of(kind: Any, ydoc: YamlDocument, subject: str) -> type[BaseModel] | Problem:
    """The model of a document's ``kind``, or the problem that it names none."""
    if kind is None:
        return Problem(
            "missing-field",
            "document has no 'kind'",
            ydoc.location,
            subject=subject,
            hint=f"add 'kind:' with one of: {', '.join(KINDS)}",
        )
    where = ydoc.value_locations.get(("kind",), ydoc.location)
    known = f"kinds are: {', '.join(KINDS)}"
    if not isinstance(kind, str):
        message = f"'kind' must be a string, not {_type_name(kind)}"
        return Problem("unknown-kind", message, where, subject=subject, hint=known)
    if kind not in KINDS:
        hint = did_you_mean(kind, KINDS, known)
        return Problem("unknown-kind", f"unknown kind '{kind}'", where, subject=subject, hint=hint)
    return KINDS[kind]


def _field_locations(ydoc: YamlDocument) -> dict[FieldPath, Location]:
    """Where to point for each field: at a scalar value itself (``hyperparameters: shrot``
    points at ``shrot``), at the key of a block mapping or list (its value starts a line below).
    """
    result: dict[FieldPath, Location] = {}
    for path, key_loc in ydoc.key_locations.items():
        value = _value_at(ydoc.data, path)
        value_loc = ydoc.value_locations.get(path)
        scalar = not isinstance(value, dict | list)
        result[path] = value_loc if scalar and value_loc is not None else key_loc
    return result


@functools.cache
def _secret_paths(model: type[BaseModel], prefix: FieldPath = ()) -> list[FieldPath]:
    """Field paths (by YAML spelling) whose type is a :class:`SecretRef`."""
    paths: list[FieldPath] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        for sub in _models_in(info.annotation):
            if sub is SecretRef:
                paths.append((*prefix, key))
            elif not _is_list_of_models(info.annotation):
                paths.extend(_secret_paths(sub, (*prefix, key)))
    return paths


def _is_list_of_models(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, dict) or any(
        typing.get_origin(a) in (list, dict) for a in typing.get_args(annotation)
    )


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models named anywhere inside a type annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _literal_secrets(
    ydoc: YamlDocument, secret_paths: Iterable[FieldPath], subject: str, problems: list[Problem]
) -> list[FieldPath]:
    """Report secret fields written as literals; the value is never repeated in the message."""
    found = []
    for path in secret_paths:
        value: Any = ydoc.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or isinstance(value, dict):
            continue
        found.append(path)
        dotted = ".".join(str(k) for k in path)
        problems.append(
            Problem(
                "literal-secret",
                f"'{dotted}' must be a secret reference, not a literal value "
                "(the value is not shown)",
                ydoc.value_locations.get(path, ydoc.location),
                subject=subject,
                hint=f"write '{path[-1]}: {{env: NAME}}' and export NAME, or "
                f"'{path[-1]}: {{file: PATH}}'; remove the secret from the file "
                "and rotate it if it was committed",
            )
        )
    return found


# --------------------------------------------------------------------------- pydantic errors

_TYPE_CODES = {
    "missing": "missing-field",
    "extra_forbidden": "unknown-field",
    "greater_than": "out-of-range",
    "greater_than_equal": "out-of-range",
    "less_than": "out-of-range",
    "less_than_equal": "out-of-range",
    "too_short": "out-of-range",
    "too_long": "out-of-range",
    "string_too_short": "out-of-range",
    "string_too_long": "out-of-range",
    "finite_number": "out-of-range",
    "literal_error": "invalid-value",
    "string_pattern_mismatch": "invalid-value",
    "value_error": "invalid-value",
    "assertion_error": "invalid-value",
    "enum": "invalid-value",
}

_SCALAR_TAGS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}


def _code(error_type: str) -> str:
    return _TYPE_CODES.get(error_type, "wrong-type")


@dataclass
class _Err:
    """A pydantic error with its location split into data path and union branch tags."""

    raw: Mapping[str, Any]
    path: FieldPath  # keys/indexes present in the data
    union_at: FieldPath | None  # data path where the first union branch tag appeared
    tag: str | None  # that branch's tag, e.g. 'str' or 'TrainingFileRef'


def _split_loc(raw: Mapping[str, Any], data: Any) -> _Err:
    loc = tuple(raw["loc"])
    path: list[str | int] = []
    union_at: FieldPath | None = None
    tag: str | None = None
    current: Any = data
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict) and elem in current:
            path.append(elem)
            current = current[elem]
        elif isinstance(current, list) and isinstance(elem, int) and 0 <= elem < len(current):
            path.append(elem)
            current = current[elem]
        elif last and raw["type"] == "missing":
            path.append(elem)
        elif isinstance(elem, str):
            # A union branch tag such as 'str' or 'TrainingFileRef': not part of the data.
            if union_at is None:
                union_at, tag = tuple(path), elem
        else:
            path.append(elem)
            current = None
    return _Err(raw, tuple(path), union_at, tag)


def _value_at(data: Any, path: FieldPath) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def translate_errors(
    errors: Sequence[Mapping[str, Any]],
    *,
    data: Any,
    model: type[BaseModel],
    ydoc: YamlDocument,
    subject: str,
    skip: Sequence[FieldPath] = (),
    secret_paths: Sequence[FieldPath] = (),
    prefix: FieldPath = (),
) -> list[Problem]:
    """Translate pydantic errors of ``model`` validating ``data`` into located problems.

    ``prefix`` is prepended to every path when ``data`` is a part of the YAML document (used for
    matrix values); ``skip`` drops errors under paths already reported (literal secrets).
    """
    split = [_split_loc(e, data) for e in errors]
    split = [e for e in split if not any(e.path[: len(s)] == s for s in skip)]
    problems: list[Problem] = []
    # Errors from different branches of a union (``str | TrainingFileRef``) at the same place:
    # keep the branch that matches what was written, or say "expected X or Y" once.
    unions: dict[FieldPath, list[_Err]] = {}
    for err in split:
        if err.union_at is None:
            problems.append(_problem(err, model, ydoc, subject, secret_paths, prefix))
        else:
            unions.setdefault(err.union_at, []).append(err)
    for at, group in unions.items():
        written = _value_at(data, at)
        structured = isinstance(written, dict | list)
        matching = [e for e in group if (e.tag not in _SCALAR_TAGS) == structured]
        # A branch error *at* the union point that is only a type mismatch is noise when
        # another branch accepted the shape; deeper errors are the real ones.
        deep = [e for e in matching if e.path != at or _code(e.raw["type"]) != "wrong-type"]
        if deep:
            problems.extend(_problem(e, model, ydoc, subject, secret_paths, prefix) for e in deep)
            continue
        expected = sorted({_SCALAR_TAGS.get(e.tag or "", "a mapping") for e in group})
        full = (*prefix, *at)
        problems.append(
            Problem(
                "wrong-type",
                f"'{_dotted(full)}' should be {' or '.join(expected)}, not {_type_name(written)}",
                ydoc.value_locations.get(full) or _nearest(ydoc, full),
                subject=subject,
            )
        )
    return sorted(problems, key=lambda p: (p.location or Location(""), p.message))


def _problem(
    err: _Err,
    model: type[BaseModel],
    ydoc: YamlDocument,
    subject: str,
    secret_paths: Sequence[FieldPath],
    prefix: FieldPath,
) -> Problem:
    raw = err.raw
    etype = raw["type"]
    code = _code(etype)
    path = (*prefix, *err.path)
    msg = str(raw["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    hint: str | None = None
    if code == "unknown-field":
        where = ydoc.key_locations.get(path) or _nearest(ydoc, path)
        field_name = str(path[-1]) if path else "?"
        parent = _model_at(model, err.path[:-1])
        known = _field_names(parent) if parent else []
        message = f"unknown field '{field_name}'"
        if parent is not None and parent is not model:
            message += f" in '{_dotted(path[:-1])}'"
        hint = did_you_mean(field_name, known, f"allowed: {', '.join(known)}" if known else None)
        return Problem(code, message, where, subject=subject, hint=hint)
    if code == "missing-field":
        parent_path = path[:-1]
        where = (
            ydoc.key_locations.get(parent_path) or _nearest(ydoc, parent_path)
            if parent_path
            else ydoc.location
        )
        inside = f" in '{_dotted(parent_path)}'" if parent_path else ""
        return Problem(
            code,
            f"missing required field '{path[-1]}'{inside}",
            where,
            subject=subject,
            hint=f"add '{path[-1]}:'",
        )
    where = ydoc.value_locations.get(path) or _nearest(ydoc, path)
    secret = any(path[: len(s)] == s for s in secret_paths)
    written = raw.get("input")
    shown = "" if secret or isinstance(written, dict | list) else f" (got {_short(written)})"
    if isinstance(written, datetime.date) and code == "wrong-type":
        hint = "YAML reads an unquoted date as a date; quote it to make it a string"
    if path == ("apiVersion",) and etype == "literal_error":
        return Problem(
            "unknown-api-version",
            f"unknown apiVersion{shown}",
            where,
            subject=subject,
            hint=f"use 'apiVersion: {API_VERSION}' or leave it out",
        )
    if etype == "string_pattern_mismatch" and path and path[-1] == "name":
        msg = "not a valid name: use lower-case letters, digits and '-', no leading or trailing '-'"
    if not path:
        return Problem(code, msg, ydoc.location, subject=subject)
    return Problem(code, f"'{_dotted(path)}': {msg}{shown}", where, subject=subject, hint=hint)


def _nearest(ydoc: YamlDocument, path: FieldPath) -> Location:
    for end in range(len(path), 0, -1):
        loc = ydoc.value_locations.get(path[:end]) or ydoc.key_locations.get(path[:end])
        if loc is not None:
            return loc
    return ydoc.location


def _model_at(model: type[BaseModel], path: FieldPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (list indexes are skipped)."""
    current: type[BaseModel] | None = model
    for key in path:
        if isinstance(key, int) or current is None:
            continue
        info = _field_info(current, key)
        if info is None:
            return None
        candidates = _models_in(info.annotation)
        current = candidates[0] if candidates else None
    return current


def _field_info(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _dotted(path: FieldPath) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _short(value: Any) -> str:
    text = f"'{value.isoformat()}'" if isinstance(value, datetime.date) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# How messages name a YAML value's type; bool before int (a bool is an int in Python).
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a mapping"),
)


def _type_name(value: Any) -> str:
    if value is None:
        return "empty (null)"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__
