"""Request errors as TF Serving reports them: a gRPC status code, and for
REST the HTTP status TF Serving maps that code to, with {"error": msg}."""

from __future__ import annotations

import grpc

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}


class ServeError(Exception):
    """A request the server answers with `code` and `message`; the server
    itself keeps serving."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message: str) -> ServeError:
    return ServeError(grpc.StatusCode.UNAVAILABLE, message)
