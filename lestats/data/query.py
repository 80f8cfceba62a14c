"""What a job asks for: one typed value from validation to the Worker and the journal.

Whether a request is answerable is decided by the statistics registry (`registry.Registry
.validate`), for the HTTP front end and the embedding facade alike.
"""

from __future__ import annotations

from dataclasses import dataclass

ParamValue = str | int | float | bool | tuple[str, ...] | tuple[int, ...] | None
"""What a query parameter may hold: JSON scalars, or lists of strings or of integers."""


@dataclass(frozen=True, slots=True)
class Query:
    """One job's request: the registered statistic (`kind`) and its arguments.

    The same value travels from validation through the Dispatcher, the Worker and the journal,
    so it is hashable (memo and cache key) and has one JSON form (`to_json`, `from_json`).
    `question` and `state` are the arguments of the nine course statistics; any other argument
    of a statistic lives in `params`, sorted by name so that equal queries compare equal.

    Built through validation, a Query is known to be answerable; built directly (in tests), it
    is taken as it is.
    """

    kind: str
    question: str | None = None
    state: str | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()

    def param(self, name: str, default: ParamValue = None) -> ParamValue:
        """The value of parameter `name`, or `default` when the query has none."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def to_json(self) -> dict[str, object]:
        """The query as a JSON object: `kind`, `question` and `state` when set, then params."""
        body: dict[str, object] = {"kind": self.kind}
        if self.question is not None:
            body["question"] = self.question
        if self.state is not None:
            body["state"] = self.state
        for name, value in self.params:
            body[name] = list(value) if isinstance(value, tuple) else value
        return body

    @classmethod
    def from_json(cls, body: object) -> Query:
        """The query of a `to_json` object (from the journal, or another process).

        Raises:
            ValueError: `body` is not the JSON form of a query.
        """
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            raise ValueError(f"not a query: {body!r:.200}")  # noqa: TRY004 - bad data, not a bug
        question, state = body.get("question"), body.get("state")
        if not (question is None or isinstance(question, str)) or not (
            state is None or isinstance(state, str)
        ):
            raise ValueError(f"not a query: {body!r:.200}")
        params = tuple(
            sorted(
                (name, _param_value(value))
                for name, value in body.items()
                if name not in {"kind", "question", "state"}
            )
        )
        return cls(body["kind"], question, state, params)


def _param_value(value: object) -> ParamValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return tuple(value)
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return tuple(value)
    raise ValueError(f"not a query parameter value: {value!r:.200}")
