"""The answers the Workers write straight from the table (`Registry.encode`) are, byte for byte,
what `jsonio.dumps` writes for the same answers as dicts.

Checked three ways: against `jsonio.dumps` of the plain reference of tests/test_queries.py (no
code shared with lestats.data), as a fixed point of decoding and encoding again (any spacing,
number or escape written another way than the json module's would change the bytes), and on a
file whose names need escapes. Plus the memos behind it: numbers' texts and entities' fragments.
"""

from __future__ import annotations

import bisect
import csv
import math
import random

import pytest
from test_queries import loaded

from lestats import jsonio
from lestats.actors.engine import Engine
from lestats.data import estimate_rows, json_text
from lestats.data.loader import load_dataset, load_demo_dataset
from lestats.data.params import KINDS, parse_query
from lestats.data.statistics import default_registry

REGISTRY = default_registry()


@pytest.fixture(scope="module", params=["cdc", "sample", "demo"])
def data(request):
    """Each of the three datasets with its reference."""
    return loaded(request.param)


@pytest.fixture(scope="module", params=["cdc", "sample"])
def files(request):
    """The two files whose cells hold one row each (the demo data repeats cells: their rows
    come by their numbers, not in file order, so the reference's order is not theirs)."""
    return loaded(request.param)


def worker_bytes(dataset, kind, **raw):
    """What a Worker stores for the query: `Registry.encode`, then `jsonio.dumps`."""
    return jsonio.dumps(REGISTRY.encode(dataset, parse_query(dataset, kind, raw)))


def test_ranking_bytes_are_those_of_the_reference_encoded(data):
    _, dataset, reference = data
    rng = random.Random(31)
    strata = [reference.total, *reference.strata]
    for _ in range(200):
        question = rng.choice(reference.questions)
        year = rng.choice(sorted(reference.asked[question]))
        stratum = rng.choice(strata)
        written = worker_bytes(dataset, "ranking", question=question, year=year, stratum=stratum)
        assert written == jsonio.dumps(reference.ranking(question, year, stratum)), (
            question,
            year,
            stratum,
        )


def test_trend_bytes_are_those_of_the_reference_encoded(data):
    _, dataset, reference = data
    rng = random.Random(33)
    strata = [reference.total, *reference.strata]
    for _ in range(200):
        question = rng.choice(reference.questions)
        locations = rng.sample(reference.locations, rng.randint(1, 3))
        stratum = rng.choice(strata)
        written = worker_bytes(
            dataset, "trend", question=question, location=locations, stratum=stratum
        )
        expected = reference.trend(question, locations, stratum)
        assert written == jsonio.dumps(expected), (question, locations, stratum)


def test_estimates_bytes_are_those_of_the_reference_encoded(files):
    _, dataset, reference = files
    rng = random.Random(34)
    for _ in range(200):
        question = rng.choice(reference.questions)
        locations = sorted(rng.sample(reference.locations, rng.randint(1, 3)))
        years = sorted(rng.sample(sorted(reference.asked[question]), 1))
        category = rng.choice([None, *reference.categories])
        raw = {"question": question, "location": locations, "year": years}
        if category is not None:
            raw["category"] = category
        expected = reference.estimates(question, set(locations), set(years), category)
        assert worker_bytes(dataset, "estimates", **raw) == jsonio.dumps(expected), raw


def _random_raw(kind, catalog, rng):
    question = rng.choice(list(catalog.questions))
    locations, strata = list(catalog.locations), list(catalog.strata)
    years = list(catalog.years[question])
    if kind == "ranking":
        return {"question": question, "year": rng.choice(years), "stratum": rng.choice(strata)}
    if kind in {"trend", "estimates", "compare"}:
        return {"question": question, "location": rng.sample(locations, 2)}
    return {}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_fixed_point_of_decoding_and_encoding(data, kind):
    _, dataset, _ = data
    rng = random.Random(32)
    for _ in range(100 if kind in {"ranking", "trend", "estimates", "compare"} else 1):
        query = parse_query(dataset, kind, _random_raw(kind, dataset.catalog, rng))
        written = jsonio.dumps(REGISTRY.encode(dataset, query))
        assert jsonio.dumps(jsonio.loads(written)) == written, query
        assert jsonio.loads(written) == REGISTRY.run(dataset, query), query


