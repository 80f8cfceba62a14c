"""Questions as people type them: an id (`Q036`) or a fragment of the text (`obesity`).

The nine questions are long sentences; the command line takes any unambiguous piece of one
(case and spacing ignored), its CDC id, or the full text. An ambiguous fragment is refused with
the candidates listed, so the user can pick one; nothing is guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lestats.data.questions import QUESTION_IDS
from lestats.errors import InvalidQuery

if TYPE_CHECKING:
    from collections.abc import Iterable

_ID_OF = {text: question_id for question_id, text in QUESTION_IDS.items()}


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def label(question: str) -> str:
    """`Q036 Percent of adults ...`: the question with its id, when it has one."""
    question_id = _ID_OF.get(question)
    return f"{question_id} {question}" if question_id else question


def resolve(name: str, questions: Iterable[str]) -> str:
    """The one question among `questions` that `name` designates.

    Raises:
        InvalidQuery: no question or several match; `allowed` lists the candidates (all the
            questions when none matched).
    """
    known = tuple(questions)
    if name in known:
        return name
    by_id = QUESTION_IDS.get(name.strip().upper())
    if by_id is not None and by_id in known:
        return by_id
    fragment = _folded(name)
    matches = tuple(q for q in known if fragment and fragment in _folded(q))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InvalidQuery(f"no question matches {name!r}", tuple(label(q) for q in sorted(known)))
    raise InvalidQuery(
        f"{name!r} is ambiguous: it matches {len(matches)} questions",
        tuple(label(q) for q in sorted(matches)),
    )
