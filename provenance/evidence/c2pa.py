"""C2PA manifests (Content Credentials): who signed a file, what made it, and whether the signature holds.

OpenAI, Adobe, Microsoft, Google and others sign the images their generators make with a C2PA
manifest: a claim (the generator, the actions, the ingredients), hashed over the file's bytes and
signed with an X.509 certificate. :class:`C2PAReader` reads the active manifest with
``c2pa-python`` and returns one record:

* ``signed`` when the signature and the hashes validate; ``detail["trusted"]`` says whether the
  signer chains to the user's trust anchors (``--trust-anchors FILE.pem``): without anchors
  nothing is trusted and the detail says "signer not on a trust list";
* ``invalid`` when validation fails (pixels edited after signing, a bad signature, a manifest
  store that cannot be parsed): possible tampering, never proof; the status codes say why.

A file without a manifest gives no record. Manifests are read from the file's own bytes only:
remote manifests and OCSP responders are never fetched (a note says a manifest is remote).
Besides the raster formats, SVG (a text file) can carry an embedded manifest, so text samples
that are SVG are read too; plain text and JavaScript have no C2PA embedding this library reads.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, ClassVar

from provenance.core.magic import IMAGE_MIMES, sniff_image
from provenance.evidence.base import Evidence, EvidenceReader, EvidenceSample

#: the JUMBF description box of a C2PA manifest store: "jumd" then the C2PA UUID
_JUMBF_C2PA = b"jumdc2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
#: SVG embeds the manifest store base64-encoded in this element
_SVG_C2PA = b"c2pa:manifest"
#: validation failures that say only that a credential is not on a trust list: the signature still holds
_TRUST_ONLY_CODES = frozenset({"signingCredential.untrusted", "timeStamp.untrusted"})
#: caps on what a record copies from a manifest (a hostile manifest may list thousands)
_MAX_ITEMS = 32
#: the largest manifest store (after decompression) the library may build, in megabytes
MAX_MANIFEST_MB = 32
_MAX_TEXT = 200
_IPTC_PREFIX = "digitalsourcetype/"
#: actions whose digitalSourceType says how the content was made, in order of preference
_MAKING_ACTIONS = ("c2pa.created", "c2pa.edited", "c2pa.placed", "c2pa.converted", "c2pa.opened")
#: digitalSourceTypes that say a model made (part of) the content
_AI_SOURCE_TYPES = frozenset(
    {
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
        "algorithmicallyEnhanced",
        "trainedAlgorithmicData",
    }
)

#: normalised source names: the first pattern that matches a manifest's names wins (most specific first)
SOURCE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"dall[\s\-·.]*e", "OpenAI DALL·E"),
    (r"\bsora\b", "OpenAI Sora"),
    (r"\bopenai\b|chatgpt|\bgpt[\s\-]?(?:4o|image|\d)", "OpenAI"),
    (r"firefly", "Adobe Firefly"),
    (r"photoshop", "Adobe Photoshop"),
    (r"lightroom", "Adobe Lightroom"),
    (r"\badobe\b", "Adobe"),
    (r"imagen", "Google Imagen"),
    (r"gemini", "Google Gemini"),
    (r"\bgoogle\b", "Google"),
    (r"\bbing\b", "Microsoft Bing Image Creator"),
    (r"microsoft designer|designer\.microsoft", "Microsoft Designer"),
    (r"copilot", "Microsoft Copilot"),
    (r"\bmicrosoft\b|\bazure\b", "Microsoft"),
    (r"\bmeta\b|\bimagine with meta\b", "Meta AI"),
    (r"midjourney", "Midjourney"),
    (r"stability|stable[\s_\-]?diffusion|dreamstudio", "Stability AI"),
    (r"\bflux\b|black forest labs", "Black Forest Labs FLUX"),
    (r"ideogram", "Ideogram"),
    (r"leonardo", "Leonardo.Ai"),
    (r"\brunway", "Runway"),
    (r"\bcanva\b", "Canva"),
    (r"\bsamsung\b", "Samsung"),
)
_SOURCE_RES = tuple((re.compile(p, re.IGNORECASE), name) for p, name in SOURCE_PATTERNS)
#: names of the C2PA libraries themselves: they say which SDK wrote the claim, not which product
_SDK_NAMES = re.compile(r"^(?:c2pa[\w\-]*|org\.contentauth\.\S*|contentauth\S*)$", re.IGNORECASE)


class C2PAReader(EvidenceReader):
    """Reads the active C2PA manifest of an image (or an SVG) into one ``c2pa`` record.

    ``trust_anchors`` is a PEM file of trusted root certificates: a signer that chains to one of
    them is ``trusted``. The settings (anchors, no network) go into a C2PA ``Context`` made for
    each read, so nothing global in the library changes and calls do not share state.
    """

    name: ClassVar[str] = "c2pa"
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")

    def __init__(self, trust_anchors: str | Path | None = None) -> None:
        self.trust_anchors = str(trust_anchors) if trust_anchors is not None else None
        self._anchors_pem = _load_anchors(self.trust_anchors) if self.trust_anchors is not None else None

    def read(self, sample: EvidenceSample) -> list[Evidence]:
        """The record of ``sample``'s active manifest, or none when it carries no manifest."""
        mime = sniff_mime(sample.data)
        if mime is None:
            return []  # a format that cannot embed a manifest this library reads (or an in-memory image)
        try:
            import c2pa
        except ImportError:
            sample.note("c2pa: c2pa-python is not installed; C2PA manifests were not read")
            return []
        try:
            store = self._read_store(c2pa, mime, sample.data)
        except Exception as exc:  # the library's errors on malformed files: a record or a note, never a raise
            return self._unreadable(sample, mime, exc)
        if store is None:
            return []
        return [self._record(store, mime)]

    def _settings(self) -> dict[str, Any]:
        """The library settings of one read: verify trust against the user's anchors, and never go online."""
        settings: dict[str, Any] = {
            # no host may be reached (remote manifests, OCSP, anything), and a compressed manifest
            # may not inflate past this many megabytes
            "core": {"allowed_network_hosts": [], "max_decompressed_manifest_size_in_mb": MAX_MANIFEST_MB},
            "verify": {
                "verify_trust": True,
                # a timestamp authority's root is seldom among the user's anchors: the signer's trust is what we report
                "verify_timestamp_trust": False,
                "remote_manifest_fetch": False,
                "ocsp_fetch": False,
            },
        }
        if self._anchors_pem is not None:
            settings["trust"] = {"trust_anchors": self._anchors_pem}
        return settings

    def _read_store(self, c2pa: Any, mime: str, data: bytes) -> dict[str, Any] | None:
        """The manifest store as parsed JSON, or None when the file has no manifest."""
        # a Context per read: the deprecated c2pa.load_settings is thread-global, and the default
        # context of the library fetches remote manifests over the network
        with c2pa.Context.from_dict(self._settings()) as context:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
        return store if isinstance(store, dict) else None

    def _unreadable(self, sample: EvidenceSample, mime: str, exc: Exception) -> list[Evidence]:
        """A file the library could not read: ``invalid`` when it holds a manifest store, else a note or nothing."""
        message = _clip(f"{type(exc).__name__.lstrip('_')}: {exc}", 300)
        text = str(exc)
        if text.startswith("Remote:") or "remote manifest" in text.lower():
            url = _remote_url(text)
            sample.note(f"c2pa: the manifest is remote{f' ({url})' if url else ''} and was not fetched")
            return []
        if _JUMBF_C2PA in sample.data or _SVG_C2PA in sample.data:
            detail = {
                "format": mime,
                "validation_state": "Unreadable",
                "status_codes": [],
                "error": message,
                "trusted": False,
                "trust": "not checked: the manifest store could not be read",
            }
            return [Evidence(kind="c2pa", source=None, says=None, strength="invalid", detail=detail)]
        # no manifest store in the bytes: a broken file is the other readers' to report
        return []

    def _record(self, store: dict[str, Any], mime: str) -> Evidence:
        manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
        label = store.get("active_manifest")
        manifest = manifests.get(label) if isinstance(label, str) else None
        if not isinstance(manifest, dict):
            manifest = {}
        results = store.get("validation_results") if isinstance(store.get("validation_results"), dict) else {}
        active = results.get("activeManifest") if isinstance(results.get("activeManifest"), dict) else {}
        failures = _codes(active.get("failure")) if active else _codes(store.get("validation_status"))
        successes = _codes(active.get("success"))
        state = store.get("validation_state") if isinstance(store.get("validation_state"), str) else None

        actions = _actions(manifest)
        says, says_action = _says(actions)
        signature = manifest.get("signature_info") if isinstance(manifest.get("signature_info"), dict) else {}
        generator_info = _generator_info(manifest)
        claim_generator = _text(manifest.get("claim_generator"))

        # a credential missing from the trust list is no failure of the signature: only broken hashes,
        # signatures or certificates make a manifest invalid (the library may call an untrusted timestamp Invalid)
        broken = [c for c in failures if c not in _TRUST_ONLY_CODES]
        valid = bool(manifest) and not broken and not (state == "Invalid" and not failures)
        if not manifest:
            failures = [*failures, "manifest.missing"]
        trusted = valid and ("signingCredential.trusted" in successes or state == "Trusted")
        if trusted:
            trust = "signer chains to the given trust anchors"
        elif self._anchors_pem is None:
            trust = "signer not on a trust list (no trust anchors given)"
        else:
            trust = "signer not on the given trust list"

        names = _candidate_names(says_action, actions, generator_info, claim_generator, signature)
        detail: dict[str, Any] = {
            "manifest_label": _text(label),
            "format": mime,
            "title": _text(manifest.get("title")),
            "claim_generator": claim_generator or _join_generator(generator_info),
            "claim_generator_info": generator_info,
            "claim_version": manifest.get("claim_version") if isinstance(manifest.get("claim_version"), int) else None,
            "signer": {
                "issuer": _text(signature.get("issuer")),
                "common_name": _text(signature.get("common_name")),
                "alg": _text(signature.get("alg")),
            },
            "signing_time": _text(signature.get("time")),
            "actions": actions,
            "ingredients": _ingredients(manifest),
            "validation_state": state,
            "status_codes": failures[:_MAX_ITEMS],
            "trusted": bool(trusted),
            "trust": trust,
            "manifests": len(manifests),
        }
        ingredient_codes = _ingredient_codes(results)
        if ingredient_codes:
            detail["ingredient_status_codes"] = ingredient_codes
        return Evidence(
            kind="c2pa",
            source=normalise_source(names, claim_generator, generator_info),
            says=says,
            strength="signed" if valid else "invalid",
            detail=detail,
        )


