"""Lamina errors map to one gRPC status code each, and back to the same class."""

from __future__ import annotations

import logging

import grpc
import pytest

from lamina.index.errors import (
    AlreadyExists,
    CorruptIndex,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LaminaError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from lamina.service.status import ServiceError, code_for, from_rpc_error, to_status


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("cls, code", [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
])
def test_each_error_class_round_trips(cls, code):
    assert to_status(cls("collection 'x' does not exist")) == (code, "collection 'x' does not exist")
    back = from_rpc_error(FakeRpcError(code, "collection 'x' does not exist"))
    assert type(back) is cls and str(back) == "collection 'x' does not exist"


def test_a_corrupt_index_that_escapes_is_data_loss_to_the_caller():
    code, details = to_status(CorruptIndex("postings list 3 fails its checksum"))
    assert code is grpc.StatusCode.DATA_LOSS
    assert type(from_rpc_error(FakeRpcError(code, details))) is DataLoss


@pytest.mark.parametrize("cls, code", [(Unavailable, grpc.StatusCode.UNAVAILABLE),
                                       (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED)])
def test_server_side_unavailable_and_deadline_keep_their_code_as_service_errors(cls, code):
    assert to_status(cls("generator endpoint down"))[0] is code
    back = from_rpc_error(FakeRpcError(code, "generator endpoint down"))
    assert isinstance(back, ServiceError) and back.code is code


def test_subclasses_map_like_their_parent():
    class TooLong(InvalidArgument):
        pass

    assert code_for(TooLong("x")) is grpc.StatusCode.INVALID_ARGUMENT


def test_unexpected_errors_are_internal_and_logged_not_leaked(caplog):
    with caplog.at_level(logging.ERROR, logger="lamina.service.status"):
        code, details = to_status(RuntimeError("/secret/path exploded"))
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in details and "ref" in details
    reference = details.split("ref ")[1].split(")")[0]
    assert reference in caplog.text and "/secret/path exploded" in caplog.text
    assert code_for(LaminaError("base class")) is grpc.StatusCode.INTERNAL


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.INTERNAL])
def test_codes_without_a_lamina_class_become_service_errors(code):
    error = from_rpc_error(FakeRpcError(code, "why"))
    assert isinstance(error, ServiceError) and isinstance(error, LaminaError)
    assert error.code is code and str(error) == f"{code.name}: why"
