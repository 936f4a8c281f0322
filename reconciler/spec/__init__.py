"""The spec language v1: pydantic models (``models``), the YAML loader with positions
(``loader``), reference resolution and matrix expansion (``resolve``), and JSON Schema
generation (``schema``)."""
