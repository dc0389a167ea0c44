"""Dataset readers: a folder with one subfolder per label, or a JSONL file.

What a sample is never depends on its value: files from a folder are ``Path``s, JSONL
``"text"``/``"code"`` fields are content (:class:`~provenance.detectors.reading.Text`,
:class:`~provenance.detectors.reading.Code`) even when they happen to name a file, and
a JSONL ``"path"``/``"image"`` field is a ``Path`` inside the JSONL file's folder (a
dataset from elsewhere must not make the reader open files outside it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.core.errors import ProvenanceError
from provenance.detectors.code.syntax import CODE_SUFFIXES
from provenance.detectors.reading import Code, Text

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
SUFFIXES = {"image": IMAGE_SUFFIXES, "text": TEXT_SUFFIXES, "code": CODE_SUFFIXES}
#: JSONL fields that hold the sample, per modality
JSONL_FIELDS = {"image": ("path", "image"), "text": ("text",), "code": ("code", "text")}
#: JSONL fields that name a file (the others hold the content itself)
PATH_FIELDS = frozenset({"path", "image"})
#: what a content field's string becomes: content always, whatever it looks like
_CONTENT_TYPES = {"text": Text, "code": Code}


class DatasetError(ProvenanceError, ValueError):
    """A dataset path or file is unusable; the message says where and why."""


@dataclass
class LabelledSamples:
    """Samples (paths or in-memory texts), their labels, and where each came from."""

    samples: list[Any] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    modality: str = "image"
    #: per sample, its JSONL ``group`` field (instruction, task, prompt, document) or None
    groups: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def guess_modality(path: str | os.PathLike) -> str:
    """Guess ``image``, ``text`` or ``code`` from the files a dataset or sample holds."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_file() and p.suffix == ".jsonl":
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    if "code" in rec:
                        return "code"
                    if "text" in rec:
                        return "text"
                    return "image"
        raise DatasetError(f"{p}: empty JSONL file")
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()][:200]
    counts = {m: sum(f.suffix.lower() in s for f in files) for m, s in SUFFIXES.items()}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        raise DatasetError(f"{p}: no image, text or code files found; pass --modality")
    return best


def _read_folder(root: Path, modality: str) -> LabelledSamples:
    """A folder per label; a subfolder inside a label's folder is a group (``LABEL/GROUP/file``: the
    instruction, task, prompt or document the file answers, shared across labels by name)."""
    suffixes = SUFFIXES[modality]
    out = LabelledSamples()
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{root}: expected one subfolder per label, found none")
    for d in subdirs:
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        for f in files:
            out.samples.append(f)  # a Path: always read as a file, whatever its name looks like
            out.labels.append(d.name)
            out.names.append(str(f))
            rel = f.relative_to(d).parts
            out.groups.append(rel[0] if len(rel) > 1 else None)
    if not out.samples:
        raise DatasetError(f"{root}: no {modality} files ({', '.join(sorted(suffixes))}) in its subfolders")
    return out