HEADER = [
    "YearStart",
    "YearEnd",
    "LocationAbbr",
    "LocationDesc",
    "Question",
    "QuestionID",
    "Data_Value",
    "Data_Value_Footnote_Symbol",
    "Data_Value_Footnote",
    "Low_Confidence_Limit",
    "High_Confidence_Limit",
    "Sample_Size",
    "StratificationCategory1",
    "Stratification1",
    "StratificationCategoryId1",
    "StratificationID1",
]
ROW_START = (2020, 2020)
QUESTION = ("Percent of adults who have obesity", "Q036")
TOTAL = ("Total", "Total", "OVR", "OVERALL")
STRANGE = {  # abbreviation: a name that JSON must escape, or that is not ASCII
    "AA": 'Quote "State"',
    "BB": "Back\\slash",
    "CC": "Tab\tand\nnew line",
    "DD": "Québec, naïve",
    "EE": "\x01control",
    "FF": "emoji 🗺",
}


def test_names_that_need_escapes_are_written_as_the_json_module_writes_them(tmp_path):
    path = tmp_path / "strange.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for number, (abbr, name) in enumerate(STRANGE.items()):
            value = 20.0 + number  # one tie: AA and BB
            low, high = ("", "") if abbr == "CC" else (value - 1.5, value + 1.25)
            numbers = [value if abbr != "BB" else 20.0, "", "", low, high, 1000 + number]
            writer.writerow([*ROW_START, abbr, name, *QUESTION, *numbers, *TOTAL])
        suppressed = ["", "~", "Data not available", "", "", 12]
        writer.writerow([*ROW_START, "GG", "Gone", *QUESTION, *suppressed, *TOTAL])
    dataset = load_dataset(path)
    for kind, raw in (
        ("ranking", {"question": "Q036"}),
        ("trend", {"question": "Q036", "location": ["AA", "CC", "FF", "GG"]}),
        ("estimates", {"question": "Q036"}),
        ("compare", {"question": "Q036", "location": ["EE", "GG"]}),
        ("locations", {}),
    ):
        query = parse_query(dataset, kind, raw)
        written = jsonio.dumps(REGISTRY.encode(dataset, query))
        assert written == jsonio.dumps(jsonio.loads(written)), kind
    ranking = jsonio.loads(worker_bytes(dataset, "ranking", question="Q036"))
    assert [(row["location"], row["name"], row["rank"]) for row in ranking["rows"]][:3] == [
        ("FF", STRANGE["FF"], 1),
        ("EE", STRANGE["EE"], 2),
        ("DD", STRANGE["DD"], 3),
    ]
    assert [row["rank"] for row in ranking["rows"]][-2:] == [5, 5]  # AA and BB tie
    by_abbr = {row["location"]: row for row in ranking["rows"]}
    assert by_abbr["CC"]["low"] is None
    assert by_abbr["DD"]["overlaps_next"] is None  # CC, next to it, has no interval
    assert ranking["no_data"] == [{"location": "GG", "name": "Gone", "reason": "suppressed"}]


def test_a_ranking_job_of_the_engine_stores_the_written_bytes(tmp_path):
    dataset = load_demo_dataset(2_000, 3)
    question = next(iter(dataset.catalog.questions))
    query = parse_query(dataset, "ranking", {"question": question})
    with Engine(dataset, results_dir=tmp_path, workers=1) as engine:
        job = engine.submit("ranking", question=question)
        outcome = engine.wait(job, timeout=30)
        assert outcome.result == jsonio.dumps(REGISTRY.run(dataset, query))


