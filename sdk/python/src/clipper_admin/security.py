"""API tokens and TLS for the admin API (docs/security.md).

The token travels as gRPC metadata `authorization: Bearer <token>` on every
call; it is never logged. TLS is used when a CA file is given, mutual TLS
when a client certificate and key are given too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the token to every call. An interceptor rather than call
    credentials: grpc refuses call credentials on insecure channels, and the
    one-machine default is an insecure loopback channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "_BearerInterceptor(<token hidden>)"

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [m for m in (details.metadata or []) if m[0] != "authorization"]
        metadata.append(self._header)
        return _CallDetails(  # type: ignore[return-value]
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        return continuation(self._details(details), requests)


class ChannelSecurity:
    """Token and TLS files for the admin channels; unset values come from
    CLIPPER_TOKEN, CLIPPER_TLS_CA, CLIPPER_TLS_CERT and CLIPPER_TLS_KEY."""

    def __init__(
        self,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self._token = token or os.environ.get("CLIPPER_TOKEN") or None
        self.tls_ca = tls_ca or os.environ.get("CLIPPER_TLS_CA") or None
        self.tls_cert = tls_cert or os.environ.get("CLIPPER_TLS_CERT") or None
        self.tls_key = tls_key or os.environ.get("CLIPPER_TLS_KEY") or None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("tls_cert needs tls_ca (the CA of the services' certificates)")

    def __repr__(self) -> str:
        token = "<set>" if self._token else None
        return f"ChannelSecurity(token={token}, tls_ca={self.tls_ca!r}, tls_cert={self.tls_cert!r})"

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def channel(self, address: str, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
        if self.tls_ca is None:
            channel = grpc.insecure_channel(address, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(self.tls_ca),
                private_key=_read(self.tls_key) if self.tls_key else None,
                certificate_chain=_read(self.tls_cert) if self.tls_cert else None,
            )
            channel = grpc.secure_channel(address, credentials, options=options)
        if self._token is None:
            return channel
        return grpc.intercept_channel(channel, _BearerInterceptor(self._token))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
