"""An error the gateway answers with: an HTTP status and one sentence, shaped per protocol by
openai_api.error_body / ollama_api.error_body."""

from __future__ import annotations


class ApiError(Exception):
    # OpenAI's error types by status; `code` is the machine-readable reason.
    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             413: "invalid_request_error", 429: "rate_limit_error", 502: "upstream_error",
             503: "service_unavailable"}

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return self.TYPES.get(self.status, "api_error")
