"""The generation parameters that image tools write into their files, as evidence records.

One record per tool found, kind ``generation-parameters``, strength ``declared`` (anyone can
write these fields), with the parameters in ``detail`` under shared names where the tool has
them: ``prompt``, ``negative_prompt``, ``steps``, ``sampler``, ``scheduler``, ``cfg_scale``,
``seed``, ``width``, ``height``, ``model``, ``model_hash``.

* AUTOMATIC1111 (and its forks): PNG text ``parameters``, or EXIF ``UserComment`` / a JPEG
  comment in JPEG and WebP -> ``Stable Diffusion (AUTOMATIC1111)``; a JSON ``parameters`` from
  Fooocus or SwarmUI -> ``Fooocus`` / ``SwarmUI``;
* ComfyUI: PNG text ``prompt`` (the API graph) and ``workflow`` (the editor's graph), or EXIF
  ``Model``/``Make`` fields ``prompt:{...}`` / ``workflow:{...}`` in WebP -> ``ComfyUI``;
* InvokeAI: ``invokeai_metadata`` (3.x+), ``sd-metadata`` and ``Dream`` (2.x) -> ``InvokeAI``;
* NovelAI: ``Software`` "NovelAI" with its ``Comment`` JSON -> ``NovelAI``; the Ed25519
  ``signed_hash`` is checked against the configured NovelAI public key: valid -> ``signed``,
  present but failing -> ``invalid``, absent (or no key configured) -> ``declared``;
* Midjourney: a description (PNG ``Description``, EXIF ``ImageDescription``, XMP
  ``dc:description``) with a ``Job ID`` -> ``Midjourney``.

NovelAI's public key is not shipped: :data:`NOVELAI_PUBLIC_KEY` is None until someone confirms
the published key, and the layout of the signed message (:func:`novelai_signed_message`) follows
NovelAI's published verifier as remembered, unconfirmed. Without a key a signature is reported,
not judged, so a real NovelAI image is never called tampered because of a wrong key.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import shlex
from typing import Any

import numpy as np

from provenance.evidence.base import Evidence, EvidenceReader, EvidenceSample
from provenance.evidence.metadata import clip, image_metadata, looks_like_a1111

#: NovelAI's Ed25519 public key (32 raw bytes), or None: not confirmed here, so not guessed.
#: Pass ``novelai_public_key`` (bytes, base64 or hex) to the reader to verify signatures.
NOVELAI_PUBLIC_KEY: bytes | None = None

#: the longest prompt kept in a record's detail
MAX_PROMPT_CHARS = 2000
#: the most of a parameter text parsed (a real AUTOMATIC1111 block is a few kB)
MAX_PARAMETER_TEXT = 256 * 1024
#: graph nodes looked at in a ComfyUI prompt or workflow
MAX_GRAPH_NODES = 5000

A1111 = "Stable Diffusion (AUTOMATIC1111)"

# AUTOMATIC1111's own "key: value," pattern, with the key's length bounded so that a long line
# with no colon costs linear time, not quadratic backtracking
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]{0,63}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_KEYS = {
    "Steps": ("steps", int),
    "Sampler": ("sampler", str),
    "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Model hash": ("model_hash", str),
    "Model": ("model", str),
    "Version": ("version", str),
    "Denoising strength": ("denoising_strength", float),
}
_JOB_ID = re.compile(r"Job ID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.IGNORECASE)


def _number(value: Any, kind: type) -> int | float | None:
    """``value`` as an int or a finite float (JSON and text both), else None."""
    if isinstance(value, bool):
        return None
    try:
        if kind is int:
            if isinstance(value, float):
                return int(value) if math.isfinite(value) and value.is_integer() else None
            return int(str(value).strip()) if len(str(value)) < 40 else None
        number = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any, limit: int = 200) -> str | None:
    """A string field, clipped; None for anything that is not a non-empty string."""
    return clip(value.strip(), limit) if isinstance(value, str) and value.strip() else None


def _clean(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail without empty values."""
    return {k: v for k, v in detail.items() if v not in (None, "", [], {})}


