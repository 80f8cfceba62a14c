"""The course's nine questions, and which way is better for each (spec §2).

The direction decides what `best5` and `worst5` mean; the strings must match exactly. They seed
the default statistics registry (`statistics.default_registry`), which also accepts the
dataset's other questions and the directions an embedder declares.
"""

from __future__ import annotations

from types import MappingProxyType

BEST_IS_MIN: tuple[str, ...] = (
    "Percent of adults aged 18 years and older who have an overweight classification",
    "Percent of adults aged 18 years and older who have obesity",
    "Percent of adults who engage in no leisure-time physical activity",
    "Percent of adults who report consuming fruit less than one time daily",
    "Percent of adults who report consuming vegetables less than one time daily",
)
"""Questions where a lower percentage is better (less obesity, less inactivity)."""

BEST_IS_MAX: tuple[str, ...] = (
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic activity "
        "(or an equivalent combination)"
    ),
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic physical activity "
        "and engage in muscle-strengthening activities on 2 or more days a week"
    ),
    (
        "Percent of adults who achieve at least 300 minutes a week of moderate-intensity aerobic "
        "physical activity or 150 minutes a week of vigorous-intensity aerobic activity "
        "(or an equivalent combination)"
    ),
    "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week",
)
"""Questions where a higher percentage is better (more activity)."""

QUESTION_IDS = MappingProxyType(
    {
        "Q018": BEST_IS_MIN[3],
        "Q019": BEST_IS_MIN[4],
        "Q036": BEST_IS_MIN[1],
        "Q037": BEST_IS_MIN[0],
        "Q043": BEST_IS_MAX[0],
        "Q044": BEST_IS_MAX[1],
        "Q045": BEST_IS_MAX[2],
        "Q046": BEST_IS_MAX[3],
        "Q047": BEST_IS_MIN[2],
    }
)
"""The CDC's `QuestionID` of each of the nine (column `QuestionID` of the export), for people
who name a question by its id (`Q036`) rather than its text."""
