"""The v2 query kinds (docs/queries.md) against a plain reference computed in this file.

The reference reads the CSV with the csv module and computes each answer by brute force over a
list of dicts: no code is shared with lestats.data beyond the file. It runs on the CDC's own
export (88,629 rows, read in place from the shared data folder; skipped only when absent), on the
course sample (340 rows) and on the demo data, for a few hundred seeded random queries per kind.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from pathlib import Path

import pytest

from lestats.actors.engine import Engine
from lestats.data import demo, discovery, estimates
from lestats.data.kinds import register_queries
from lestats.data.loader import PARSER_VARIABLE, load_dataset, load_demo_dataset
from lestats.data.params import KINDS, InvalidParameters, parse_query
from lestats.data.registry import Registry
from lestats.errors import InvalidQuery


def shared_data(name):
    """A file of the shared data folder: `../shared/data` beside the repository (or above)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "data" / name
        if candidate.exists():
            return candidate
    return None


CDC = shared_data("brfss-cdc-2011-2021.csv.gz")
SAMPLE = shared_data("brfss-real-sample.csv")
LOWER_IS_BETTER = {
    "Percent of adults aged 18 years and older who have an overweight classification",
    "Percent of adults aged 18 years and older who have obesity",
    "Percent of adults who engage in no leisure-time physical activity",
    "Percent of adults who report consuming fruit less than one time daily",
    "Percent of adults who report consuming vegetables less than one time daily",
}
HIGHER_IS_BETTER = {
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic activity (or an "
        "equivalent combination)"
    ),
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic physical activity "
        "and engage in muscle-strengthening activities on 2 or more days a week"
    ),
    (
        "Percent of adults who achieve at least 300 minutes a week of moderate-intensity aerobic "
        "physical activity or 150 minutes a week of vigorous-intensity aerobic activity (or an "
        "equivalent combination)"
    ),
    "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week",
}


# --- the reference ---------------------------------------------------------------------------


def _float(text):
    text = text.strip()
    return float(text) if text else None


def read_rows(lines):
    """Each row as a dict of what the queries need, by a plain reading of the CSV."""
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader)]
    rows = []
    for cells in reader:
        if len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        value = _float(row["Data_Value"])
        suppressed = row["Data_Value_Footnote_Symbol"] == "~" or value is None
        size = _float(row["Sample_Size"])
        rows.append(
            {
                "question": row["QuestionID"] or row["Question"],
                "text": row["Question"],
                "location": row["LocationAbbr"] or row["LocationDesc"],
                "name": row["LocationDesc"],
                "year": int(row["YearStart"]),
                "category": row["StratificationCategoryId1"] or row["StratificationCategory1"],
                "category_name": row["StratificationCategory1"],
                "stratum": row["StratificationID1"] or row["Stratification1"],
                "stratum_name": row["Stratification1"],
                "value": None if suppressed else value,
                "low": None if suppressed else _float(row["Low_Confidence_Limit"]),
                "high": None if suppressed else _float(row["High_Confidence_Limit"]),
                "sample_size": None if size is None else int(size) if size.is_integer() else size,
                "suppressed": suppressed,
                "footnote": row["Data_Value_Footnote"] or row["Data_Value_Footnote_Symbol"] or None,
            }
        )
    return rows


