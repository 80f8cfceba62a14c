"""The actor engine: Dispatcher, Workers and ResultStore on pykka, and the facade that wires them.

It knows nothing about HTTP. Public (stable API) for message-level use and tests: the actor
classes below, started with pykka's `start` and talked to in `lestats.messages`; their refs'
`ask` understands the requests (`RequestRef`). Their constructors may gain keyword options.
"""

from lestats.actors.committer import JournalCommitter
from lestats.actors.dispatcher import Dispatcher
from lestats.actors.refs import RequestActor, RequestRef
from lestats.actors.result_store import ResultStore
from lestats.actors.worker import Worker

__all__ = ["Dispatcher", "JournalCommitter", "RequestActor", "RequestRef", "ResultStore", "Worker"]
