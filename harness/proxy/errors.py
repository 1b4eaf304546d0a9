"""API errors with the exact messages and status codes of Toxiproxy 2.x (api.go).

Clients (toxiproxy-python, toxiproxy-cli, our harness) branch on the status and sometimes show the
``error`` text, so both are copied as facts; the body is ``{"error": ..., "status": ...}``.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the API turns into ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def joined(self, detail: str) -> ApiError:
        """Toxiproxy's ``joinError``: "<message>: <detail>" with the same status."""
        return ApiError(f"{self.message}: {detail}", self.status)

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)


def internal(message: str) -> ApiError:
    """Errors Toxiproxy does not classify (a failed listen, say) come back as 500."""
    return ApiError(message, 500)
