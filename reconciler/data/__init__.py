"""Training data: streaming validation, preparation (conversion, split, skip) and hashing.

The validator, in the order it uses them:

* :mod:`reconciler.files`: opening data files (regular files only: never a device, FIFO or
  socket);
* ``lines``: the one line splitter (chunked reading, hashing, flat memory);
* ``fastpath``: plain chat samples accepted in one cheap loop;
* ``syntax``: line-level rules (JSON syntax, UTF-8, NaN, nesting depth, duplicate keys);
* ``rules`` (with ``schema`` for M12): the per-sample chat rules of mistral-finetune and
  mistral-common, written against a chat dialect of ``dialect`` (Mistral's or OpenAI's);
* ``preference``: the rules of the preference (DPO) format;
* ``registry``: every rule's code, title and severity, declared beside its check;
* ``report``: the :class:`~reconciler.data.report.FileReport` it fills;
* ``validator``: the entry points (``validate_path``, ``validate_stream``, ...) and the
  line, sample and file bookkeeping.

These depend only on the standard library, orjson, :mod:`reconciler.files` and
:mod:`reconciler.errors`, so the
sandbox server can validate uploads with exactly the rules ``reconciler validate`` uses.
``prepare``, ``convert``, ``cache`` and ``api`` work on loaded specs.
"""