#: the formats C2PA embeds manifests into (a BMP or JPEG 2000 has no C2PA embedding)
C2PA_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "TIFF", "JXL", "AVIF", "HEIF", "SVG"})


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of ``data`` from its leading bytes, for the formats C2PA embeds into; None otherwise."""
    fmt = sniff_image(data)
    return IMAGE_MIMES[fmt] if fmt in C2PA_FORMATS else None


def normalise_source(names: list[str], claim_generator: str | None, generator_info: list[dict[str, str]]) -> str | None:
    """The generator's normalised name: the first of ``names`` that matches :data:`SOURCE_PATTERNS`,
    otherwise the claim generator's product name (an SDK's own name is no product), otherwise None."""
    for text in names:
        for pattern, name in _SOURCE_RES:
            if pattern.search(text):
                return name
    for info in generator_info:
        if info.get("name") and not _SDK_NAMES.match(info["name"]):
            return info["name"]
    if claim_generator:
        # "Adobe_Firefly/0.1 c2pa-rs/0.26": products, each "name/version", the SDKs last
        for product in claim_generator.split():
            product_name = product.split("/")[0].replace("_", " ").strip()
            if product_name and not _SDK_NAMES.match(product_name):
                return product_name
    return None


def _load_anchors(path: str) -> str:
    """The PEM text of the trust anchors file; raises ValueError when it holds no certificate that parses."""
    from cryptography import x509

    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"c2pa trust anchors {path!r} could not be read: {exc.strerror or exc}") from exc
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError(f"c2pa trust anchors {path!r} hold no readable PEM certificate: {exc}") from exc
    if not certificates:
        raise ValueError(f"c2pa trust anchors {path!r} hold no PEM certificate")
    # the library takes the PEM text; re-encoding drops anything between the certificates
    from cryptography.hazmat.primitives.serialization import Encoding

    return "".join(cert.public_bytes(Encoding.PEM).decode("ascii") for cert in certificates)


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    """A string field, clipped; None for anything else."""
    return _clip(value, limit) if isinstance(value, str) and value else None


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _codes(entries: Any) -> list[str]:
    """The status codes of a list of ``{"code": ...}`` entries, in order, without repeats."""
    codes: list[str] = []
    if isinstance(entries, list):
        for entry in entries:
            code = entry.get("code") if isinstance(entry, dict) else None
            if isinstance(code, str) and code not in codes:
                codes.append(_clip(code, _MAX_TEXT))
    return codes


def _ingredient_codes(results: dict[str, Any]) -> list[str]:
    """Failure codes reported for the ingredients' own manifests (they do not change the active manifest's state)."""
    codes: list[str] = []
    deltas = results.get("ingredientDeltas")
    if isinstance(deltas, list):
        for delta in deltas[:_MAX_ITEMS]:
            status = delta.get("validationDeltas") if isinstance(delta, dict) else None
            for code in _codes(status.get("failure") if isinstance(status, dict) else None):
                if code not in codes:
                    codes.append(code)
    return codes[:_MAX_ITEMS]


def _short_source_type(value: Any) -> str | None:
    """``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` -> ``trainedAlgorithmicMedia``."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if _IPTC_PREFIX in value.lower():
        value = value[value.lower().rindex(_IPTC_PREFIX) + len(_IPTC_PREFIX) :]
    return _clip(value.strip("/"), _MAX_TEXT) or None


def _agent_name(agent: Any) -> str | None:
    """A softwareAgent: a string (claims v1) or ``{"name": ..., "version": ...}`` (v2)."""
    if isinstance(agent, str):
        return _text(agent)
    if isinstance(agent, dict):
        name, version = _text(agent.get("name")), _text(agent.get("version"))
        return f"{name} {version}" if name and version else name
    return None


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions of the ``c2pa.actions`` / ``c2pa.actions.v2`` assertions (action, digitalSourceType, agent)."""
    found: list[dict[str, Any]] = []
    assertions = manifest.get("assertions")
    for assertion in assertions if isinstance(assertions, list) else []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        items = data.get("actions") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or len(found) >= _MAX_ITEMS:
                continue
            parameters = item.get("parameters") if isinstance(item.get("parameters"), dict) else {}
            # claims v1 sometimes carry the source type in the parameters
            source_type = item.get("digitalSourceType") or parameters.get("digitalSourceType")
            found.append(
                {
                    "action": _text(item.get("action")),
                    "digitalSourceType": _short_source_type(source_type),
                    "softwareAgent": _agent_name(item.get("softwareAgent")),
                }
            )
    return found


def _says(actions: list[dict[str, Any]]) -> tuple[str | None, dict[str, Any] | None]:
    """The digitalSourceType the manifest claims, and the action that claims it.

    A model-made type comes first (on ``c2pa.created``, then on an edit, a placement...: a photo
    edited with generative fill is a composite), then the type of ``c2pa.created``, then any other."""
    typed = [a for a in actions if a["digitalSourceType"]]
    ranked = sorted(
        typed,
        key=lambda a: (
            a["digitalSourceType"] not in _AI_SOURCE_TYPES,
            _MAKING_ACTIONS.index(a["action"]) if a["action"] in _MAKING_ACTIONS else len(_MAKING_ACTIONS),
        ),
    )
    return (ranked[0]["digitalSourceType"], ranked[0]) if ranked else (None, None)


def _generator_info(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """``claim_generator_info`` as ``[{"name", "version"}]`` (the SDK's own version keys dropped)."""
    info = manifest.get("claim_generator_info")
    if isinstance(info, dict):
        info = [info]
    entries: list[dict[str, str]] = []
    for item in info if isinstance(info, list) else []:
        if isinstance(item, dict) and _text(item.get("name")):
            entry = {"name": _text(item["name"]) or ""}
            if _text(item.get("version")):
                entry["version"] = _text(item["version"]) or ""
            entries.append(entry)
    return entries[:_MAX_ITEMS]


def _join_generator(info: list[dict[str, str]]) -> str | None:
    """``[{"name": "ChatGPT", "version": "1.0"}]`` -> ``"ChatGPT/1.0"`` (the claims v1 spelling)."""
    parts = [f"{i['name']}/{i['version']}" if i.get("version") else i["name"] for i in info]
    return " ".join(parts) or None


def _ingredients(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each ingredient's title and relationship (``parentOf``, ``componentOf``, ``inputTo``)."""
    ingredients = manifest.get("ingredients")
    found: list[dict[str, Any]] = []
    for item in ingredients if isinstance(ingredients, list) else []:
        if isinstance(item, dict) and len(found) < _MAX_ITEMS:
            found.append({"title": _text(item.get("title")), "relationship": _text(item.get("relationship"))})
    return found


def _candidate_names(
    says_action: dict[str, Any] | None,
    actions: list[dict[str, Any]],
    generator_info: list[dict[str, str]],
    claim_generator: str | None,
    signature: dict[str, Any],
) -> list[str]:
    """The names that may say which product made the file, most specific first: the agent of the action
    that gave ``says``, the other agents, the claim generator, then the signer."""
    names = [says_action["softwareAgent"]] if says_action and says_action["softwareAgent"] else []
    names += [a["softwareAgent"] for a in actions if a["softwareAgent"]]
    names += [i["name"] for i in generator_info]
    names += [claim_generator] if claim_generator else []
    names += [v for v in (_text(signature.get("common_name")), _text(signature.get("issuer"))) if v]
    return names


def _remote_url(message: str) -> str | None:
    match = re.search(r"https?://\S+", message)
    return _clip(match.group(0), _MAX_TEXT) if match else None


__all__ = ["MAX_MANIFEST_MB", "SOURCE_PATTERNS", "C2PAReader", "normalise_source", "sniff_mime"]
