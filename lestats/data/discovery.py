"""The discovery kinds of docs/queries.md: `questions`, `locations`, `strata`.

What the loaded data holds, by id, so that a client can build its menus and URLs. The course's
`/api/questions` and `/api/states` keep their own shapes; these are the v2 vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lestats.data.catalog import direction, unit

if TYPE_CHECKING:
    from lestats.data.dataset import Dataset
    from lestats.data.query import Query

Result = list[dict[str, Any]]


def questions(dataset: Dataset, _query: Query) -> Result:
    """Every question with its id, text, class, topic, unit, the years asked, its direction."""
    catalog = dataset.catalog
    return [
        {
            "id": qid,
            "text": question.text,
            "class": question.class_,
            "topic": question.topic,
            "unit": unit(question),
            "years": list(catalog.years.get(qid, ())),
            "direction": direction(question),
        }
        for qid, question in catalog.questions.items()
    ]


def locations(dataset: Dataset, _query: Query) -> Result:
    """Every location: abbreviation, name and kind (state, territory, national)."""
    return [
        {"location": abbr, "name": location.name, "kind": location.kind}
        for abbr, location in dataset.catalog.locations.items()
    ]


def strata(dataset: Dataset, _query: Query) -> Result:
    """The strata by category (the rows without a stratum are in none)."""
    by_category: dict[str, dict[str, Any]] = {}
    for sid, stratum in dataset.catalog.strata.items():
        category = by_category.setdefault(
            stratum.category_id,
            {"category": stratum.category_id, "name": stratum.category, "strata": []},
        )
        category["strata"].append({"stratum": sid, "name": stratum.name})
    return [by_category[key] for key in sorted(by_category)]
