"""A tiny stdlib HTTP client for what the SDK has no method for (list threads, probes, malformed bodies)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class Response:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status_code = status
        self.content = body
        self.headers = headers

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class Http:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None,
                content: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = content if content is not None else (json.dumps(json_body).encode() if json_body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return Response(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return Response(e.code, e.read(), dict(e.headers))

    def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body: Any = None, content: bytes | None = None) -> Response:
        return self.request("POST", path, json_body=json_body, content=content)
