"""The batch wire format: multipart/mixed with one application/http part per call.

Each request part carries a Content-ID and a whole HTTP request (request line, headers, body); the answer
carries, for each, a part with Content-ID ``response-`` + that id and the whole HTTP response. googleapiclient
splits a part's response at the first CRLF CRLF and wants a reason phrase on the status line, so answers use
CRLF throughout and always a Content-Length.
"""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus


class BatchFormatError(ValueError):
    pass


@dataclass
class BatchPart:
    content_id: str | None
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class PartResponse:
    content_id: str | None
    status: int
    headers: dict[str, str]
    body: bytes


def _boundary(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/mixed":
        raise BatchFormatError("batch requests must be multipart/mixed")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BatchFormatError("multipart/mixed without a boundary")
    return boundary


def _split_head(blob: bytes) -> tuple[bytes, bytes]:
    """Headers and the rest, at the first blank line (CRLF or LF)."""
    candidates = [(blob.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if blob.find(sep) >= 0]
    if not candidates:
        return blob, b""
    index, sep = min(candidates)
    return blob[:index], blob[index + len(sep) :]


def _parse_headers(blob: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    for raw in blob.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        if raw[0] in " \t" and last:
            headers[last] += " " + raw.strip()
            continue
        name, _, value = raw.partition(":")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    boundary = _boundary(content_type).encode()
    segments = body.split(b"--" + boundary)
    parts: list[BatchPart] = []
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            break
        # The line break before a delimiter belongs to the delimiter.
        if segment.endswith(b"\r\n"):
            segment = segment[:-2]
        elif segment.endswith(b"\n"):
            segment = segment[:-1]
        segment = segment.lstrip(b"\r\n")
        part_head, http_message = _split_head(segment)
        part_headers = _parse_headers(part_head)
        if part_headers.get("content-type", "").split(";")[0].strip().lower() != "application/http":
            raise BatchFormatError("each part of a batch must be application/http")
        request_line, _, rest = http_message.partition(b"\n")
        words = request_line.decode("utf-8", "replace").strip().split(" ")
        if len(words) < 2:
            raise BatchFormatError("a batch part without a request line")
        method, target = words[0].upper(), words[1]
        head, inner_body = _split_head(rest)
        headers = _parse_headers(head)
        length = headers.get("content-length")
        if length and length.isdigit():
            inner_body = inner_body[: int(length)]
        split = urllib.parse.urlsplit(target)
        parts.append(
            BatchPart(
                content_id=part_headers.get("content-id"),
                method=method,
                path=split.path,
                query=split.query,
                headers=headers,
                body=inner_body,
            )
        )
    return parts


def response_content_id(content_id: str | None) -> str | None:
    if content_id is None:
        return None
    if content_id.startswith("<"):
        return "<response-" + content_id[1:]
    return "response-" + content_id


def render_batch(responses: list[PartResponse]) -> tuple[str, bytes]:
    """The Content-Type and body of a batch answer."""
    boundary = "batch_" + secrets.token_urlsafe(12).replace("-", "a").replace("_", "b")
    chunks: list[bytes] = []
    for response in responses:
        chunks.append(f"--{boundary}\r\n".encode())
        chunks.append(b"Content-Type: application/http\r\n")
        content_id = response_content_id(response.content_id)
        if content_id:
            chunks.append(f"Content-ID: {content_id}\r\n".encode())
        chunks.append(b"\r\n")
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else "Unknown"
        chunks.append(f"HTTP/1.1 {response.status} {reason}\r\n".encode())
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        for name, value in headers.items():
            chunks.append(f"{name}: {value}\r\n".encode())
        chunks.append(f"Content-Length: {len(response.body)}\r\n\r\n".encode())
        chunks.append(response.body)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)