class Reference:
    """Brute-force answers over the rows read by `read_rows`."""

    def __init__(self, rows):
        self.rows = rows
        self.questions = sorted({row["question"] for row in rows})
        self.locations = sorted({row["location"] for row in rows})
        self.strata = sorted({row["stratum"] for row in rows if row["stratum"]})
        self.categories = sorted({row["category"] for row in rows if row["category"]})
        self.text = {row["question"]: row["text"] for row in rows}
        self.names = {row["location"]: row["name"] for row in rows}
        self.asked = {}
        for row in rows:
            self.asked.setdefault(row["question"], set()).add(row["year"])
        self.total = "OVERALL" if "OVERALL" in self.strata else "Total"
        self.by_cell = {}
        self.by_question = {}
        for row in rows:
            key = (row["question"], row["stratum"], row["year"], row["location"])
            self.by_cell.setdefault(key, []).append(row)
            self.by_question.setdefault(row["question"], []).append(row)

    def estimates(self, question, locations=None, years=None, category=None, strata=None):
        found = [
            {
                **row,
                "category": row["category"] or None,
                "category_name": row["category_name"] or None,
                "stratum": row["stratum"] or None,
                "stratum_name": row["stratum_name"] or None,
            }
            for row in self.by_question.get(question, [])
            if (locations is None or row["location"] in locations)
            and (years is None or row["year"] in years)
            and (category is None or row["category"] == category)
            and (strata is None or row["stratum"] in strata)
        ]
        for row in found:
            del row["text"]
        found.sort(
            key=lambda r: (r["location"], r["year"], r["category"] or "", r["stratum"] or "")
        )
        suppressed = sum(1 for row in found if row["suppressed"])
        return {"count": len(found), "suppressed": suppressed, "rows": found}

    def cell(self, question, stratum, year, location):
        matches = self.by_cell.get((question, stratum, year, location), [])
        numbered = [row for row in matches if not row["suppressed"]]
        if numbered:  # duplicates (the demo data): the smallest numbers, as docs/queries.md says
            return min(numbered, key=lambda r: tuple(_or_inf(r[k]) for k in NUMBERS))
        return matches[0] if matches else None

    def trend(self, question, locations, stratum):
        asked = self.asked[question]
        years = list(range(min(asked), max(asked) + 1))
        series = []
        for location in locations:
            points = []
            for year in years:
                row = self.cell(question, stratum, year, location)
                if row is None:
                    gap = "no data" if year in asked else "not asked"
                    points.append({"year": year, "value": None, "gap": gap})
                elif row["suppressed"]:
                    points.append({"year": year, "value": None, "gap": "suppressed"})
                else:
                    points.append(
                        {key: row[key] for key in ("year", "value", "low", "high", "sample_size")}
                    )
            series.append({"location": location, "name": self.names[location], "points": points})
        return {"years": years, "stratum": stratum, "series": series}

    def ranking(self, question, year, stratum):
        text = self.text[question]
        direction = (
            "min" if text in LOWER_IS_BETTER else "max" if text in HIGHER_IS_BETTER else None
        )
        numbered, no_data, reference = [], [], None
        for location in self.locations:
            row = self.cell(question, stratum, year, location)
            if location == "US":
                if row is not None and not row["suppressed"]:
                    reference = self._located(row)
                continue
            if row is None:
                no_data.append(
                    {"location": location, "name": self.names[location], "reason": "no data"}
                )
            elif row["suppressed"]:
                no_data.append(
                    {"location": location, "name": self.names[location], "reason": "suppressed"}
                )
            else:
                numbered.append(row)
        if direction == "min":
            numbered.sort(key=lambda r: (r["value"], r["location"]))
        else:
            numbered.sort(key=lambda r: (-r["value"], r["location"]))
        rows = []
        for index, row in enumerate(numbered):
            rank = 1 + sum(1 for other in numbered if better(other, row, direction))

            def touches(a, b):
                if None in (a["low"], a["high"], b["low"], b["high"]):
                    return None
                return not (a["high"] < b["low"] or b["high"] < a["low"])

            rows.append(
                {
                    "rank": rank,
                    **self._located(row),
                    "overlaps_previous": touches(numbered[index - 1], row) if index > 0 else False,
                    "overlaps_next": touches(row, numbered[index + 1])
                    if index + 1 < len(numbered)
                    else False,
                }
            )
        return {
            "year": year,
            "stratum": stratum,
            "direction": direction,
            "reference": reference,
            "rows": rows,
            "no_data": no_data,
        }

    @staticmethod
    def _located(row):
        return {
            key: row[key] for key in ("location", "name", "value", "low", "high", "sample_size")
        }

    def compare(self, question, sides):
        a, b = (self.cell(question, stratum, year, location) for location, year, stratum in sides)
        if a is None or b is None or a["suppressed"] or b["suppressed"]:
            return None
        difference = b["value"] - a["value"]
        se = math.sqrt(((a["high"] - a["low"]) / 3.92) ** 2 + ((b["high"] - b["low"]) / 3.92) ** 2)
        z = difference / se
        p = 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))
        return a, b, difference, z, p, abs(z) > 1.96


NUMBERS = ("value", "low", "high", "sample_size")


def _or_inf(number):
    return math.inf if number is None else number


def better(other, row, direction):
    if direction == "min":
        return other["value"] < row["value"]
    return other["value"] > row["value"]


# --- fixtures --------------------------------------------------------------------------------


