"""run.py's defaults: safe (loopback only) and as spec §5 lists them."""

from __future__ import annotations

import gc
import os

from lestats.actors.engine import DEFAULT_MAX_PENDING, default_workers
from lestats.cli import YOUNG_COLLECTION_THRESHOLD, parse_args, startup_objects_frozen


def test_defaults_bind_loopback_only_and_match_the_spec():
    args = parse_args([])
    assert args.host == "127.0.0.1"
    assert args.port == 5000
    assert args.data is None
    assert args.results_dir == "results"
    assert args.log_file == "webserver.log"
    assert args.max_pending == DEFAULT_MAX_PENDING


def test_workers_default_to_tp_num_of_threads_then_the_cpu_count(monkeypatch):
    monkeypatch.setenv("TP_NUM_OF_THREADS", "3")
    assert default_workers() == 3
    assert parse_args([]).workers == 3
    monkeypatch.delenv("TP_NUM_OF_THREADS")
    assert parse_args([]).workers == (os.cpu_count() or 1)
    monkeypatch.setenv("TP_NUM_OF_THREADS", "zero")
    assert default_workers() == (os.cpu_count() or 1)


def test_objects_alive_at_startup_are_frozen_while_serving_then_released():
    class LongLived:
        pass

    before = LongLived()
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    with startup_objects_frozen():
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
        assert gc.get_freeze_count() > 0
        during = LongLived()
        frozen_ids = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
        assert id(before) not in frozen_ids
        assert id(during) in frozen_ids
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
    assert id(before) in {id(o) for o in gc.get_objects()}
