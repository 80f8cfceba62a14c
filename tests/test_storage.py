"""FileResultStorage: atomic result files, a bounded read cache, and what a restart finds."""

from __future__ import annotations

import threading

import pytest

from lestats.actors.storage import FileResultStorage


def test_creates_the_directory(results_dir):
    FileResultStorage(results_dir)
    assert results_dir.is_dir()


def test_save_load_round_trip(results_dir):
    storage = FileResultStorage(results_dir)
    storage.save(1, b'{"Ohio": 32.0}')
    storage.save(2, '{"Zürich": 1.5}'.encode())
    assert storage.load(1) == b'{"Ohio": 32.0}'
    assert storage.load(2) == '{"Zürich": 1.5}'.encode()
    assert (results_dir / "job_id_1.json").read_bytes() == b'{"Ohio": 32.0}'
    # A fresh instance (empty cache) reads the same bytes from disk.
    assert FileResultStorage(results_dir).load(2) == '{"Zürich": 1.5}'.encode()


def test_save_overwrites(results_dir):
    storage = FileResultStorage(results_dir)
    storage.save(3, b"[1]")
    storage.save(3, b"[2, 2]")
    assert storage.load(3) == b"[2, 2]"
    assert FileResultStorage(results_dir).load(3) == b"[2, 2]"


def test_path_is_built_from_an_int_only(results_dir):
    storage = FileResultStorage(results_dir)
    assert storage.path(7) == results_dir / "job_id_7.json"
    with pytest.raises(ValueError, match="invalid literal"):
        storage.path("../x")  # type: ignore[arg-type]


def test_no_temporary_file_left_after_saves(results_dir):
    storage = FileResultStorage(results_dir)
    for job_id in range(1, 51):
        storage.save(job_id, b"{}" * job_id)
    assert sorted(p.name for p in results_dir.iterdir()) == sorted(
        f"job_id_{i}.json" for i in range(1, 51)
    )


def test_failed_save_leaves_no_temporary_file(results_dir):
    storage = FileResultStorage(results_dir)
    # The final name is a directory: the rename fails after the temporary file was written.
    (results_dir / "job_id_5.json").mkdir()
    with pytest.raises(OSError, match="job_id_5"):
        storage.save(5, b"{}")
    assert [p.name for p in results_dir.iterdir()] == ["job_id_5.json"]


def test_leftover_temporary_files_removed_at_init(results_dir):
    results_dir.mkdir()
    (results_dir / ".job_id_4.json.tmp").write_bytes(b'{"half')
    (results_dir / ".job_id_17.json.tmp").write_bytes(b"")
    (results_dir / "job_id_3.json").write_bytes(b"{}")
    (results_dir / "notes.tmp").write_bytes(b"not ours")
    FileResultStorage(results_dir)
    assert sorted(p.name for p in results_dir.iterdir()) == ["job_id_3.json", "notes.tmp"]


def test_a_reader_never_sees_a_partial_file(results_dir):
    storage = FileResultStorage(results_dir)
    reader = FileResultStorage(results_dir, cache_bytes=0)  # no cache: every load hits the disk
    payloads = [bytes([ord("a") + i]) * (1 << 20) for i in range(3)]
    allowed = set(payloads)
    stop = threading.Event()
    reads = {"missing": 0, "full": 0}
    bad: list[int] = []

    def read_loop() -> None:
        while not stop.is_set():
            for job_id in (1, 2):
                try:
                    data = reader.load(job_id)
                except FileNotFoundError:
                    reads["missing"] += 1
                    continue
                if data in allowed:
                    reads["full"] += 1
                else:
                    bad.append(len(data))

    thread = threading.Thread(target=read_loop, name="storage-reader")
    thread.start()
    try:
        for round_ in range(40):
            storage.save(1, payloads[round_ % 3])
            storage.save(2, payloads[(round_ + 1) % 3])
            if round_ % 10 == 9:
                storage.path(2).unlink()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert bad == []
    assert reads["full"] > 0


def test_exists(results_dir):
    storage = FileResultStorage(results_dir)
    assert not storage.exists(1)
    storage.save(1, b"{}")
    assert storage.exists(1)
    assert not storage.exists(2)
    storage.path(1).unlink()
    assert not storage.exists(1)


def test_highest_id(results_dir):
    storage = FileResultStorage(results_dir)
    assert storage.highest_id() == 0
    for job_id in (3, 12, 9):
        storage.save(job_id, b"{}")
    # Files that only look like results do not count.
    for name in ("job_id_99.json.bak", "job_id_0100.json", "job_id_x.json", ".job_id_77.json"):
        (results_dir / name).write_bytes(b"{}")
    (results_dir / "journal.jsonl").write_bytes(b"")
    assert storage.highest_id() == 12
    assert FileResultStorage(results_dir).highest_id() == 12


def test_deleted_file_is_file_not_found(results_dir):
    FileResultStorage(results_dir).save(1, b"{}")
    storage = FileResultStorage(results_dir)
    assert storage.load(1) == b"{}"
    storage.path(1).unlink()
    fresh = FileResultStorage(results_dir)
    with pytest.raises(FileNotFoundError):
        fresh.load(1)
    with pytest.raises(FileNotFoundError):
        fresh.load(2)


def test_deleted_file_may_still_be_served_from_the_cache(results_dir):
    storage = FileResultStorage(results_dir)
    storage.save(1, b"[1]")
    storage.path(1).unlink()
    assert storage.load(1) == b"[1]"


def _cached_bytes(storage: FileResultStorage) -> int:
    return sum(map(len, storage._cache.values()))


def test_cache_is_bounded(results_dir):
    limit = 1000
    storage = FileResultStorage(results_dir, cache_bytes=limit)
    for job_id in range(1, 101):
        storage.save(job_id, b"x" * 100)
        assert _cached_bytes(storage) <= limit
        assert storage._cache.bytes == _cached_bytes(storage)
    for job_id in range(1, 101):
        assert storage.load(job_id) == b"x" * 100
        assert _cached_bytes(storage) <= limit
    # Least recently used first out: the last ten loaded are the ones kept.
    assert list(storage._cache) == list(range(91, 101))


def test_cache_skips_big_results(results_dir):
    storage = FileResultStorage(results_dir, cache_bytes=800)
    storage.save(1, b"y" * 101)  # more than an eighth of the limit: never cached
    storage.load(1)
    assert storage._cache.bytes == 0
    assert storage.load(1) == b"y" * 101


def test_cache_accounts_for_overwrites(results_dir):
    storage = FileResultStorage(results_dir, cache_bytes=1000)
    storage.save(1, b"a" * 100)
    storage.save(1, b"b" * 10)
    assert storage._cache.bytes == 10 == _cached_bytes(storage)