def loaded(name):
    """(name, dataset, reference) for the CDC export (`cdc`), the course sample (`sample`) or
    the demo data (`demo`); skips the test if the file is not in ../shared/data."""
    if name == "cdc":
        if CDC is None:
            pytest.skip("the CDC export is not in ../shared/data")
        dataset = load_dataset(CDC)
        with gzip.open(CDC, "rt", encoding="utf-8-sig", newline="") as lines:
            rows = read_rows(lines)
    elif name == "sample":
        if SAMPLE is None:
            pytest.skip("the course sample is not in ../shared/data")
        dataset = load_dataset(SAMPLE)
        rows = read_rows(SAMPLE.read_text(encoding="utf-8-sig").splitlines())
    else:
        dataset = load_demo_dataset(4_000, 5)
        rows = read_rows(io.StringIO("".join(demo.iter_demo_lines(4_000, 5))))
    return name, dataset, Reference(rows)


@pytest.fixture(scope="module", params=["cdc", "sample", "demo"])
def data(request):
    """Each of the three datasets with its reference."""
    return loaded(request.param)


def query(dataset, kind, **raw):
    return parse_query(dataset, kind, raw)


# --- the kinds against the reference -----------------------------------------------------------

RUNS = 200


def test_estimates_equal_the_reference(data):
    name, dataset, reference = data
    rng = random.Random(14)
    for _ in range(RUNS):
        question = rng.choice(reference.questions)
        raw = {"question": question}
        locations = years = category = strata = None
        if rng.random() < 0.95:  # without a location filter, a question has ~16,000 rows
            locations = set(rng.sample(reference.locations, rng.randint(1, 3)))
            raw["location"] = sorted(locations)
        if rng.random() < 0.5:
            years = set(rng.sample(sorted(reference.asked[question]), 1))
            raw["year"] = sorted(years)
        if rng.random() < 0.3:
            category = rng.choice(reference.categories)
            raw["category"] = category
        elif rng.random() < 0.3:
            strata = set(rng.sample(reference.strata, 2))
            raw["stratum"] = sorted(strata)
        answer = estimates.estimates(dataset, query(dataset, "estimates", **raw))
        expected = reference.estimates(question, locations, years, category, strata)
        assert answer["count"] == expected["count"], (name, raw)
        assert answer["suppressed"] == expected["suppressed"], (name, raw)
        if name == "demo":  # the rows of a repeated cell come by their numbers, not file order
            assert sorted(map(repr, answer["rows"])) == sorted(map(repr, expected["rows"]))
        else:
            assert answer["rows"] == expected["rows"], (name, raw)


def test_trend_equals_the_reference(data):
    name, dataset, reference = data
    rng = random.Random(15)
    strata = [reference.total, *rng.sample(reference.strata, min(5, len(reference.strata)))]
    gaps = set()
    for _ in range(RUNS):
        question = rng.choice(reference.questions)
        locations = rng.sample(reference.locations, rng.randint(1, 3))
        stratum = rng.choice(strata)
        answer = estimates.trend(
            dataset, query(dataset, "trend", question=question, location=locations, stratum=stratum)
        )
        assert answer == reference.trend(question, locations, stratum), (
            question,
            locations,
            stratum,
        )
        gaps |= {p.get("gap") for s in answer["series"] for p in s["points"]}
    if name == "cdc":
        assert gaps == {None, "suppressed", "not asked", "no data"}


def test_ranking_equals_the_reference(data):
    name, dataset, reference = data
    rng = random.Random(16)
    strata = [reference.total, *reference.strata]
    ties = 0
    for _ in range(RUNS):
        question = rng.choice(reference.questions)
        year = rng.choice(sorted(reference.asked[question]))
        stratum = rng.choice(strata)
        answer = estimates.ranking(
            dataset, query(dataset, "ranking", question=question, year=year, stratum=stratum)
        )
        expected = reference.ranking(question, year, stratum)
        assert answer == expected, (question, year, stratum)
        ranks = [row["rank"] for row in answer["rows"]]
        ties += len(ranks) - len(set(ranks))
    if name == "cdc":
        assert ties > 0  # values have one decimal: ties are common, and share their rank


