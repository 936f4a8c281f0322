"""Training data: streaming validation, preparation (conversion, split, skip) and hashing.

``validator`` and ``rules`` depend only on the standard library, orjson and
:mod:`reconciler.errors`, so the sandbox server can validate uploads with exactly the rules
``reconciler validate`` uses. ``prepare`` and ``api`` work on loaded specs.
"""
