"""Test certificates and signed files for the C2PA tests: a root CA, an end-entity signer, and ``sign``.

C2PA signers need an X.509 v3 end-entity certificate (not self-signed) with the digitalSignature
key usage, an extended key usage C2PA accepts (emailProtection here), subject and authority key
identifiers, and an ES256 (P-256) key; the root is a CA with keyCertSign. Everything is made in
memory, so the tests need no files and no network.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: the label ``sign`` gives the ingredient, for the actions that refer to it
INGREDIENT_LABEL = "parent-ingredient"


@dataclass(frozen=True)
class SigningChain:
    """A root CA and an end-entity signer it issued, as PEM."""

    root_pem: bytes
    chain_pem: bytes  # the signer's certificate, then the root
    key_pem: bytes  # the signer's private key (PKCS#8)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def make_chain(common_name: str = "Test Signer", organization: str = "Test Org") -> SigningChain:
    """A fresh root CA and a C2PA signing certificate issued by it (ES256 keys)."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{organization} Root CA", organization)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningChain(root_pem=pem(root), chain_pem=pem(signer) + pem(root), key_pem=key_pem)


def action(
    name: str = "c2pa.created", source_type: str | None = "trainedAlgorithmicMedia", agent: str | None = None
) -> dict[str, Any]:
    """One entry of a ``c2pa.actions`` assertion; ``c2pa.opened`` refers to the ingredient ``sign`` adds."""
    entry: dict[str, Any] = {"action": name}
    if name == "c2pa.opened":
        entry["parameters"] = {"ingredientIds": [INGREDIENT_LABEL]}
    if source_type is not None:
        entry["digitalSourceType"] = IPTC + source_type
    if agent is not None:
        entry["softwareAgent"] = {"name": agent}
    return entry


def manifest(
    generator: str = "ChatGPT", actions: list[dict[str, Any]] | None = None, title: str = "image"
) -> dict[str, Any]:
    """A manifest definition (by default one ``c2pa.created`` of ``trainedAlgorithmicMedia``), as OpenAI writes."""
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions or [action()]}}],
    }


def sign(
    data: bytes,
    mime: str,
    chain: SigningChain,
    definition: dict[str, Any] | None = None,
    ingredient: tuple[bytes, str, str] | None = None,
    remote_url: str | None = None,
) -> bytes:
    """``data`` with a C2PA manifest signed by ``chain`` (no thumbnail, no timestamp authority).

    ``ingredient`` is ``(bytes, mime, title)`` of a parent file; ``remote_url`` leaves the manifest
    out of the file and points to it from the file's XMP instead.
    """
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.chain_pem, chain.key_pem, None))
    # no thumbnail: it keeps the files small, and the tests' byte edits then land in the image data
    with c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}) as context:
        builder = c2pa.Builder(definition or manifest(), context)
        if ingredient is not None:
            parent, parent_mime, title = ingredient
            ingredient_json = {"title": title, "relationship": "parentOf", "label": INGREDIENT_LABEL}
            builder.add_ingredient(ingredient_json, parent_mime, io.BytesIO(parent))
        if remote_url is not None:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
    signer.close()
    return out.getvalue()
