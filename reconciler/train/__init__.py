"""The trainer: LoRA fine-tuning of a causal language model, run as a Ray job.

``python -m reconciler.train JOB`` reads a job description (:class:`~reconciler.train.job.
TrainJob`, a JSON file or storage URI), trains, and writes metrics, adapters and a result
under the job's ``output_uri`` (:class:`~reconciler.train.job.RunLayout`).

Modules: :mod:`~reconciler.train.job` (the contract: job, records, layout) and
:mod:`~reconciler.train.storage` (local paths and fsspec URIs, content-addressed datasets)
need only the base install; :mod:`~reconciler.train.render`, :mod:`~reconciler.train.data`
and :mod:`~reconciler.train.trainer` need the ``train`` extra (torch, transformers, peft).
"""