def _resolve_inside(path: Path, lineno: int, key: str, value: Any, allow_outside: bool) -> Path:
    """The file a JSONL path field names, relative to the JSONL file's folder and kept inside it."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise DatasetError(f"{path}:{lineno}: {key!r} must be a non-empty file name, got {value!r}")
    folder = path.parent.resolve()
    # resolve() follows symlinks, so a link inside the folder that points out is caught too
    target = (folder / value).resolve()  # an absolute value replaces the folder
    if not allow_outside and not target.is_relative_to(folder):
        raise DatasetError(
            f"{path}:{lineno}: {key!r} {value!r} is outside the dataset folder {folder}; "
            "pass allow_outside=True to read files outside it"
        )
    return target


def _read_jsonl(
    path: Path,
    modality: str,
    allow_outside: bool = False,
    label_field: str = "label",
    group_field: str = "group",
) -> LabelledSamples:
    out = LabelledSamples()
    fields = JSONL_FIELDS[modality]
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or (label_field and rec.get(label_field) is None):
                raise DatasetError(f"{path}:{lineno}: each record needs a {label_field!r} field (the label)")
            key = next((k for k in fields if k in rec), None)
            if key is None:
                raise DatasetError(f"{path}:{lineno}: no {' or '.join(repr(k) for k in fields)} field")
            value = rec[key]
            if key in PATH_FIELDS:
                value = _resolve_inside(path, lineno, key, value, allow_outside)
            elif isinstance(value, str):
                # content, never a path: a text that happens to name a file is still that text
                value = _CONTENT_TYPES[modality](value)
            out.samples.append(value)
            out.labels.append(str(rec[label_field]) if label_field else str(rec.get("label", "")))
            out.names.append(str(rec.get("id", f"{path.name}:{lineno}")))
            out.groups.append(None if rec.get(group_field) is None else str(rec[group_field]))
    if not out.samples:
        raise DatasetError(f"{path}: no records")
    return out


def read_labelled(
    path: str | os.PathLike,
    modality: str | None = None,
    *,
    allow_outside: bool = False,
    label_field: str = "label",
    group_field: str = "group",
) -> LabelledSamples:
    """Read labelled samples from a folder-per-label tree or a ``.jsonl`` file.

    Samples from folders are file ``Path``s (read by the extractor). From JSONL, text
    and code samples are the strings themselves (as ``Text``/``Code``, never read as
    paths); image samples (``"path"`` or ``"image"``) are ``Path``s resolved relative to
    the JSONL file's folder. A path field that leaves that folder (an absolute path
    elsewhere, ``..``, a symlink pointing out) raises :class:`DatasetError` naming the
    line, unless ``allow_outside=True``.

    ``label_field`` names the JSONL field that is the label (``family`` for a vendor instead of
    a model); ``group_field`` the one that groups samples for ``auto``'s folds (an instruction,
    task or prompt). In a folder, ``LABEL/GROUP/file`` puts the file in group ``GROUP``.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    modality = modality or guess_modality(p)
    if modality not in SUFFIXES:
        raise DatasetError(f"unknown modality {modality!r}; choose image, text or code")
    if p.is_file():
        if p.suffix != ".jsonl":
            raise DatasetError(f"{p}: a dataset is a folder (one subfolder per label) or a .jsonl file")
        out = _read_jsonl(p, modality, allow_outside, label_field, group_field)
    else:
        if (label_field, group_field) != ("label", "group"):
            raise DatasetError(
                f"{p}: a folder's labels are its subfolders and its groups their subfolders; "
                "label and group fields apply to .jsonl files only"
            )
        out = _read_folder(p, modality)
    out.modality = modality
    return out


def read_outliers(
    path: str | os.PathLike, modality: str, *, allow_outside: bool = False, group_field: str = "group"
) -> LabelledSamples:
    """Samples of sources outside a model's label set (``train --outliers``): their labels are not used.

    The forms of :func:`read_labelled` (a folder per source, or JSONL, where a record needs no label),
    plus a plain folder of files.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if modality not in SUFFIXES:
        raise DatasetError(f"unknown modality {modality!r}; choose image, text or code")
    if p.is_file():
        if p.suffix != ".jsonl":
            raise DatasetError(f"{p}: outliers are a folder of files, a folder per source, or a .jsonl file")
        out = _read_jsonl(p, modality, allow_outside, label_field="", group_field=group_field)
    elif any(d.is_dir() and not d.name.startswith(".") for d in p.iterdir()):
        out = _read_folder(p, modality)
    else:
        out = LabelledSamples()
        for f in sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES[modality]):
            out.samples.append(f)
            out.labels.append("")
            out.names.append(str(f))
            out.groups.append(None)
        if not out.samples:
            raise DatasetError(f"{p}: no {modality} files ({', '.join(sorted(SUFFIXES[modality]))})")
    out.modality = modality
    return out
