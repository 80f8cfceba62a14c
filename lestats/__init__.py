"""Le Stats Sportif: BRFSS statistics answered by an actor engine behind an asynchronous job API.

The supported public surface (stable API: changed only with a deprecation period) is what this
module exports and these modules:

- `lestats`: `Engine` (the embedding facade), `Job` (a handle on a job), the data
  (`load_dataset`, `load_demo_dataset`, `Dataset`, `Record`), `create_app` (the aiohttp
  application), the registry's main names (`Query`, `Registry`, `Statistic`, `Parameter`,
  `default_registry`), job ids and outcomes (`JobStatus`, `JobOutcome`, `format_job_id`,
  `parse_job_id`) and the error types.
- `lestats.messages`: the actors' messages, for message-level tests and embedders.
- `lestats.actors`: the actor classes (Dispatcher, Worker, ResultStore, JournalCommitter).
- `lestats.registry`: the statistics registry in full.
- `lestats.stores`: the store seam (`JobStore`) and its implementations.
- `lestats.testing`: the test kit (probe actor, gated runner, tiny datasets, pytest plugin).

Every other module is internal and may change in any release.
"""

import logging

from lestats import messages
from lestats.actors.engine import Engine
from lestats.actors.handles import Job
from lestats.actors.jobs import JobOutcome, JobStatus, format_job_id, parse_job_id
from lestats.data.dataset import Dataset, Record
from lestats.data.loader import load_dataset, load_demo_dataset
from lestats.data.query import Query
from lestats.data.registry import Parameter, Registry, Statistic
from lestats.data.statistics import default_registry
from lestats.errors import (
    DatasetError,
    InvalidQuery,
    JobFailed,
    LeStatsError,
    Overloaded,
    ShuttingDown,
    StorageError,
    UnknownJob,
)
from lestats.http.app import create_app

# A library logs, the application decides where to: without this, Python's last-resort handler
# would print every failed job's traceback on an embedder's stderr. The server's own handler
# (lestats.logs) writes them to its log file.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Dataset",
    "DatasetError",
    "Engine",
    "InvalidQuery",
    "Job",
    "JobFailed",
    "JobOutcome",
    "JobStatus",
    "LeStatsError",
    "Overloaded",
    "Parameter",
    "Query",
    "Record",
    "Registry",
    "ShuttingDown",
    "Statistic",
    "StorageError",
    "UnknownJob",
    "create_app",
    "default_registry",
    "format_job_id",
    "load_dataset",
    "load_demo_dataset",
    "messages",
    "parse_job_id",
]
