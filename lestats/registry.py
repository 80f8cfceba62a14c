"""The statistics registry, public: the table of statistics a job may ask for.

Stable API. `default_registry()` gives a fresh table with the nine course statistics and the v2
query kinds of docs/queries.md; add rows with `Registry.register` (or `add` a `Statistic`),
declare questions' better direction with `Registry.set_direction`, and give the table to
`Engine(dataset, registry=...)`. `QUESTION` and `STATE` are the course's parameters, reusable by
new statistics. `register_queries` adds the v2 kinds to a registry built from `Registry()`.
"""

from lestats.data.kinds import register_queries
from lestats.data.query import ParamValue, Query
from lestats.data.registry import (
    ENTRY_POINT_GROUP,
    Direction,
    Parameter,
    ParamType,
    Plugin,
    Registry,
    Statistic,
    StatisticEncoder,
    StatisticFunction,
)
from lestats.data.statistics import (
    COURSE_STATISTICS,
    QUESTION,
    STATE,
    CourseStatistic,
    default_registry,
)

__all__ = [
    "COURSE_STATISTICS",
    "ENTRY_POINT_GROUP",
    "QUESTION",
    "STATE",
    "CourseStatistic",
    "Direction",
    "ParamType",
    "ParamValue",
    "Parameter",
    "Plugin",
    "Query",
    "Registry",
    "Statistic",
    "StatisticEncoder",
    "StatisticFunction",
    "default_registry",
    "register_queries",
]
