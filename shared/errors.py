"""One error root; each class carries its HTTP status and OpenAI error type, mapped to JSON in one place."""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    status: ClassVar[int] = 500
    kind: ClassVar[str] = "server_error"
    # False tells the SDK not to retry: a retry cannot cure this error.
    retryable: ClassVar[bool | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequestError(ServiceError):
    status = 400
    kind = "invalid_request_error"
    retryable = False


class NotFoundError(ServiceError):
    status = 404
    kind = "invalid_request_error"
    retryable = False


class AuthenticationError(ServiceError):
    status = 401
    kind = "invalid_request_error"
    retryable = False


class VersionConflictError(ServiceError):
    """Another writer appended to the stream first. Retrying the command (re-read, re-decide) cures it."""

    status = 409
    kind = "conflict_error"

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(
            f"stream {stream_id} is no longer at version {expected_version}: another write got there first",
            code="version_conflict",
        )
        self.stream_id = stream_id
        self.expected_version = expected_version


class DuplicateEventError(ServiceError):
    """An event id was reused with different content: never a harmless retry."""

    status = 409
    kind = "invalid_request_error"
    retryable = False


class UnavailableError(ServiceError):
    status = 503
    kind = "server_error"


class ConfigError(Exception):
    """Bad configuration found at start-up; not an HTTP error."""
