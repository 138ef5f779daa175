"""The one mapping between Lamina's error hierarchy and gRPC status codes, both ways.

The server turns a `LaminaError` into its status code with the error's message as details;
anything else becomes INTERNAL with a generic message (the traceback stays in the server
log, under a reference the caller can quote). The client turns a status back into the same
`lamina.index.errors` class, so `except InvalidArgument` works on the in-process and the
remote API alike. Status codes with no Lamina class (UNAVAILABLE, DEADLINE_EXCEEDED,
INTERNAL, ...) come back as `ServiceError`, which keeps the code.
"""

from __future__ import annotations

import logging
import uuid

import grpc
from lamina.index.errors import (
    AlreadyExists,
    CorruptIndex,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LaminaError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

# Most specific first: `code_for` walks the exception's MRO, so a subclass added to
# errors.py later maps like its parent until it gets its own entry.
STATUS_CODES: dict[type[LaminaError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    # a corrupt index is rebuilt from the store; one that escapes means data could not be read
    CorruptIndex: grpc.StatusCode.DATA_LOSS,
    DataLoss: grpc.StatusCode.DATA_LOSS,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# UNAVAILABLE and DEADLINE_EXCEEDED come back as ServiceError: the transport raises them too (a server
# that is down), and the code is what a caller's retry logic reads.
_TRANSPORT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
ERROR_CLASSES: dict[grpc.StatusCode, type[LaminaError]] = {
    code: cls for cls, code in STATUS_CODES.items() if code not in _TRANSPORT_CODES}
ERROR_CLASSES[grpc.StatusCode.DATA_LOSS] = DataLoss  # CorruptIndex is a server-side state: DataLoss to a caller
# gRPC itself reports an out-of-range value with OUT_OF_RANGE; to a caller it is a bad argument.
ERROR_CLASSES[grpc.StatusCode.OUT_OF_RANGE] = InvalidArgument


class ServiceError(LaminaError):
    """A remote call failed with a status that no Lamina error describes (server down, deadline, bug)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details


def code_for(exc: BaseException) -> grpc.StatusCode:
    """The status code the server answers for `exc`: INTERNAL unless it is a LaminaError."""
    for cls in type(exc).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception raised while serving; logs what the caller will not see."""
    code = code_for(exc)
    if code is not grpc.StatusCode.INTERNAL:
        return code, str(exc)
    # Unexpected errors may carry paths or data: the caller gets a reference, the log the traceback.
    reference = uuid.uuid4().hex[:12]
    log.error("internal error (ref %s)", reference, exc_info=exc)
    return code, f"internal error (ref {reference}); see the server log"


def from_rpc_error(error: grpc.RpcError) -> LaminaError:
    """The Lamina error for a failed call, with the server's message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or ""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return ServiceError(code, details)
    return cls(details)
