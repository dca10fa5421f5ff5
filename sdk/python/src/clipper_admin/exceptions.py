"""The one error type of clipper_admin, as in Clipper."""

from __future__ import annotations

import grpc


class ClipperException(Exception):
    """An operation failed. `str(error)` is the server's message; `code` is the
    gRPC status code when the error came from a server."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def from_rpc_error(error: grpc.RpcError) -> ClipperException:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    if not details:
        details = f"{code.name if code else 'UNKNOWN'}: the server gave no message"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        # Transport failures carry grpc's own text; the code says what happened.
        return ClipperException(f"{details} ({code.name})", code)
    return ClipperException(details, code)
