"""LogVerifier: signature checks run behind the reading, yet the first bad record is named."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy.orm import Session

from provenance.ledger import Ledger, iter_records
from provenance.verify import LogVerifier, VerificationError
from tests.ledger_support import NOW, register_party, signed_by, test_catalog

CATALOG = test_catalog()


@pytest.fixture()
def records(session: Session, genesis: Ledger) -> list[bytes]:
    key = register_party(session, genesis, "acme")
    genesis.append(
        session, [signed_by(key, "acme", body={"text": f"n{i}"}) for i in range(40)], now=NOW
    )
    return [raw for _, raw, _ in iter_records(session)]


def with_bad_signature(raw: bytes) -> bytes:
    """The record with its signature's first byte changed, re-encoded the same way."""
    value = json.loads(raw)
    signature = bytearray(base64.b64decode(value["sig"]))
    signature[0] ^= 1
    new = base64.b64encode(bytes(signature)).decode()
    return raw.replace(value["sig"].encode(), new.encode())


def run(records: list[bytes], threads: int) -> LogVerifier:
    verifier = LogVerifier(CATALOG, threads=threads, chunk=4)
    for raw in records:
        verifier.feed(raw)
    verifier.finish()
    return verifier


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_untouched_records_verify_with_any_thread_count(records: list[bytes], threads: int) -> None:
    assert run(records, threads).size == len(records)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_bad_signature_is_named_before_a_later_fault_found_while_it_is_checked(
    records: list[bytes], threads: int
) -> None:
    # Record 9's signature is still being checked (chunks of 4, two in flight) when the
    # broken chain link at record 10 is read: the earlier fault must be the one named.
    tampered = list(records)
    tampered[9] = with_bad_signature(records[9])
    with pytest.raises(VerificationError) as info:
        run(tampered, threads)
    assert (info.value.code, info.value.seq) == ("bad-signature", 9)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_bad_signature_in_the_last_chunk_is_found_by_finish(
    records: list[bytes], threads: int
) -> None:
    tampered = list(records)
    tampered[-1] = with_bad_signature(records[-1])
    with pytest.raises(VerificationError) as info:
        run(tampered, threads)
    assert (info.value.code, info.value.seq) == ("bad-signature", len(records) - 1)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_two_bad_signatures_name_the_earlier(records: list[bytes], threads: int) -> None:
    tampered = list(records)
    verifier = LogVerifier(CATALOG, threads=threads, chunk=4)
    # Fed with their stored chain links intact, so only the signatures are wrong.
    tampered[30] = with_bad_signature(records[30])
    tampered[17] = with_bad_signature(records[17])
    with pytest.raises(VerificationError) as info:
        for raw in tampered:
            verifier.prev = None  # chain links are checked elsewhere; signatures here
            verifier.feed(raw)
        verifier.finish()
    assert (info.value.code, info.value.seq) == ("bad-signature", 17)
