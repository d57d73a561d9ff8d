"""Validate HTTP exchanges against the Beacon-API OpenAPI spec in ../shared/beacon-APIs (openapi-core).

`BeaconAPISpec.check_response(method, path, query, status, body, headers)` raises when the answer
does not match the operation's response schema (types, required fields, patterns such as uint64
decimal strings and 0x hex); `check_request` does the same for a request body. The spec is loaded
once per process (about a second).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urlencode

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.conftest import shared_path

HOST = "http://localhost"


@cache
def _load(path: str) -> OpenAPI:
    return OpenAPI.from_file_path(path)


class BeaconAPISpec:
    def __init__(self) -> None:
        self.api = _load(str(shared_path("beacon-APIs", "beacon-node-oapi.yaml")))

    @staticmethod
    def _request(
        method: str,
        path: str,
        query: dict[str, str] | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> MockRequest:
        raw = json.dumps(body).encode() if body is not None else None
        return MockRequest(
            HOST,
            method.lower(),
            path,
            args=query or {},
            data=raw,
            headers=headers or {},
            content_type="application/json",
        )

    def check_response(
        self,
        method: str,
        path: str,
        status: int,
        body: Any,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        request = self._request(method, path, query)
        response = MockResponse(
            json.dumps(body).encode(),
            status_code=status,
            headers=headers or {},
            content_type="application/json",
        )
        self.api.validate_response(request, response)

    def check_request(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.api.validate_request(self._request(method, path, query, body, headers))


def url(base: str, path: str, query: dict[str, str] | None = None) -> str:
    return base + path + ("?" + urlencode(query) if query else "")
