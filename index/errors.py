"""The one error hierarchy of Lamina.

Every layer raises these; the service maps each class to one gRPC status code
(`lamina.service.status`), the CLI prints the message. Messages name the offending
value so that a caller can fix the request without reading the code.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class of every error Lamina raises on purpose."""


class InvalidArgument(LaminaError, ValueError):
    """The request is malformed: wrong dimension, empty query, k <= 0, bad metadata, ..."""


class NotFound(LaminaError, KeyError):
    """A named collection, document or index does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AlreadyExists(LaminaError):
    """Creating something whose name is taken."""


class ResourceExhausted(LaminaError):
    """A request exceeds a configured limit (batch size, k, message size)."""


class FailedPrecondition(LaminaError):
    """The operation is valid but the system is not in a state to run it."""


class CorruptIndex(LaminaError):
    """An on-disk index file fails its checksum or does not match its manifest.

    Never fatal for a collection: it rebuilds the index from the store.
    """


class Unauthenticated(LaminaError):
    """The caller sent no API key, or one the server does not know."""


class PermissionDenied(LaminaError):
    """The caller's key does not hold the right the operation needs."""


class DataLoss(LaminaError):
    """Stored data failed its checksum and could not be read or repaired from another copy."""


class Unavailable(LaminaError):
    """A backend the request needs is down or timed out (a generator endpoint, a shard): retry later."""


class DeadlineExceeded(LaminaError):
    """The request's deadline passed, or its caller cancelled it, before the work finished."""


class StoreCorrupted(DataLoss):
    """The store (RocksDB) is damaged, or holds less than it acknowledged: it refuses to open rather
    than serve an older database. The message names the damage and the way out (`lamina store repair`
    or `lamina restore` of a backup)."""


class StoreLocked(FailedPrecondition):
    """Another process (a running `lamina serve`?) holds the data directory's store."""
