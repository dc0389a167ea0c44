"""Reading a request body, multipart or JSON, into samples and options, under the size and count caps.

Multipart (or a plain form, without files): every file part is a sample (its file name only
names it), except parts of the field ``same_author`` (files or text: the known samples of a
same-author check); the fields ``text`` and ``code`` (repeatable) are samples given as content; any other field is an
option. JSON: ``{"text": "..." | [...], "code": "..." | [...], "same_author": [...]}`` plus
the options.

Too many samples, or a file or text over the cap, is answered 413 naming what and the limit,
before any model work. A JSON body nested deeper than :data:`MAX_JSON_DEPTH` is answered 422
before it is parsed (the parser recurses once per level).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from provenance.service.samples import Input, clean_name
from provenance.service.settings import Settings

#: multipart fields that carry content rather than options
SAMPLE_FIELDS = ("text", "code")
#: the known samples of a same-author check (files or text)
KNOWN_FIELD = "same_author"
#: the deepest nesting of arrays and objects a JSON body may have (the API's own bodies are two deep)
MAX_JSON_DEPTH = 32
#: a JSON string (escapes included) or a bracket: what the nesting scan steps through
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


@dataclass
class Payload:
    """A parsed request: its samples, the known samples of a same-author check, and its options."""

    samples: list[Input] = field(default_factory=list)
    known: list[Input] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.samples) + len(self.known)


def too_large(message: str) -> HTTPException:
    return HTTPException(413, message)


async def read_payload(request: Request, settings: Settings) -> Payload:
    """The samples and options of ``request`` (multipart/form-data or application/json)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        payload = await _read_form(request, settings, multipart=content_type == "multipart/form-data")
    elif content_type in ("application/json", ""):
        payload = await _read_json(request)
    else:
        raise HTTPException(415, f"send multipart/form-data (files), a form, or application/json, not {content_type!r}")
    _check_limits(payload, settings)
    return payload


def _check_limits(payload: Payload, settings: Settings) -> None:
    if payload.n > settings.max_files:
        raise too_large(
            f"{payload.n} samples in one request, over the limit of {settings.max_files} (--max-files): "
            "send them in several requests"
        )
    for item in (*payload.samples, *payload.known):
        if item.size > settings.max_file_bytes:
            raise too_large(
                f"{item.name}: {item.size} bytes, over the {settings.max_file_bytes} byte limit per file "
                "(--max-file-bytes)"
            )


async def _read_form(request: Request, settings: Settings, *, multipart: bool) -> Payload:
    # Starlette's own parsers, called directly: a file-count overflow is then ours to answer 413
    # (Request.form would turn it into a 400), and text fields may be as large as a file
    limits = {"max_fields": settings.max_files + 64, "max_part_size": settings.max_file_bytes}
    parser = (
        MultiPartParser(request.headers, request.stream(), max_files=settings.max_files, **limits)
        if multipart
        else FormParser(request.headers, request.stream(), **limits)
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        status = 413 if exc.message.startswith(("Too many", "Part exceeded", "Field exceeded")) else 400
        limits = f" (--max-files {settings.max_files}, --max-file-bytes {settings.max_file_bytes})"
        raise HTTPException(status, exc.message + (limits if status == 413 else "")) from None
    payload = Payload()
    try:
        for position, (key, value) in enumerate(form.multi_items()):
            if isinstance(value, UploadFile):
                if value.size is not None and value.size > settings.max_file_bytes:
                    name = clean_name(value.filename, f"{key}[{position}]")
                    raise too_large(
                        f"{name}: {value.size} bytes, over the {settings.max_file_bytes} byte limit per file "
                        "(--max-file-bytes)"
                    )
                data = await value.read()
                item = Input(clean_name(value.filename, f"{key}[{position}]"), "file", data=data)
                (payload.known if key == KNOWN_FIELD else payload.samples).append(item)
            elif key in SAMPLE_FIELDS:
                if value.strip():
                    payload.samples.append(Input.of_text(value, key))  # type: ignore[arg-type]
            elif key == KNOWN_FIELD:
                payload.known.append(Input.of_text(value))
            else:
                payload.options[key] = value
    finally:
        await form.close()
    return payload


async def _read_json(request: Request) -> Payload:
    body = await request.body()
    if not body:
        raise HTTPException(422, 'send files as multipart/form-data, or JSON such as {"text": "..."}')
    if not nesting_within(body, MAX_JSON_DEPTH):
        raise HTTPException(422, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels (the limit)")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HTTPException(422, 'the JSON body must be an object, such as {"text": "..."}')
    payload = Payload()
    for kind in SAMPLE_FIELDS:
        for content in _strings(data.pop(kind, None), kind):
            payload.samples.append(Input.of_text(content, kind))  # type: ignore[arg-type]
    for content in _strings(data.pop(KNOWN_FIELD, None), KNOWN_FIELD):
        payload.known.append(Input.of_text(content))
    payload.options = data
    return payload


def nesting_within(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of the JSON text ``body`` nest at most ``limit`` deep, without
    parsing it (brackets inside strings do not count). Cheap when the body has few brackets at all."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return True
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        bracket = body[match.start()]
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                return False
        elif bracket in b"]}":
            depth -= 1
    return True


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise HTTPException(422, f'"{key}" must be a string or a list of strings')
    return values


__all__ = ["KNOWN_FIELD", "MAX_JSON_DEPTH", "SAMPLE_FIELDS", "Payload", "nesting_within", "read_payload"]
