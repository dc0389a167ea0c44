"""What an image file is, from its leading bytes (a file's name may lie): one sniffer for every reader.

The evidence readers (C2PA, metadata) and the image condition reader each accept a subset of
these formats; they narrow :func:`sniff_image`'s answer rather than read the bytes again their
own way. This module imports nothing from the pipeline.
"""

from __future__ import annotations

import re

#: the MIME type of each format :func:`sniff_image` names
IMAGE_MIMES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "JXL": "image/jxl",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
    "JPEG2000": "image/jp2",
    "SVG": "image/svg+xml",
}

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")


def sniff_image(data: bytes) -> str | None:
    """The image format ``data``'s magic bytes name (a key of :data:`IMAGE_MIMES`), or None."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JXL"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        return None
    if _looks_like_svg(data):
        return "SVG"
    return None


def _looks_like_svg(data: bytes) -> bool:
    """An XML document whose root element is ``<svg``: the prolog (declaration, comments, doctype) may come first."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return False
    match = re.search(rb"<([A-Za-z][\w:.\-]*)", re.sub(rb"<!--.*?-->|<\?.*?\?>|<!DOCTYPE[^>]*>", b"", head, flags=re.S))
    return match is not None and match.group(1).split(b":")[-1].lower() == b"svg"


__all__ = ["IMAGE_MIMES", "sniff_image"]