def _json(text: str, what: str, sample: EvidenceSample) -> Any:
    """``text`` parsed as JSON, or None with a note (not JSON, or nested past the parser's depth)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        sample.note(f"generation-parameters: {what} is not JSON ({type(exc).__name__}); skipped")
        return None


# -- AUTOMATIC1111 ----------------------------------------------------------------------------


def parse_a1111(text: str) -> dict[str, Any] | None:
    """AUTOMATIC1111's parameter block: prompt, ``Negative prompt:``, then the ``Steps: ...`` line.
    None when there is no such line (then it is not that tool's block)."""
    text = text.replace("\r\n", "\n").strip()
    # the parameter line is the last that starts "Steps: <n>"; found from the end, so a prompt of
    # megabytes costs one scan and only its head is kept
    at = text.rfind("\nSteps: ") + 1  # 0 when there is none: then only a block that starts with it
    if not re.match(r"Steps: \d", text[at : at + 8]):
        return None
    pairs = _A1111_PARAM.findall(text[at : at + 64 * 1024].replace("\n", ", "))
    if len(pairs) < 3:
        return None
    lines = text[:at][:MAX_PARAMETER_TEXT].split("\n")
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    detail: dict[str, Any] = {
        "prompt": clip("\n".join(prompt).strip(), MAX_PROMPT_CHARS),
        "negative_prompt": clip("\n".join(negative).strip(), MAX_PROMPT_CHARS),
    }
    other: dict[str, str] = {}
    for key, raw in pairs:
        key, value = key.strip(), raw.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = str(json.loads(value))
            except ValueError:
                value = value[1:-1]
        if key == "Size":
            match = re.fullmatch(r"(\d{1,6})x(\d{1,6})", value)
            if match:
                detail["width"], detail["height"] = int(match[1]), int(match[2])
        elif key in _A1111_KEYS:
            name, kind = _A1111_KEYS[key]
            detail[name] = _number(value, kind) if kind is not str else clip(value, 200)
        elif len(other) < 40:
            other[clip(key, 64)] = clip(value, 200)
    detail["other"] = other
    return _clean(detail)


# -- ComfyUI ----------------------------------------------------------------------------------


def _comfy_nodes(graph: Any) -> dict[str, tuple[str, dict[str, Any]]] | None:
    """The API graph's nodes as ``{id: (class_type, inputs)}``; None when it is not one."""
    if not isinstance(graph, dict):
        return None
    nodes = {}
    for node_id, node in list(graph.items())[:MAX_GRAPH_NODES]:
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            nodes[str(node_id)] = (node["class_type"], inputs if isinstance(inputs, dict) else {})
    return nodes or None


def _add_model_names(detail: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Checkpoint, UNet, LoRA, VAE and CLIP names from a loader node's inputs."""
    for key, value in inputs.items():
        if not isinstance(value, str) or not value.strip():
            continue
        if key in ("ckpt_name", "unet_name", "model_path"):
            bucket = "checkpoints"
        elif key == "lora_name":
            bucket = "loras"
        elif key == "vae_name":
            bucket = "vae"
        elif key.startswith("clip_name"):
            bucket = "clip"
        else:
            continue
        names = detail.setdefault(bucket, [])
        if len(names) < 20 and clip(value, 200) not in names:
            names.append(clip(value, 200))


def _sampler_settings(inputs: dict[str, Any]) -> dict[str, Any]:
    """Seed, steps, CFG, sampler, scheduler and denoise of a sampler node (literal values only:
    an input wired to another node is a link, not a value)."""
    return _clean(
        {
            "seed": _number(inputs.get("seed", inputs.get("noise_seed")), int),
            "steps": _number(inputs.get("steps"), int),
            "cfg_scale": _number(inputs.get("cfg"), float),
            "sampler": _text(inputs.get("sampler_name")),
            "scheduler": _text(inputs.get("scheduler")),
            "denoise": _number(inputs.get("denoise"), float),
        }
    )


def parse_comfy_prompt(graph: Any) -> dict[str, Any] | None:
    """Models, samplers and prompts from ComfyUI's API graph (the ``prompt`` chunk)."""
    nodes = _comfy_nodes(graph)
    if nodes is None:
        return None
    detail: dict[str, Any] = {}
    samplers: list[dict[str, Any]] = []
    texts: list[str] = []
    for class_type, inputs in nodes.values():
        _add_model_names(detail, inputs)
        if "Sampler" in class_type and ("steps" in inputs or "cfg" in inputs):
            settings = _sampler_settings(inputs)
            if settings and len(samplers) < 10:
                samplers.append({"node": clip(class_type, 100), **settings})
                if not texts:  # the first sampler's conditioning, followed one link back
                    for side in ("positive", "negative"):
                        link = inputs.get(side)
                        if isinstance(link, list) and link and str(link[0]) in nodes:
                            prompt = nodes[str(link[0])][1].get("text")
                            if isinstance(prompt, str):
                                detail[f"{side}_text"] = clip(prompt, MAX_PROMPT_CHARS)
        if class_type.startswith("CLIPTextEncode") and isinstance(inputs.get("text"), str) and len(texts) < 20:
            texts.append(clip(inputs["text"], MAX_PROMPT_CHARS))
    detail["prompt"] = detail.pop("positive_text", None) or (texts[0] if texts else None)
    detail["negative_prompt"] = detail.pop("negative_text", None)
    detail["samplers"] = samplers
    if samplers:
        detail.update({k: v for k, v in samplers[0].items() if k != "node"})
    detail["model"] = (detail.get("checkpoints") or [None])[0]
    detail["node_types"] = sorted({clip(c, 100) for c, _ in nodes.values()})[:60]
    return _clean(detail)


def parse_comfy_workflow(workflow: Any) -> dict[str, Any] | None:
    """The same from the editor's graph (the ``workflow`` chunk), by widget position."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return None
    detail: dict[str, Any] = {}
    samplers: list[dict[str, Any]] = []
    texts: list[str] = []
    types: set[str] = set()
    for node in workflow["nodes"][:MAX_GRAPH_NODES]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        kind, widgets = node["type"], node.get("widgets_values")
        types.add(clip(kind, 100))
        if not isinstance(widgets, list) or not widgets:
            continue
        first = widgets[0]
        if "CheckpointLoader" in kind or kind.lower().startswith("unetloader"):
            _add_model_names(detail, {"ckpt_name": first})
        elif kind.startswith("LoraLoader"):
            _add_model_names(detail, {"lora_name": first})
        elif kind == "VAELoader":
            _add_model_names(detail, {"vae_name": first})
        elif kind in ("KSampler", "KSamplerAdvanced") and len(samplers) < 10:
            # KSampler: seed, control, steps, cfg, sampler, scheduler, denoise; Advanced: add_noise first
            w = widgets[1:] if kind == "KSamplerAdvanced" else widgets
            names = ("seed", "control", "steps", "cfg", "sampler_name", "scheduler", "denoise")
            settings = _sampler_settings(dict(zip(names, w, strict=False)))
            if settings:
                samplers.append({"node": kind, **settings})
        elif kind.startswith("CLIPTextEncode") and isinstance(first, str) and len(texts) < 20:
            texts.append(clip(first, MAX_PROMPT_CHARS))
    if not types:
        return None
    detail["prompts"] = texts
    detail["samplers"] = samplers
    if samplers:
        detail.update({k: v for k, v in samplers[0].items() if k != "node"})
    detail["model"] = (detail.get("checkpoints") or [None])[0]
    detail["node_types"] = sorted(types)[:60]
    return _clean(detail)


# -- InvokeAI ---------------------------------------------------------------------------------


def parse_invokeai(meta: Any) -> dict[str, Any] | None:
    """``invokeai_metadata`` (InvokeAI 3 and later)."""
    if not isinstance(meta, dict):
        return None
    model = meta.get("model")
    if isinstance(model, dict):
        model_name = _text(model.get("name") or model.get("model_name"))
        base = _text(model.get("base") or model.get("base_model"))
        model_hash = _text(model.get("hash"))
    else:
        model_name, base, model_hash = _text(model), None, None
    return _clean(
        {
            "prompt": _text(meta.get("positive_prompt"), MAX_PROMPT_CHARS),
            "negative_prompt": _text(meta.get("negative_prompt"), MAX_PROMPT_CHARS),
            "seed": _number(meta.get("seed"), int),
            "steps": _number(meta.get("steps"), int),
            "cfg_scale": _number(meta.get("cfg_scale"), float),
            "sampler": _text(meta.get("scheduler")),
            "width": _number(meta.get("width"), int),
            "height": _number(meta.get("height"), int),
            "model": model_name,
            "model_base": base,
            "model_hash": model_hash,
            "generation_mode": _text(meta.get("generation_mode")),
            "version": _text(meta.get("app_version")),
        }
    )


def parse_sd_metadata(meta: Any) -> dict[str, Any] | None:
    """``sd-metadata`` (InvokeAI 2.x): the app, the model, and the image's settings."""
    if not isinstance(meta, dict) or not isinstance(meta.get("image", {}), dict):
        return None
    image = meta.get("image", {})
    if "invoke" not in str(meta.get("app_id", "")).lower() and not image:
        return None
    prompt = image.get("prompt")
    if isinstance(prompt, list):  # [{"prompt": ..., "weight": ...}, ...]
        prompt = " ".join(p["prompt"] for p in prompt[:20] if isinstance(p, dict) and isinstance(p.get("prompt"), str))
    return _clean(
        {
            "prompt": _text(prompt, MAX_PROMPT_CHARS),
            "seed": _number(image.get("seed"), int),
            "steps": _number(image.get("steps"), int),
            "cfg_scale": _number(image.get("cfg_scale"), float),
            "sampler": _text(image.get("sampler") or image.get("sampler_name")),
            "width": _number(image.get("width"), int),
            "height": _number(image.get("height"), int),
            "model": _text(meta.get("model_weights")),
            "model_hash": _text(meta.get("model_hash")),
            "version": _text(meta.get("app_version")),
        }
    )


def parse_dream(text: str) -> dict[str, Any] | None:
    """InvokeAI 2's ``Dream`` line: ``"prompt" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms``."""
    try:
        words = shlex.split(text[:MAX_PARAMETER_TEXT])
    except ValueError:  # an unclosed quote: not a Dream line
        return None
    if len(words) < 3 or not any(w in ("-s", "-S") for w in words):
        return None
    flags = {w: words[i + 1] for i, w in enumerate(words[:-1]) if re.fullmatch(r"-[a-zA-Z]", w)}
    return _clean(
        {
            "prompt": clip(words[0], MAX_PROMPT_CHARS),
            "steps": _number(flags.get("-s"), int),
            "seed": _number(flags.get("-S"), int),
            "width": _number(flags.get("-W"), int),
            "height": _number(flags.get("-H"), int),
            "cfg_scale": _number(flags.get("-C"), float),
            "sampler": _text(flags.get("-A")),
        }
    )


# -- NovelAI ----------------------------------------------------------------------------------


def novelai_signed_message(pixels: np.ndarray, comment: dict[str, Any]) -> bytes:
    """The bytes NovelAI's ``signed_hash`` signs: the RGB pixels (row-major, 8 bits) followed by
    the ``Comment`` JSON without ``signed_hash``, as ``json.dumps`` writes it with its defaults
    and the file's key order. As NovelAI's published verifier is remembered, not confirmed."""
    unsigned = {k: v for k, v in comment.items() if k != "signed_hash"}
    rgb = np.ascontiguousarray(pixels[:, :, :3], dtype=np.uint8)
    return rgb.tobytes() + json.dumps(unsigned).encode("utf-8")


def _public_key(key: bytes | str | None) -> bytes | None:
    """A 32-byte Ed25519 public key from raw bytes, base64 or hex; ValueError for anything else."""
    if key is None:
        return None
    if isinstance(key, str):
        text = key.strip()
        try:
            raw = (
                bytes.fromhex(text) if re.fullmatch(r"[0-9a-fA-F]{64}", text) else base64.b64decode(text, validate=True)
            )
        except (ValueError, binascii.Error):
            raise ValueError("novelai_public_key: not hex or base64") from None
    else:
        raw = bytes(key)
    if len(raw) != 32:
        raise ValueError(f"novelai_public_key: an Ed25519 public key is 32 bytes, got {len(raw)}")
    return raw


# -- the reader -------------------------------------------------------------------------------


class GenerationParametersReader(EvidenceReader):
    """Generation parameters of AUTOMATIC1111, ComfyUI, InvokeAI, NovelAI and Midjourney
    (see the module docstring); NovelAI's signature checked with ``novelai_public_key``."""

    name = "generation-parameters"
    modalities = ("image",)

    def __init__(self, novelai_public_key: bytes | str | None = NOVELAI_PUBLIC_KEY) -> None:
        self.novelai_public_key = _public_key(novelai_public_key)

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        """The tools' parameter records; unreadable fields become notes on ``sample``."""
        meta = image_metadata(sample)
        text, exif = meta.text, meta.exif
        records: list[Evidence] = []
        for found in (
            self._a1111(text, exif, meta.comment, sample),
            self._comfy(text, exif, sample),
            self._invokeai(text, sample),
            self._novelai(text, sample),
            self._midjourney(text, exif, meta, sample),
        ):
            if found is not None:
                records.append(found)
        for note in meta.notes:  # after the readers: the XMP is parsed on first use
            sample.note(note)
        return records

    @staticmethod
    def _record(source: str, detail: dict[str, Any], where: str) -> Evidence:
        return Evidence("generation-parameters", source, "generated", "declared", {"field": where, **detail})

    def _a1111(
        self, text: dict[str, str], exif: dict[str, str], comment: str | None, sample: EvidenceSample
    ) -> Evidence | None:
        if "parameters" in text:
            value = text["parameters"]
            if value.lstrip().startswith("{"):  # Fooocus and SwarmUI write JSON under the same keyword
                return self._json_parameters(value, sample)
            parsed = parse_a1111(value)
            if parsed is None:
                sample.note("generation-parameters: a 'parameters' text is not in AUTOMATIC1111's format; skipped")
                return None
            return self._record(A1111, parsed, "parameters")
        for where, value in (("UserComment", exif.get("UserComment")), ("comment", comment)):
            if value and looks_like_a1111(value):
                parsed = parse_a1111(value)
                if parsed is not None:
                    return self._record(A1111, parsed, where)
        return None

    def _json_parameters(self, value: str, sample: EvidenceSample) -> Evidence | None:
        data = _json(value, "'parameters'", sample)
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("sui_image_params"), dict):
            p = data["sui_image_params"]
            detail = {
                "prompt": _text(p.get("prompt"), MAX_PROMPT_CHARS),
                "negative_prompt": _text(p.get("negativeprompt"), MAX_PROMPT_CHARS),
                "model": _text(p.get("model")),
                "seed": _number(p.get("seed"), int),
                "steps": _number(p.get("steps"), int),
                "cfg_scale": _number(p.get("cfgscale"), float),
                "sampler": _text(p.get("sampler")),
                "width": _number(p.get("width"), int),
                "height": _number(p.get("height"), int),
            }
            return self._record("SwarmUI", _clean(detail), "parameters")
        version = str(data.get("version", ""))
        if "fooocus" in version.lower() or "fooocus_scheme" in data:
            detail = {
                "prompt": _text(data.get("prompt") or data.get("Prompt"), MAX_PROMPT_CHARS),
                "negative_prompt": _text(data.get("negative_prompt") or data.get("Negative Prompt"), MAX_PROMPT_CHARS),
                "model": _text(data.get("base_model") or data.get("Base Model")),
                "seed": _number(data.get("seed") or data.get("Seed"), int),
                "steps": _number(data.get("steps") or data.get("Steps"), int),
                "cfg_scale": _number(data.get("guidance_scale") or data.get("Guidance Scale"), float),
                "sampler": _text(data.get("sampler") or data.get("Sampler")),
                "version": _text(version),
            }
            return self._record("Fooocus", _clean(detail), "parameters")
        sample.note("generation-parameters: a JSON 'parameters' text from a tool not known here; skipped")
        return None

    def _comfy(self, text: dict[str, str], exif: dict[str, str], sample: EvidenceSample) -> Evidence | None:
        prompt, workflow = text.get("prompt"), text.get("workflow")
        where = "prompt"
        if prompt is None and workflow is None:
            # ComfyUI's WebP/JPEG savers write "prompt:{...}" and "workflow:{...}" into EXIF fields
            for value in exif.values():
                if value.startswith("prompt:") and prompt is None:
                    prompt, where = value[len("prompt:") :], "exif prompt"
                elif value.startswith("workflow:") and workflow is None:
                    workflow = value[len("workflow:") :]
        if prompt is None and workflow is None:
            return None
        detail = None
        if prompt is not None:
            graph = _json(prompt, "ComfyUI 'prompt'", sample)
            detail = parse_comfy_prompt(graph) if graph is not None else None
            if graph is not None and detail is None:
                sample.note("generation-parameters: a 'prompt' JSON that is not a ComfyUI graph; skipped")
        if detail is None and workflow is not None:
            graph = _json(workflow, "ComfyUI 'workflow'", sample)
            detail = parse_comfy_workflow(graph) if graph is not None else None
            where = "workflow"
            if graph is not None and detail is None:
                sample.note("generation-parameters: a 'workflow' JSON that is not a ComfyUI workflow; skipped")
        if detail is None:
            return None
        if workflow is not None:
            detail["has_workflow"] = True
        return self._record("ComfyUI", detail, where)

    def _invokeai(self, text: dict[str, str], sample: EvidenceSample) -> Evidence | None:
        if "invokeai_metadata" in text:
            data = _json(text["invokeai_metadata"], "'invokeai_metadata'", sample)
            # the keyword is InvokeAI's own: a record even when its JSON is unreadable
            return self._record(
                "InvokeAI", (parse_invokeai(data) or {}) if data is not None else {}, "invokeai_metadata"
            )
        if "sd-metadata" in text:
            data = _json(text["sd-metadata"], "'sd-metadata'", sample)
            parsed = parse_sd_metadata(data) if data is not None else None
            if parsed is not None:
                return self._record("InvokeAI", parsed, "sd-metadata")
        if "Dream" in text:
            parsed = parse_dream(text["Dream"])
            if parsed is not None:
                return self._record("InvokeAI", parsed, "Dream")
            sample.note("generation-parameters: a 'Dream' text that is not InvokeAI's; skipped")
        if any(k.startswith("invokeai_") for k in text):  # only the graph or workflow was written
            return self._record("InvokeAI", {}, next(k for k in text if k.startswith("invokeai_")))
        return None

    def _novelai(self, text: dict[str, str], sample: EvidenceSample) -> Evidence | None:
        software = text.get("Software", "")
        if not software.strip().lower().startswith("novelai"):
            return None
        detail: dict[str, Any] = {
            "software": clip(software, 200),
            "model": _text(text.get("Source")),
            "title": _text(text.get("Title")),
            "generation_time": _text(text.get("Generation time")),
        }
        comment = _json(text["Comment"], "NovelAI 'Comment'", sample) if "Comment" in text else None
        if not isinstance(comment, dict):
            detail["prompt"] = _text(text.get("Description"), MAX_PROMPT_CHARS)
            return self._record("NovelAI", _clean(detail), "Software")
        detail.update(
            {
                "prompt": _text(comment.get("prompt"), MAX_PROMPT_CHARS) or _text(text.get("Description")),
                "negative_prompt": _text(comment.get("uc"), MAX_PROMPT_CHARS),
                "steps": _number(comment.get("steps"), int),
                "cfg_scale": _number(comment.get("scale"), float),
                "seed": _number(comment.get("seed"), int),
                "sampler": _text(comment.get("sampler")),
                "scheduler": _text(comment.get("noise_schedule")),
                "width": _number(comment.get("width"), int),
                "height": _number(comment.get("height"), int),
                "request_type": _text(comment.get("request_type")),
            }
        )
        record = self._record("NovelAI", _clean(detail), "Comment")
        signature = comment.get("signed_hash")
        if signature is not None:
            self._verify_novelai(record, signature, comment, sample)
        return record

    def _verify_novelai(
        self, record: Evidence, signature: Any, comment: dict[str, Any], sample: EvidenceSample
    ) -> None:
        """Set ``record``'s strength from the Ed25519 ``signed_hash``: signed, invalid, or (not
        checked: no key, or no pixels) declared with the reason in detail."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        record.detail["signature"] = "present"
        if self.novelai_public_key is None:
            record.detail["signature"] = "not verified: no NovelAI public key configured"
            sample.note("generation-parameters: a NovelAI signature was not checked (no public key configured)")
            return
        try:
            raw = base64.b64decode(str(signature), validate=True)
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != 64:
            record.strength, record.detail["signature"] = "invalid", "malformed (not a 64-byte Ed25519 signature)"
            return
        pixels = sample.pixels
        if pixels is None:
            record.detail["signature"] = "not verified: the pixels could not be decoded"
            sample.note("generation-parameters: a NovelAI signature was not checked (pixels unreadable)")
            return
        try:
            Ed25519PublicKey.from_public_bytes(self.novelai_public_key).verify(
                raw, novelai_signed_message(pixels, comment)
            )
        except InvalidSignature:
            record.strength = "invalid"
            record.detail["signature"] = "does not validate: pixels or comment changed after signing, or another key"
            return
        record.strength = "signed"
        record.detail.update(signature="valid", trusted=True, public_key=self.novelai_public_key.hex())

    def _midjourney(
        self, text: dict[str, str], exif: dict[str, str], meta: Any, sample: EvidenceSample
    ) -> Evidence | None:
        candidates = [("Description", text.get("Description")), ("ImageDescription", exif.get("ImageDescription"))]
        candidates += [(q, v) for q, v in meta.xmp_fields().get("description", [])]
        for where, value in candidates:
            if not value:
                continue
            match = _JOB_ID.search(value[:MAX_PARAMETER_TEXT])
            if match is None:
                continue
            prompt, *options = value[: match.start()][:20_000].split(" --")
            flags: dict[str, str] = {}
            for option in options[:30]:  # "ar 16:9", "v 6.1", "niji 6", "tile"
                key, _, arg = option.strip().partition(" ")
                if re.fullmatch(r"[A-Za-z]{1,20}", key):
                    flags[key.lower()] = clip(arg.strip(), 100)
            version = flags.get("v") or flags.get("version")
            detail = {
                "job_id": match[1].lower(),
                "prompt": clip(prompt.strip(), MAX_PROMPT_CHARS),
                "parameters": flags,
                "version": f"niji {flags['niji']}".strip() if "niji" in flags else version,
                "author": _text(text.get("Author")),
            }
            return self._record("Midjourney", _clean(detail), where)
        return None


__all__ = [
    "NOVELAI_PUBLIC_KEY",
    "GenerationParametersReader",
    "novelai_signed_message",
    "parse_a1111",
    "parse_comfy_prompt",
    "parse_comfy_workflow",
    "parse_dream",
    "parse_invokeai",
    "parse_sd_metadata",
]
