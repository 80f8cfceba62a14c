"""The statistics registry: one table of every statistic a job may ask for.

Each row (`Statistic`) says what the statistic is called, what parameters it takes (with their
types, whether they are required, and the allowed values derived from the loaded dataset),
the function computing it, whether its answer depends only on (dataset, query) (then Workers
memoize it) and whether it is one of the course's `POST /api/<name>` routes. Everything else is
a view of this table: validation (`Registry.validate`), the Workers' runner (`Registry.encode`),
the course HTTP routes, the OpenAPI document and the index page. Add a row and all of them
follow; nothing else is edited by hand to match.

The registry also knows which way is better for each question (`set_direction`): the course's
nine come with theirs; `best5` and `worst5` refuse a question whose direction nobody declared.

A registry is configured first (`register`, `set_direction`), then frozen by the Engine that
starts with it: from then on it is read by several threads and never changes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

from lestats import jsonio
from lestats.data.query import ParamValue, Query
from lestats.errors import InvalidQuery

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from lestats.data.dataset import Dataset

log = logging.getLogger(__name__)

Direction = Literal["min", "max"]
"""Which value of a question is the better one: `min` (less obesity) or `max` (more activity)."""

ParamType = Literal["string", "integer", "number", "boolean", "strings", "integers"]
"""A parameter's JSON type: a scalar, or a list of strings (`strings`) or of integers."""

StatisticFunction = Callable[["Dataset", Query], object]
"""Computes a job's `data` (JSON-ready) from the dataset and the validated query."""

StatisticEncoder = Callable[["Dataset", Query], bytes]
"""Writes a statistic's answer as JSON itself: byte for byte `jsonio.dumps` of its function's."""

StatisticParser = Callable[["Registry", "Dataset", "Mapping[str, object]"], Query]
"""Validates a statistic's arguments itself, when the per-parameter checks cannot (parameters
that depend on each other, names to canonicalise); raises `InvalidQuery` for bad ones."""

VALIDATED_QUERIES = 16_384
"""Course queries a frozen registry remembers as validated (nine statistics over every question
and state of the course data make about 15,000)."""

ENTRY_POINT_GROUP = "lestats.statistics"
"""Installed packages add statistics to the server through entry points of this group."""


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a statistic, as validation, OpenAPI and the index page see it.

    `choices` gives the allowed values from the loaded data (a registry-wide view such as the
    questions, or the dataset's states); a value outside them is refused with the list. `check`
    may then normalise the value (an alias to its canonical form) or refuse it with
    `InvalidQuery`. A missing optional parameter takes `default` (None: absent from the query).
    """

    name: str
    type: ParamType = "string"
    required: bool = False
    description: str = ""
    choices: Callable[[Registry, Dataset], Sequence[str | int]] | None = None
    check: Callable[[Registry, Dataset, ParamValue], ParamValue] | None = None
    default: ParamValue = None


@dataclass(frozen=True, slots=True)
class Statistic:
    """One row of the registry: a kind of job.

    `pure`: the answer depends only on (dataset, query), so Workers may memoize it. `course`:
    served as `POST /api/<name>` with the course's rules (extra body keys are ignored); any other
    statistic refuses parameters it does not declare. `directional`: the statistic ranks by the
    question's better direction (refused for a question with none declared). `parse`, when
    given, replaces the per-parameter validation (the v2 query kinds: lestats/data/params.py).
    `encode`, when given, writes the answer's JSON directly, byte for byte `jsonio.dumps` of
    `function`'s, faster (the Workers' path: `Registry.encode`).
    """

    name: str
    function: StatisticFunction
    summary: str
    parameters: tuple[Parameter, ...] = ()
    pure: bool = True
    course: bool = False
    directional: bool = False
    parse: StatisticParser | None = None
    encode: StatisticEncoder | None = None
    _by_name: Mapping[str, Parameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {parameter.name: parameter for parameter in self.parameters}
        if len(by_name) != len(self.parameters):
            raise ValueError(f"statistic {self.name!r} declares a parameter twice")
        object.__setattr__(self, "_by_name", by_name)

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called `name`, or None."""
        return self._by_name.get(name)

    @property
    def needs_state(self) -> bool:
        """Whether a `state` is required (the course's `state_*` statistics)."""
        state = self._by_name.get("state")
        return state is not None and state.required


