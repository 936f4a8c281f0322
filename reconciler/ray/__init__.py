"""Ray as a place to train: a Jobs API client and the content-addressed dataset upload.

:class:`RayJobsClient` (in :mod:`reconciler.ray.jobs`) submits, lists, reads, follows and
stops Ray jobs over HTTP; :func:`job_status` maps Ray's job statuses onto reconciler's.
:func:`upload_dataset` stores a prepared file in the shared storage under its content hash
(:mod:`reconciler.train.storage`), where the trainer reads it. Nothing here imports ``ray``.
"""

from reconciler.ray.jobs import (
    RAY_TERMINAL_STATUSES,
    RAY_TO_JOB_STATUS,
    RayJob,
    RayJobsClient,
    job_status,
)
from reconciler.train.storage import StoredDataset, dataset_uri, upload_dataset

__all__ = [
    "RAY_TERMINAL_STATUSES",
    "RAY_TO_JOB_STATUS",
    "RayJob",
    "RayJobsClient",
    "StoredDataset",
    "dataset_uri",
    "job_status",
    "upload_dataset",
]
