"""A Python client of a Le Stats Sportif server, with the embedded `Engine`'s methods.

    from lestats.client import Client

    with Client("http://127.0.0.1:5000") as engine:   # instead of: with Engine(dataset) as engine
        job_id = engine.submit("best5", question)
        print(engine.result(job_id, timeout=10))

`Client` has every blocking method of `Engine` and its `_async` twin; errors are the library's
types (`InvalidQuery`, `UnknownJob`, `JobFailed`, `Overloaded`, `ShuttingDown`, `StorageError`),
plus `ConnectionFailed` (no answer) and `RemoteError` (an answer this API never gives).
"""

from lestats.client.errors import ConnectionFailed, RemoteError
from lestats.client.remote import Client

__all__ = ["Client", "ConnectionFailed", "RemoteError"]