Plugin = Statistic | Callable[["Registry"], None]
"""What `--statistic module:attribute` and the entry points name: a row, or a function that
adds rows to the registry it is given."""


_Allowed = tuple["Dataset", "Sequence[str | int]", frozenset[str | int]]
"""A parameter's allowed values in one dataset: the dataset, the values, the same as a set."""


class Registry:
    """The table of statistics and the questions' directions. See the module docstring.

    `Registry()` is empty; `default_registry()` holds the nine course statistics. Each Engine
    has its own (the default one unless given), so registering never affects another engine.
    """

    def __init__(self) -> None:
        self._statistics: dict[str, Statistic] = {}
        self._directions: dict[str, Direction] = {}
        self._frozen = False
        self._allowed: dict[Parameter, _Allowed] = {}
        self._validated: dict[tuple[str | None, ...], tuple[Dataset, Query]] = {}
        """Course queries already validated, by statistic and arguments, with their dataset."""

    # --- configuring ------------------------------------------------------------------------------

    def add(self, statistic: Statistic) -> Statistic:
        """Add a row; a name is registered once.

        Raises:
            ValueError: the name is taken or is not a simple lower-case identifier.
            RuntimeError: the registry is frozen (an engine runs with it).
        """
        self._require_unfrozen()
        name = statistic.name
        if not (name.isidentifier() and name == name.lower()):
            raise ValueError(f"statistic name {name!r} must be a lower-case identifier")
        if name in self._statistics:
            raise ValueError(f"statistic {name!r} is already registered")
        self._statistics[name] = statistic
        return statistic

    def register(
        self,
        name: str,
        function: StatisticFunction,
        *,
        summary: str,
        parameters: Sequence[Parameter] = (),
        pure: bool = True,
        course: bool = False,
        directional: bool = False,
        encode: StatisticEncoder | None = None,
    ) -> Statistic:
        """Add a statistic (see `Statistic`) and return its row."""
        return self.add(
            Statistic(
                name,
                function,
                summary,
                tuple(parameters),
                pure=pure,
                course=course,
                directional=directional,
                encode=encode,
            )
        )

    def set_direction(self, question: str, direction: Direction) -> None:
        """Declare which value of `question` is better; the question becomes valid everywhere."""
        self._require_unfrozen()
        if direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', not {direction!r}")
        self._directions[question] = direction

    def load(self, plugin: Plugin) -> None:
        """Add what a plug-in gives: a `Statistic`, or a function that adds rows itself."""
        if isinstance(plugin, Statistic):
            self.add(plugin)
        elif callable(plugin):
            plugin(self)
        else:
            raise TypeError(f"not a Statistic nor a function of a Registry: {plugin!r:.100}")

    def load_named(self, target: str) -> None:
        """Load the plug-in `module:attribute` (the server's `--statistic`).

        Raises:
            ValueError: `target` does not name an importable attribute.
        """
        module_name, _, attribute = target.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"{target!r} is not of the form module:attribute")
        try:
            plugin: object = importlib.import_module(module_name)
            for part in attribute.split("."):
                plugin = getattr(plugin, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {target!r}: {exc}") from exc
        self.load(cast("Plugin", plugin))

    def load_entry_points(self) -> list[str]:
        """Load every installed plug-in of the `lestats.statistics` group; their names."""
        loaded = []
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            self.load(entry_point.load())
            loaded.append(entry_point.name)
            log.info("statistics plug-in %s loaded from %s", entry_point.name, entry_point.value)
        return loaded

    def freeze(self) -> None:
        """Refuse changes from now on (the Engine freezes its registry at start)."""
        self._frozen = True

    @property
    def frozen(self) -> bool:
        """Whether the registry no longer changes."""
        return self._frozen

    def _require_unfrozen(self) -> None:
        if self._frozen:
            raise RuntimeError("the registry is in use by a running engine; configure it before")

    # --- reading ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Statistic]:
        return iter(self._statistics.values())

    def __len__(self) -> int:
        return len(self._statistics)

    def __contains__(self, name: object) -> bool:
        return name in self._statistics

    def __getitem__(self, name: str) -> Statistic:
        return self._statistics[name]

    @property
    def names(self) -> tuple[str, ...]:
        """Every statistic's name, in registration order."""
        return tuple(self._statistics)

    def course_statistics(self) -> tuple[Statistic, ...]:
        """The statistics served as `POST /api/<name>`, in registration order."""
        return tuple(s for s in self._statistics.values() if s.course)

    def direction(self, question: str) -> Direction | None:
        """Which value of `question` is better, or None if nobody declared it."""
        return self._directions.get(question)

    def questions_by_direction(self, direction: Direction) -> tuple[str, ...]:
        """The questions declared with `direction`, in declaration order."""
        return tuple(q for q, d in self._directions.items() if d == direction)

    def questions(self, dataset: Dataset) -> tuple[str, ...]:
        """Every valid question: the declared ones, then the dataset's others.

        Those with a declared direction come in declaration order, the others sorted.

        A declared question is valid even without rows in the data (it answers `{}`).
        """
        others = sorted(set(dataset.questions) - self._directions.keys())
        return (*self._directions, *others)

    # --- validating and running -------------------------------------------------------------------

    def validate(self, name: str, arguments: Mapping[str, object], dataset: Dataset) -> Query:
        """Check a request against the table and the loaded `dataset`; the Query it asks for.

        `arguments` are the request's parameters as they came (a JSON body). A course statistic
        ignores keys it does not declare (spec §4), any other refuses them.

        Raises:
            InvalidQuery: with the reason and, where there is one, the list of allowed values.
        """
        statistic = self._statistics.get(name)
        if statistic is None:
            raise InvalidQuery(f"unknown endpoint {name!r}", self.names)
        if statistic.parse is not None:
            return statistic.parse(self, dataset, arguments)
        key = self._course_key(statistic, arguments)
        known = None if key is None else self._validated.get(key)
        if known is not None and known[0] is dataset:
            return known[1]
        query = self._validate(statistic, arguments, dataset)
        if key is not None:
            if len(self._validated) >= VALIDATED_QUERIES:
                self._validated.clear()
            self._validated[key] = (dataset, query)
        return query

    def _course_key(
        self, statistic: Statistic, arguments: Mapping[str, object]
    ) -> tuple[str | None, ...] | None:
        """What a course query's validation depends on, or None when it may not be reused.

        Once frozen, the registry (and so a validation) depends only on the dataset and the
        arguments a course statistic declares, which are strings (or absent) in a valid
        request; the answer for those is remembered: clients ask the same few thousand again
        and again, and equal queries then share their strings.
        """
        if not (self._frozen and statistic.course):
            return None
        key: list[str | None] = [statistic.name]
        for parameter in statistic.parameters:
            value = arguments.get(parameter.name)
            if not (value is None or type(value) is str):
                return None
            key.append(value)
        return tuple(key)

    def _validate(
        self, statistic: Statistic, arguments: Mapping[str, object], dataset: Dataset
    ) -> Query:
        """`validate` for a statistic without its own parser."""
        name = statistic.name
        if not statistic.course:
            unknown = sorted(set(arguments) - statistic._by_name.keys())  # noqa: SLF001
            if unknown:
                declared = tuple(p.name for p in statistic.parameters)
                raise InvalidQuery(f"unknown parameter {unknown[0]!r} of {name}", declared)
        values = {
            parameter.name: self._value(
                statistic, parameter, arguments.get(parameter.name), dataset
            )
            for parameter in statistic.parameters
        }
        question, state = values.pop("question", None), values.pop("state", None)
        if statistic.directional and isinstance(question, str) and not self.direction(question):
            raise InvalidQuery(
                f"{name} needs to know which way is better for question {question!r}; "
                "nobody declared it (Registry.set_direction)",
                (*self._directions,),
            )
        params = tuple(sorted((k, v) for k, v in values.items() if v is not None))
        return Query(name, _text(question), _text(state), params)

    def _value(
        self, statistic: Statistic, parameter: Parameter, value: object, dataset: Dataset
    ) -> ParamValue:
        name = parameter.name
        if value is None:
            if parameter.required:
                needs = f" (required by {statistic.name})" if name != "question" else ""
                raise InvalidQuery(f"missing {name!r}{needs}")
            return parameter.default
        typed = _typed(parameter, value)
        if parameter.choices is not None:
            allowed, members_allowed = self._choices(parameter, dataset)
            members = typed if isinstance(typed, tuple) else (typed,)
            for member in members:
                if member not in members_allowed:
                    raise InvalidQuery(f"unknown {name} {member!r}", tuple(map(str, allowed)))
        if parameter.check is not None:
            typed = parameter.check(self, dataset, typed)
        return typed

    def _choices(
        self, parameter: Parameter, dataset: Dataset
    ) -> tuple[Sequence[str | int], frozenset[str | int]]:
        """A parameter's allowed values in the dataset, and the same as a set to test members.

        Every job's validation asks this: once the registry is frozen (the dataset never
        changes), it is computed once per parameter and dataset instead of once per job.
        """
        cached = self._allowed.get(parameter)
        if cached is not None and cached[0] is dataset:
            return cached[1], cached[2]
        assert parameter.choices is not None  # noqa: S101 - only parameters with choices come here
        allowed = parameter.choices(self, dataset)
        members = frozenset(allowed)
        if self._frozen:
            self._allowed[parameter] = (dataset, allowed, members)
        return allowed, members

    def run(self, dataset: Dataset, query: Query) -> object:
        """Compute `query` as Python values (the Workers run `encode`, its JSON document).

        Raises:
            KeyError: the query's kind is not registered (it did not come through `validate`).
        """
        return self._statistics[query.kind].function(dataset, query)

    def encode(self, dataset: Dataset, query: Query) -> jsonio.Encoded:
        """Compute `query` as its JSON document: the Workers' runner (`jsonio.dumps` passes it on).

        The bytes are `jsonio.dumps(run(dataset, query))`'s, written by the statistic's own
        encoder when it has one (no dicts between the table and the text).

        Raises:
            KeyError: the query's kind is not registered (it did not come through `validate`).
        """
        statistic = self._statistics[query.kind]
        if statistic.encode is not None:
            return jsonio.Encoded(statistic.encode(dataset, query))
        return jsonio.Encoded(jsonio.dumps(statistic.function(dataset, query)))

    def is_pure(self, query: Query) -> bool:
        """Whether `query`'s answer may be memoized (its statistic is pure)."""
        statistic = self._statistics.get(query.kind)
        return statistic is not None and statistic.pure


_ARTICLE = {"string": "a string", "integer": "an integer", "number": "a number"}


def _typed(parameter: Parameter, value: object) -> ParamValue:
    """`value` if it has the parameter's JSON type (lists become tuples), else InvalidQuery."""
    kind = parameter.type
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if (
        kind == "strings"
        and isinstance(value, list | tuple)
        and all(isinstance(v, str) for v in value)
    ):
        return tuple(value)
    if (
        kind == "integers"
        and isinstance(value, list | tuple)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    wanted = {
        "boolean": "true or false",
        "strings": "a list of strings",
        "integers": "a list of integers",
    }.get(kind) or _ARTICLE[kind]
    raise InvalidQuery(f"{parameter.name!r} must be {wanted}")


def _text(value: ParamValue) -> str | None:
    return value if isinstance(value, str) else None