def test_a_registered_encoder_writes_what_the_workers_store(tmp_path):
    dataset = load_demo_dataset(2_000, 3)
    registry = default_registry()

    def count(dataset, _query):
        return {"rows": len(dataset.table), "note": "é"}

    def count_json(dataset, _query):
        return f'{{"rows": {len(dataset.table)}, "note": "é"}}'.encode()

    registry.register("count", count, summary="the rows", encode=count_json)
    query = registry.validate("count", {}, dataset)
    assert registry.encode(dataset, query) == jsonio.Encoded(jsonio.dumps(count(dataset, query)))
    registry.register("plain", count, summary="the rows, encoded by jsonio")
    plain = registry.validate("plain", {}, dataset)
    assert registry.encode(dataset, plain).data == jsonio.dumps(count(dataset, plain))
    with Engine(dataset, results_dir=tmp_path, workers=1, registry=registry) as engine:
        for name in ("count", "plain"):
            outcome = engine.wait(engine.submit(name), timeout=30)
            assert outcome.result == jsonio.dumps(count(dataset, query)), name


def test_block_starts_are_where_each_block_of_a_question_begins():
    dataset = load_demo_dataset(3_000, 7)  # repeated cells, empty blocks, several periods
    table, shape = dataset.table, dataset.table.shape
    keys = list(table.keys)
    blocks = json_text.derived(shape, estimate_rows.Blocks, table)
    for q in range(len(table.questions)):
        starts = blocks.starts(table, q)
        assert blocks.starts(table, q) is starts  # kept
        expected = [
            bisect.bisect_left(keys, shape.pack(q, 0, 0, 0) + block * shape.locations)
            for block in range(shape.strata * shape.periods + 1)
        ]
        assert list(starts) == expected, q


def test_encoded_documents_pass_through_dumps():
    assert jsonio.dumps(jsonio.Encoded(b'{"a": 1}')) == b'{"a": 1}'
    assert jsonio.dumps({"a": 1}) == b'{"a": 1}'


def test_numbers_texts_are_the_json_modules():
    numbers, sizes = json_text.NUMBERS, json_text.SIZES
    for number in (33.0, 0.1, 1e-05, 1e16, 123456.789, -2.5, 5e-324, 1e300):
        assert numbers[number] == jsonio.text(number)
        assert dict.get(numbers, number) == jsonio.text(number)  # remembered: no __missing__
    assert numbers[math.nan] == "null"
    assert (numbers[0.0], numbers[-0.0], numbers[0.0]) == ("0.0", "-0.0", "0.0")
    assert (sizes[12.0], sizes[12.5], sizes[math.nan], sizes[1e20]) == (
        "12",
        "12.5",
        "null",
        "100000000000000000000",
    )
    with pytest.raises(ValueError, match="Out of range float"):
        numbers[math.inf]
    with pytest.raises(ValueError, match="Out of range float"):
        sizes[-math.inf]


def test_percentages_in_tenths_are_there_from_the_start():
    for text in ("0.1", "29.6", "33.0", "99.9", "100.0"):
        assert dict.get(json_text.NUMBERS, float(text)) == text  # no __missing__: there already


def test_the_number_memos_are_bounded(monkeypatch):
    monkeypatch.setattr(json_text, "NUMBER_MEMO", len(json_text.NUMBERS) + 3)
    for number in range(1_000, 1_100):
        assert json_text.NUMBERS[number + 0.5] == repr(number + 0.5)
    assert len(json_text.NUMBERS) == json_text.NUMBER_MEMO


def test_derived_texts_are_built_once_per_anchor_and_bounded(monkeypatch):
    calls = []

    def build(items):
        calls.append(items)
        return [item * 2 for item in items]

    first, second = tuple(range(1, 3)), tuple(range(1, 3))  # equal, not the same tuple
    assert json_text.derived(first, build, first) == [2, 4]
    assert json_text.derived(first, build, first) == [2, 4]
    assert len(calls) == 1
    json_text.derived(second, build, second)
    assert len(calls) == 2  # by identity: another tuple is built for
    monkeypatch.setattr(json_text, "DERIVED_MEMO", 2)
    json_text.derived(object(), build, (3,))
    assert len(json_text._MEMO) <= 2
