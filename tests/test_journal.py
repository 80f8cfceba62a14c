"""The job journal: what is appended comes back on replay; damage costs at most the bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lestats.data.query import Query
from lestats.stores import journal as records
from lestats.stores.journal import Journal, JournalState
from lestats.testing import MUSCLE, OBESITY

Q1 = Query("global_mean", OBESITY)
Q2 = Query("state_mean", MUSCLE, "Ohio")
Q3 = Query("best5", OBESITY)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.jsonl"


def test_replay_of_no_file_is_empty(path):
    state = Journal(path).replay()
    assert state == JournalState()
    assert state.next_id == 1
    assert not state.found


def test_record_and_replay(path):
    journal = Journal(path)
    journal.append(records.submitted(1, Q1))
    journal.append(records.submitted(2, Q2))
    journal.append(records.submitted(3, Q3))
    journal.append(records.failed(2, "ValueError: boom"))
    assert journal.unsynced
    journal.commit()
    assert not journal.unsynced
    journal.close()
    state = Journal(path).replay()
    assert state.next_id == 4
    assert state.unfinished == {1: Q1, 3: Q3}
    assert state.failed == {2: "ValueError: boom"}
    assert state.skipped_lines == 0


def test_lines_reach_the_file_before_commit(path):
    journal = Journal(path)
    journal.append(records.submitted(1, Q2))
    # Written to the OS already: another reader (a restart after SIGKILL) sees it.
    assert Journal(path).replay().unfinished == {1: Q2}
    journal.close()


def test_torn_last_line_is_skipped_and_nothing_else_lost(path):
    journal = Journal(path)
    for job_id in (1, 2, 3):
        journal.append(records.submitted(job_id, Q1))
    journal.append(records.failed(3, "crashed"))
    journal.close()
    line = json.dumps({"job": 4, "endpoint": "best5", "question": OBESITY})
    with path.open("a") as file:
        file.write(line[: len(line) // 2])
    state = Journal(path).replay()
    assert state.skipped_lines == 1
    assert state.unfinished == {1: Q1, 2: Q1}
    assert state.failed == {3: "crashed"}
    assert state.next_id == 4


def test_unreadable_middle_lines_are_skipped_and_counted(path):
    journal = Journal(path)
    journal.append(records.submitted(1, Q1))
    journal.close()
    with path.open("ab") as file:
        file.write(b"\x00\xff garbage\n")
        file.write(b'{"job": "x", "endpoint": "best5", "question": "q"}\n')
        file.write(b'{"job": 9}\n')
        file.write(b'{"what": 1}\n')
        file.write(b"[1, 2]\n")
        file.write(b"null\n")
        file.write(b"\n   \n")  # blank lines are not damage
    journal = Journal(path)
    journal.append(records.submitted(2, Q2))
    journal.append(records.failed(1, "bad"))
    journal.close()
    state = Journal(path).replay()
    assert state.skipped_lines == 6
    assert state.unfinished == {2: Q2}
    assert state.failed == {1: "bad"}
    assert state.next_id == 3


def test_a_line_with_an_infinite_number_is_skipped(path):
    journal = Journal(path)
    journal.append(records.submitted(1, Q1))
    journal.close()
    with path.open("ab") as file:
        file.write(b'{"next": Infinity}\n{"job": 1e999, "endpoint": "best5", "question": "q"}\n')
        file.write(b'{"failed": -Infinity, "reason": "x"}\n')
    state = Journal(path).replay()
    assert state.skipped_lines == 3
    assert state.unfinished == {1: Q1}
    assert state.failed == {}
    assert state.next_id == 2


def test_compaction_keeps_only_next_id_unfinished_and_failed(path):
    journal = Journal(path)
    for job_id in range(1, 201):
        journal.append(records.submitted(job_id, Q2))
    journal.append(records.failed(7, "ValueError: seven"))
    journal.commit()
    size_before = path.stat().st_size
    # Jobs 1..200 accepted; 7 failed; 150 and 151 still unfinished; all others done.
    journal.compact(
        [
            records.line({"next": 201}),
            records.submitted(150, Q2),
            records.submitted(151, Q3),
            records.failed(7, "ValueError: seven"),
        ]
    )
    assert path.stat().st_size < size_before / 10
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"next": 201}
    assert len(lines) == 4
    state = Journal(path).replay()
    assert state.next_id == 201
    assert state.unfinished == {150: Q2, 151: Q3}
    assert state.failed == {7: "ValueError: seven"}
    # The journal goes on appending to the compacted file.
    journal.append(records.submitted(201, Q1))
    journal.close()
    state = Journal(path).replay()
    assert state.unfinished == {150: Q2, 151: Q3, 201: Q1}
    assert state.next_id == 202
    assert not list(path.parent.glob("*.tmp"))


def test_compaction_keeps_next_id_with_nothing_live(path):
    journal = Journal(path)
    journal.append(records.submitted(1, Q1))
    journal.compact([records.line({"next": 42})])
    journal.close()
    assert Journal(path).replay() == JournalState(next_id=42, found=True)


def test_appended_counts_lines_since_the_last_compaction(path):
    journal = Journal(path)
    for job_id in range(1, 11):
        journal.append(records.submitted(job_id, Q1))
    assert journal.appended == 10
    journal.compact([records.line({"next": 11})])
    assert journal.appended == 0
    journal.close()


def test_a_barrier_syncs_the_same_file_elsewhere_and_closes_its_descriptor(path):
    journal = Journal(path)
    assert journal.barrier() is None  # nothing written yet: nothing to sync
    journal.append(records.submitted(1, Q1))
    assert journal.unsynced
    barrier = journal.barrier()
    assert barrier is not None
    assert not journal.unsynced  # the barrier's runner commits it now
    assert journal.barrier() is None
    before = len(list(Path("/proc/self/fd").iterdir()))
    barrier()  # in any thread; it closes its duplicate descriptor
    assert len(list(Path("/proc/self/fd").iterdir())) == before - 1
    journal.append(records.submitted(2, Q2))  # the journal's own descriptor is untouched
    assert journal.unsynced
    journal.close()
    assert Journal(path).replay().unfinished == {1: Q1, 2: Q2}


def test_close_is_idempotent_and_commit_without_file_is_a_no_op(path):
    journal = Journal(path)
    journal.commit()
    journal.close()
    journal.close()
    assert not path.exists()


def test_submitted_lines_are_those_of_submitted_byte_for_byte(monkeypatch):
    lines = records.SubmittedLines()
    queries = [
        Query("best5", OBESITY),
        Query("state_mean", OBESITY, "Ohio"),
        Query("state_mean", MUSCLE, 'Zürich "quoted" \\ state'),
        Query("by_year", OBESITY, None, (("year", 2015), ("states", ("Ohio", "Iowa")))),
        Query("by_year", OBESITY, None, (("year", 2015.0),)),  # equal to the one above's year
    ]
    for job_id, query in enumerate(queries * 2, start=1):
        assert lines.line(job_id, query) == records.submitted(job_id, query)
        assert json.loads(lines.line(job_id, query)) == {"job": job_id, "query": query.to_json()}
    monkeypatch.setattr(records, "ENCODED_QUERIES", 2)  # past the bound it starts afresh
    lines = records.SubmittedLines()
    for job_id, query in enumerate(queries * 3, start=100):
        assert lines.line(job_id, query) == records.submitted(job_id, query)
        assert len(lines._encoded) <= 2
