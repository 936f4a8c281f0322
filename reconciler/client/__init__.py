"""The API client: typed, retrying, rate-limited access to Mistral's API and the sandbox.

``MistralClient`` (in :mod:`reconciler.client.api`) is the one entry point; the response models
are in :mod:`reconciler.client.types`. Planner and executor code against these names only.
"""

from reconciler.client.api import DEFAULT_BASE_URL, MistralClient
from reconciler.client.limits import RateLimiter, RequestStats
from reconciler.client.types import JobEstimate, JobStatus, RemoteFile, RemoteJob, RemoteModel

__all__ = [
    "DEFAULT_BASE_URL",
    "JobEstimate",
    "JobStatus",
    "MistralClient",
    "RateLimiter",
    "RemoteFile",
    "RemoteJob",
    "RemoteModel",
    "RequestStats",
]