def test_compare_equals_the_reference(data):
    name, dataset, reference = data
    rng = random.Random(17)
    significant = set()
    missing = 0
    for _ in range(RUNS):
        question = rng.choice(reference.questions)
        asked = sorted(reference.asked[question])
        location, year, stratum = rng.choice(reference.locations), asked[-1], reference.total
        compared = rng.choice(["location", "year", "stratum"])
        raw = {"question": question, "location": location}
        if compared == "location":
            pair = rng.sample(reference.locations, 2)
            raw["location"] = pair
            sides = [(pair[0], year, stratum), (pair[1], year, stratum)]
        elif compared == "year":
            if len(asked) < 2:
                continue
            pair = rng.sample(asked, 2)
            raw["year"] = pair
            sides = [(location, pair[0], stratum), (location, pair[1], stratum)]
        else:
            pair = rng.sample(reference.strata, 2)
            raw["stratum"] = pair
            sides = [(location, year, pair[0]), (location, year, pair[1])]
        answer = estimates.compare(dataset, query(dataset, "compare", **raw))
        expected = reference.compare(question, sides)
        if expected is None:
            missing += 1
            assert answer["z"] is None
            assert answer["significant"] is None
            assert answer["reason"]
            assert answer["difference"] is None
            continue
        a, b, difference, z, p, is_significant = expected
        assert (answer["a"]["value"], answer["b"]["value"]) == (a["value"], b["value"])
        assert (answer["a"]["location"], answer["b"]["year"]) == (sides[0][0], sides[1][1])
        assert answer["difference"] == pytest.approx(difference, abs=1e-9)
        assert answer["z"] == pytest.approx(z, rel=1e-12)
        assert answer["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-15)
        assert answer["significant"] is is_significant
        significant.add(is_significant)
    if name == "cdc":
        assert significant == {True, False}
        assert missing > 0


# --- specific facts -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdc():
    if CDC is None:
        pytest.skip("the CDC export is not in ../shared/data")
    return load_dataset(CDC)


def test_ohio_obesity_by_year_is_what_the_cdc_published(cdc):
    answer = estimates.trend(cdc, query(cdc, "trend", question="Q036", location="OH"))
    points = {p["year"]: p["value"] for p in answer["series"][0]["points"]}
    assert (points[2011], points[2021]) == (29.6, 37.8)


def test_compare_ohio_2011_2021_by_hand(cdc):
    answer = estimates.compare(
        cdc, query(cdc, "compare", question="Q036", location="OH", year=[2011, 2021])
    )
    # 2011: 29.6 [28.3, 31.0]; 2021: 37.8 [36.6, 39.0]
    se = math.hypot(2.7 / 3.92, 2.4 / 3.92)
    assert answer["difference"] == 8.2
    assert answer["z"] == pytest.approx(8.2 / se, rel=1e-9)
    assert answer["significant"] is True
    assert answer["p_value"] < 1e-12


def test_suppressed_rows_are_counted_never_numbers(cdc):
    answer = estimates.estimates(cdc, query(cdc, "estimates", question="Q036", location="GU"))
    withheld = [row for row in answer["rows"] if row["suppressed"]]
    assert answer["suppressed"] == len(withheld) > 0
    assert all(row["value"] is row["low"] is row["high"] is None for row in withheld)
    assert {row["footnote"] for row in withheld} == {
        "Data not available because sample size is insufficient."
    }


def test_no_stratum_rows_only_without_a_stratum_filter(cdc):
    # New Jersey 2019 has one row per question, with no stratum and no value, and nothing else.
    everything = estimates.estimates(
        cdc, query(cdc, "estimates", question="Q036", location="NJ", year=2019)
    )
    (row,) = everything["rows"]
    assert (row["category"], row["stratum"], row["suppressed"], row["value"]) == (
        None,
        None,
        True,
        None,
    )
    assert everything["suppressed"] == 1
    for stratum in ("OVERALL", "MALE"):
        filtered = estimates.estimates(
            cdc, query(cdc, "estimates", question="Q036", location="NJ", year=2019, stratum=stratum)
        )
        assert filtered == {"count": 0, "suppressed": 0, "rows": []}
    trend = estimates.trend(cdc, query(cdc, "trend", question="Q036", location="NJ"))
    (point,) = [p for p in trend["series"][0]["points"] if p["year"] == 2019]
    assert point == {"year": 2019, "value": None, "gap": "no data"}


def test_discovery(cdc):
    questions = discovery.questions(cdc, query(cdc, "questions"))
    assert [q["id"] for q in questions] == [
        "Q018",
        "Q019",
        "Q036",
        "Q037",
        "Q043",
        "Q044",
        "Q045",
        "Q046",
        "Q047",
    ]
    q043 = next(q for q in questions if q["id"] == "Q043")
    assert q043["years"] == [2011, 2013, 2015, 2017, 2019]
    assert (q043["direction"], q043["unit"], q043["class"]) == ("max", "%", "Physical Activity")
    locations = discovery.locations(cdc, query(cdc, "locations"))
    kinds = {}
    for location in locations:
        kinds.setdefault(location["kind"], []).append(location["location"])
    assert kinds["national"] == ["US"]
    assert kinds["territory"] == ["GU", "PR", "VI"]
    assert len(kinds["state"]) == 51
    strata = discovery.strata(cdc, query(cdc, "strata"))
    by_category = {c["category"]: [s["stratum"] for s in c["strata"]] for c in strata}
    assert by_category["OVR"] == ["OVERALL"]
    assert len(by_category["INC"]) == 7
    assert sum(map(len, by_category.values())) == 28


def test_every_bad_parameter_is_named_with_its_allowed_values(cdc):
    with pytest.raises(InvalidParameters) as error:
        query(
            cdc, "trend", question="Q999", location=["OH", "Atlantis"], stratum="RICH", colour="red"
        )
    problems = {p.parameter: p for p in error.value.problems}
    assert set(problems) == {"question", "location", "stratum", "colour"}
    assert "Q036" in problems["question"].allowed
    assert "Atlantis" in problems["location"].reason
    assert "OH" in problems["location"].allowed
    assert "OVERALL" in problems["stratum"].allowed
    assert problems["colour"].allowed == ("location", "question", "stratum")
    assert isinstance(error.value, InvalidQuery)


def test_years_are_checked_against_the_question(cdc):
    with pytest.raises(InvalidParameters) as error:
        query(cdc, "ranking", question="Q043", year=2012)
    (problem,) = error.value.problems
    assert problem.parameter == "year"
    assert problem.allowed == ("2011", "2013", "2015", "2017", "2019")


def test_names_ids_commas_and_defaults_give_one_canonical_query(cdc):
    by_id = query(cdc, "trend", question="Q036", location=["OH", "US"])
    by_name = query(
        cdc,
        "trend",
        question="Percent of adults aged 18 years and older who have obesity",
        location="Ohio,National",
        stratum="Total",
    )
    assert by_id == by_name
    assert by_id.param("stratum") == "OVERALL"
    income = query(cdc, "estimates", question="Q036", stratum="$75,000 or greater")
    assert income.param("stratum") == ("INC75PLUS",)
    assert query(cdc, "ranking", question="Q043").param("year") == 2019


@pytest.mark.parametrize(
    "raw",
    [
        {"question": "Q036", "location": "OH"},  # nothing compared
        {"question": "Q036", "location": ["OH", "TX"], "year": [2011, 2021]},  # two compared
        {"question": "Q036", "location": ["OH", "TX", "US"]},  # three values
        {"question": "Q036", "year": [2011, 2021]},  # no location
    ],
)
def test_compare_needs_exactly_one_pair(cdc, raw):
    with pytest.raises(InvalidParameters):
        parse_query(cdc, "compare", raw)


def test_unknown_kind(cdc):
    with pytest.raises(InvalidQuery) as error:
        parse_query(cdc, "median", {})
    assert "trend" in error.value.allowed


def test_the_parsers_give_the_same_answers(cdc, monkeypatch):
    monkeypatch.setenv(PARSER_VARIABLE, "csv")
    by_csv = load_dataset(CDC)
    assert by_csv.fingerprint == cdc.fingerprint
    q = query(cdc, "ranking", question="Q047", year=2020, stratum="MALE")
    assert estimates.ranking(by_csv, q) == estimates.ranking(cdc, q)


def test_an_embedded_engine_answers_the_v2_kinds(cdc, tmp_path):
    # The default registry has the kinds: an embedding program submits them like any statistic.
    with Engine(cdc, workers=2, results_dir=tmp_path / "results") as engine:
        job = engine.submit("trend", question="Q036", location=["OH", "US"])
        expected = estimates.trend(cdc, query(cdc, "trend", question="Q036", location="OH,US"))
        assert engine.result(job, timeout=30) == expected
        with pytest.raises(InvalidParameters):
            engine.submit("ranking", question="Q036", year=1999)


def test_register_queries_on_an_empty_registry():
    registry = Registry()
    register_queries(registry)
    assert registry.names == KINDS
    assert all(statistic.parse is not None and not statistic.course for statistic in registry)
