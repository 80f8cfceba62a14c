"""Faults for a FileStore, through its `write` seam: full disks, failing and short writes."""

from __future__ import annotations

import os
import threading
from pathlib import Path


class FaultyWrite:
    """`os.write` for a FileStore that fails on demand, told apart by the file a descriptor names.

    - result files (unnamed until linked, `#<inode> (deleted)`, or `.job_id_N.json.tmp`) raise
      `results_error` (ENOSPC) while `results_full` is set;
    - the journal raises `journal_error` (EIO) while `journal_broken` is set; with
      `journal_torn` set instead, it first writes `torn_bytes` bytes of the line, then raises
      ENOSPC on the next call (the disk filled up in the middle of a line);
    - the compacted journal (`journal.jsonl.tmp`) writes half and then fails with ENOSPC while
      `compaction_full` is set;
    - `short`, if set, caps every successful write at that many bytes (short writes).
    """

    def __init__(self) -> None:
        self.results_full = threading.Event()
        self.journal_broken = threading.Event()
        self.journal_torn = threading.Event()
        self.compaction_full = threading.Event()
        self.journal_error = OSError(5, "Input/output error")
        self.results_error = OSError(28, "No space left on device")
        self.torn_bytes = 10
        self.short: int | None = None
        self.refused = 0

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        name = Path(f"/proc/self/fd/{fd}").readlink().name
        if name == "journal.jsonl":
            if self.journal_broken.is_set():
                raise self.journal_error
            if self.journal_torn.is_set():
                if len(data) > self.torn_bytes:
                    return os.write(fd, bytes(data[: self.torn_bytes]))
                raise OSError(28, "No space left on device")
        if name == "journal.jsonl.tmp" and self.compaction_full.is_set():
            if len(data) > 1:
                return os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")
        if name.startswith((".job_id_", "#")) and self.results_full.is_set():
            self.refused += 1
            raise self.results_error
        if self.short is not None:
            data = data[: self.short]
        return os.write(fd, data)
