"""Le Stats Sportif: BRFSS statistics answered by an actor engine behind an asynchronous job API.

What a user may import from here; everything else is internal and may change:

- `Engine`: the embedding facade (start, submit, results, drain-and-stop; sync and async).
- `load_dataset`, `load_demo_dataset`, `Dataset`, `Record`: the data, from a file, from the
  built-in demo generator, or from rows in memory.
- `create_app`: the aiohttp application serving an Engine.
- `messages`: the actors' message types, for message-level tests and embedders.
- `Query`, `Registry`, `Statistic`, `Parameter`, `default_registry`: the statistics registry
  (more in `lestats.registry`), to add statistics and questions.
- `JobStatus`, `JobOutcome` and the error types.
"""

from lestats.actors import messages
from lestats.actors.engine import Engine
from lestats.actors.jobs import JobOutcome, JobStatus
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

__all__ = [
    "Dataset",
    "DatasetError",
    "Engine",
    "InvalidQuery",
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
    "load_dataset",
    "load_demo_dataset",
    "messages",
]
