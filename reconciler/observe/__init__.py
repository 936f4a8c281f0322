"""Observing fine-tuning jobs after apply: progress, watching, status tables, pictures, outputs.

Everything here consumes remote jobs as API-shaped dicts (the JSON of
``GET /v1/fine_tuning/jobs/{id}``), so it works the same for the Mistral API and the sandbox
and does not depend on how the client models them.
"""
