"""Which operating-system errors pass by themselves, and the `StorageError` each one becomes."""

from __future__ import annotations

import errno

from lestats.errors import StorageError

TRANSIENT_ERRNOS = frozenset(
    (errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)
)
"""A full disk or quota, no free descriptors, no memory: retrying later may succeed."""

RETRY_AFTER = 1.0
"""Seconds a client is told to wait after a transient refusal."""


def storage_error(exc: OSError, what: str) -> StorageError:
    """The `StorageError` for `exc`, met while doing `what` ("journal not writable", ...)."""
    return StorageError(
        f"{what} ({exc.strerror or exc})",
        RETRY_AFTER,
        transient=exc.errno in TRANSIENT_ERRNOS,
    )
