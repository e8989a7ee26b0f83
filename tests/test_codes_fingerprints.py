"""The fast paths of issuance give exactly what the reference functions give."""

from __future__ import annotations

import base64
import binascii

from hypothesis import given
from hypothesis import strategies as st

from provenance.codes import BatchCodesBody
from provenance.fingerprints import ProductFingerprints, code_fingerprint, serial_fingerprint

text = st.text(min_size=0, max_size=40)


@given(st.binary(min_size=1, max_size=64), text, text, text, text)
def test_product_fingerprints_are_the_reference_fingerprints(
    key: bytes, issuer: str, product: str, serial: str, pin: str
) -> None:
    fingerprints = ProductFingerprints(key, issuer, product)
    assert fingerprints.code(serial, pin) == code_fingerprint(key, issuer, product, serial, pin)
    assert fingerprints.serial(serial) == serial_fingerprint(key, issuer, product, serial)
    # The prepared key is reused, never consumed.
    assert fingerprints.code(serial, pin) == code_fingerprint(key, issuer, product, serial, pin)


def _canonical_32_bytes(value: str) -> bool:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32 and base64.b64encode(raw).decode() == value


def _accepted(value: str) -> bool:
    body = {"batch": "b", "product": "p", "offset": 0, "codes": [[value, value]]}
    try:
        BatchCodesBody.model_validate(body)
    except ValueError:
        return False
    return True


base64_text = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n",
    min_size=40,
    max_size=48,
)


@given(
    st.one_of(
        base64_text,
        st.binary(min_size=30, max_size=34).map(lambda raw: base64.b64encode(raw).decode()),
    )
)
def test_fingerprints_in_entries_are_exactly_the_canonical_base64_of_32_bytes(value: str) -> None:
    assert _accepted(value) == _canonical_32_bytes(value)


def test_a_fingerprint_with_stray_low_bits_is_refused() -> None:
    # Decodes to the same 32 bytes as "...A=", but is not their one spelling.
    canonical = base64.b64encode(bytes(32)).decode()
    assert _accepted(canonical)
    assert not _accepted(canonical[:-2] + "B=")
