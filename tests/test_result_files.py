"""ResultFiles: atomic result files, a bounded read cache, checked reads, what a restart finds."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from store_faults import FaultyWrite

from lestats.stores.result_files import NotAResult, ResultFiles


def make(directory: Path, cache_bytes: int = 16 << 20) -> ResultFiles:
    directory.mkdir(exist_ok=True)
    return ResultFiles(directory, cache_bytes)


def test_save_load_round_trip(results_dir):
    storage = make(results_dir)
    storage.save(1, b'{"Ohio": 32.0}')
    storage.save(2, '{"Zürich": 1.5}'.encode())
    assert storage.load(1) == b'{"Ohio": 32.0}'
    assert storage.load(2) == '{"Zürich": 1.5}'.encode()
    assert (results_dir / "job_id_1.json").read_bytes() == b'{"Ohio": 32.0}'
    # A fresh instance (empty cache) reads the same bytes from disk.
    assert make(results_dir).load(2) == '{"Zürich": 1.5}'.encode()


def test_save_overwrites(results_dir):
    storage = make(results_dir)
    storage.save(3, b"[1]")
    storage.save(3, b"[2, 2]")
    assert storage.load(3) == b"[2, 2]"
    assert make(results_dir).load(3) == b"[2, 2]"


@pytest.mark.parametrize("job_id", [0, -1, 10**18, "../x", "7", 7.0, True])
def test_only_an_id_in_range_makes_a_file_name(results_dir, job_id):
    storage = make(results_dir)
    assert Path(storage.name(7)) == results_dir / "job_id_7.json"
    with pytest.raises(ValueError, match="not a job id"):
        storage.name(job_id)
    with pytest.raises(ValueError, match="not a job id"):
        storage.save(job_id, b"{}")
    assert list(results_dir.iterdir()) == []


def test_a_symlink_is_not_followed(results_dir, tmp_path):
    storage = make(results_dir, cache_bytes=0)
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"secret": 1}')
    (results_dir / "job_id_1.json").symlink_to(secret)
    with pytest.raises(NotAResult, match="symlink"):
        storage.load(1)
    assert not storage.valid(1)
    # A symlink planted at the temporary name is not written through either (a save over a
    # file already there goes through that name).
    (results_dir / "job_id_2.json").write_bytes(b"[0]")
    (results_dir / ".job_id_2.json.tmp").symlink_to(secret)
    with pytest.raises(OSError, match="symbolic links"):
        storage.save(2, b"[2]")
    assert secret.read_bytes() == b'{"secret": 1}'


def test_a_save_writes_an_unnamed_file_and_links_it_whole(results_dir, tmp_path):
    storage = make(results_dir)
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"secret": 1}')
    # The temporary name is never used: a symlink planted there is neither followed nor in the way.
    (results_dir / ".job_id_3.json.tmp").symlink_to(secret)
    storage.save(3, b"[3]")
    assert (results_dir / "job_id_3.json").read_bytes() == b"[3]"
    assert not (results_dir / "job_id_3.json").is_symlink()
    assert secret.read_bytes() == b'{"secret": 1}'
    assert (results_dir / ".job_id_3.json.tmp").is_symlink()
    storage.close()


def test_without_unnamed_files_saves_go_by_a_temporary_name(results_dir, monkeypatch, tmp_path):
    storage = make(results_dir)
    linked = []

    def no_proc(source: str, target: str, **_: object) -> None:
        linked.append(target)
        raise FileNotFoundError(2, "No such file or directory", source)  # no /proc mounted

    monkeypatch.setattr(os, "link", no_proc)
    storage.save(1, b"[1]")
    storage.save(2, b"[2]")
    assert linked == ["job_id_1.json"]  # tried once, then by name only
    assert storage.load(1) == b"[1]"
    assert make(results_dir).load(2) == b"[2]"
    assert sorted(p.name for p in results_dir.iterdir()) == ["job_id_1.json", "job_id_2.json"]
    secret = tmp_path / "secret.json"
    secret.write_bytes(b"{}")
    (results_dir / ".job_id_4.json.tmp").symlink_to(secret)
    with pytest.raises(OSError, match="symbolic links"):
        storage.save(4, b"[4]")


def test_a_write_that_fails_leaves_nothing_behind(results_dir):
    faults = FaultyWrite()
    results_dir.mkdir()
    storage = ResultFiles(results_dir, 1 << 20, faults)
    faults.results_full.set()
    with pytest.raises(OSError, match="No space left"):
        storage.save(1, b"[1]")
    assert list(results_dir.iterdir()) == []
    faults.results_full.clear()
    storage.save(1, b"[1]")
    assert [p.name for p in results_dir.iterdir()] == ["job_id_1.json"]
    storage.close()


def test_a_file_that_is_not_json_is_not_a_result(results_dir):
    storage = make(results_dir, cache_bytes=0)
    (results_dir / "job_id_1.json").write_bytes(b"not json")
    with pytest.raises(NotAResult, match="JSON"):
        storage.load(1)
    os.mkfifo(results_dir / "job_id_2.json")
    with pytest.raises(NotAResult, match="regular"):
        storage.load(2)  # a FIFO with no writer: refused, not waited on


def test_no_temporary_file_left_after_saves(results_dir):
    storage = make(results_dir)
    for job_id in range(1, 51):
        storage.save(job_id, b"{}" * job_id)
    assert sorted(p.name for p in results_dir.iterdir()) == sorted(
        f"job_id_{i}.json" for i in range(1, 51)
    )


def test_failed_save_leaves_no_temporary_file(results_dir):
    storage = make(results_dir)
    # The final name is a directory: the rename fails after the temporary file was written.
    (results_dir / "job_id_5.json").mkdir()
    with pytest.raises(OSError, match="job_id_5"):
        storage.save(5, b"{}")
    assert [p.name for p in results_dir.iterdir()] == ["job_id_5.json"]


def test_leftover_temporary_files_removed_by_the_scan(results_dir):
    results_dir.mkdir()
    (results_dir / ".job_id_4.json.tmp").write_bytes(b'{"half')
    (results_dir / ".job_id_17.json.tmp").write_bytes(b"")
    (results_dir / "job_id_3.json").write_bytes(b"{}")
    (results_dir / "notes.tmp").write_bytes(b"not ours")
    assert list(make(results_dir).scan()) == [3]
    assert sorted(p.name for p in results_dir.iterdir()) == ["job_id_3.json", "notes.tmp"]


def test_a_reader_never_sees_a_partial_file(results_dir):
    storage = make(results_dir)
    reader = make(results_dir, cache_bytes=0)  # no cache: every load hits the disk
    payloads = [b'"' + bytes([ord("a") + i]) * (1 << 20) + b'"' for i in range(3)]
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
                except NotAResult:
                    bad.append(-1)
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
                Path(storage.name(2)).unlink()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert bad == []
    assert reads["full"] > 0


def test_valid(results_dir):
    storage = make(results_dir)
    assert not storage.valid(1)
    storage.save(1, b"{}")
    assert storage.valid(1)
    assert not storage.valid(2)
    Path(storage.name(1)).unlink()
    assert not storage.valid(1)
    Path(storage.name(1)).write_bytes(b"")  # renamed into place, data lost to a power failure
    assert not storage.valid(1)


def test_scan_lists_result_ids_in_order(results_dir):
    storage = make(results_dir)
    assert list(storage.scan()) == []
    for job_id in (3, 12, 9):
        storage.save(job_id, b"{}")
    # Files that only look like results do not count.
    for name in ("job_id_99.json.bak", "job_id_0100.json", "job_id_x.json", ".job_id_77.json"):
        (results_dir / name).write_bytes(b"{}")
    (results_dir / "journal.jsonl").write_bytes(b"")
    assert list(storage.scan()) == [3, 9, 12]


def test_deleted_file_is_file_not_found(results_dir):
    make(results_dir).save(1, b"{}")
    storage = make(results_dir)
    assert storage.load(1) == b"{}"
    Path(storage.name(1)).unlink()
    fresh = make(results_dir)
    with pytest.raises(FileNotFoundError):
        fresh.load(1)
    with pytest.raises(FileNotFoundError):
        fresh.load(2)


def test_deleted_file_may_still_be_served_from_the_cache(results_dir):
    storage = make(results_dir)
    storage.save(1, b"[1]")
    Path(storage.name(1)).unlink()
    assert storage.load(1) == b"[1]"


def _cached_bytes(storage: ResultFiles) -> int:
    return sum(map(len, storage._cache.values()))


def test_cache_is_bounded(results_dir):
    limit = 1000
    storage = make(results_dir, cache_bytes=limit)
    for job_id in range(1, 101):
        storage.save(job_id, b"[" + b"1" * 98 + b"]")
        assert _cached_bytes(storage) <= limit
        assert storage._cache.bytes == _cached_bytes(storage)
    for job_id in range(1, 101):
        assert storage.load(job_id) == b"[" + b"1" * 98 + b"]"
        assert _cached_bytes(storage) <= limit
    # Least recently used first out: the last ten loaded are the ones kept.
    assert list(storage._cache) == list(range(91, 101))


def test_cache_skips_big_results(results_dir):
    storage = make(results_dir, cache_bytes=800)
    storage.save(1, b"[" + b"2" * 99 + b"]")  # more than an eighth of the limit: never cached
    storage.load(1)
    assert storage._cache.bytes == 0
    assert storage.load(1) == b"[" + b"2" * 99 + b"]"


def test_cache_accounts_for_overwrites(results_dir):
    storage = make(results_dir, cache_bytes=1000)
    storage.save(1, b"[" + b"3" * 98 + b"]")
    storage.save(1, b"[" + b"4" * 8 + b"]")
    assert storage._cache.bytes == 10 == _cached_bytes(storage)
