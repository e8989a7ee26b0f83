"""C2SP signed notes and tlog checkpoints: published vectors, attacks, then properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from provenance.checkpoint import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    NoteSignatureError,
    VerifierKey,
    format_verifier_key,
    note_key_id,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from provenance.errors import ProvenanceError
from tests.keys import LOG_SIGNING_SEED

VECTOR_DIR = Path(__file__).parent / "vectors"
NOTE_VECTORS: dict[str, Any] = json.loads((VECTOR_DIR / "signed_note.json").read_text("utf-8"))
CHECKPOINT_VECTORS: dict[str, Any] = json.loads(
    (VECTOR_DIR / "tlog_checkpoint.json").read_text("utf-8")
)
PUBLISHED_KEYS = {entry["name"]: entry for entry in NOTE_VECTORS["keys"]}
PUBLISHED_VERIFIERS = {name: parse_verifier_key(e["vkey"]) for name, e in PUBLISHED_KEYS.items()}
PUBLISHED_NOTES = {entry["id"]: entry for entry in NOTE_VECTORS["notes"]}

LOG_NAME = "log.cardtrace.example"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(LOG_SIGNING_SEED)
LOG_VERIFIER = VerifierKey.from_public_key(LOG_NAME, LOG_KEY.public_key())
# RFC 8032 section 7.1, TEST 2 secret key: a second party (a witness, an impostor).
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(
    bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
)
# Two keys whose key IDs collide under COLLIDING_NAME (both 3e6b2473): seeds are
# SHA-256(b"cardtrace key-id collision %d") for 24861 and 96459, found by a birthday
# search over the first 100,000 such seeds.
COLLIDING_NAME = "log.example/collide"
COLLIDING_KEYS = tuple(
    Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    for seed in (
        "53480931cc24d1dd2df83f37823cf16b9932d5d9984ef5237a66c1da6af0bb43",
        "c3f6a4e529b57e4f21ed74a832e45759f1921004c3705754b0c83dca63a47b97",
    )
)

# The root of the RFC 6962 eight-leaf test tree (tests/vectors/rfc6962.json).
CHECKPOINT = Checkpoint(
    LOG_NAME, 8, bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
)
SIGNED_CHECKPOINT = sign_checkpoint(CHECKPOINT, LOG_NAME, LOG_KEY)
TEXT = "one line\n"
SIGNED_TEXT = sign_note(TEXT, LOG_NAME, LOG_KEY)


def published_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(PUBLISHED_KEYS[name]["seed_hex"]))


def public(key: VerifierKey) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(key.public_key)


def signature_line(note: bytes) -> bytes:
    """The last signature line of a note, newline included."""
    return note[note.rindex(b"\n\xe2\x80\x94 ") + 1 :]


def line_for(name: str, payload: bytes) -> bytes:
    return f"\u2014 {name} {base64.b64encode(payload).decode()}\n".encode()


def assert_refused(note: bytes, verifiers: list[VerifierKey], code: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        open_note(note, verifiers)
    assert caught.value.code == code


# Errors


def test_errors_belong_to_the_provenance_tree_with_stable_codes() -> None:
    assert issubclass(NoteSignatureError, CheckpointError)
    assert issubclass(CheckpointError, ProvenanceError)
    assert CheckpointError("x").code == "bad-checkpoint"
    assert NoteSignatureError("x").code == "bad-note-signature"


def test_error_messages_carry_no_key_material() -> None:
    forged = TEXT.encode() + b"\n" + line_for(LOG_NAME, LOG_VERIFIER.key_id + bytes(64))
    with pytest.raises(NoteSignatureError) as caught:
        open_note(forged, [LOG_VERIFIER])
    message = str(caught.value)
    assert message == f"signature by trusted key {LOG_NAME!r} does not verify"
    for secret_or_key in (LOG_SIGNING_SEED, LOG_VERIFIER.public_key, LOG_VERIFIER.key_id):
        assert secret_or_key.hex() not in message
        assert base64.b64encode(secret_or_key).decode() not in message


# Published vectors: keys


@pytest.mark.parametrize("name", PUBLISHED_KEYS)
def test_published_verifier_key_parses_and_formats_back(name: str) -> None:
    vkey = PUBLISHED_KEYS[name]["vkey"]
    key = parse_verifier_key(vkey)
    assert key.name == name
    assert key.key_id.hex() == vkey.split("+")[1]
    assert format_verifier_key(name, public(key)) == vkey


@pytest.mark.parametrize("name", [n for n, e in PUBLISHED_KEYS.items() if "seed_hex" in e])
def test_published_seed_derives_its_verifier_key(name: str) -> None:
    public_key = published_key(name).public_key()
    assert format_verifier_key(name, public_key) == PUBLISHED_KEYS[name]["vkey"]
    assert note_key_id(name, public_key) == PUBLISHED_VERIFIERS[name].key_id


def test_published_signer_key_holds_the_recorded_seed() -> None:
    entry = PUBLISHED_KEYS["PeterNeumann"]
    *_, encoded = entry["published_skey"].split("+", 4)
    assert base64.b64decode(encoded) == b"\x01" + bytes.fromhex(entry["seed_hex"])


@pytest.mark.parametrize("entry", NOTE_VECTORS["bad_verifier_keys"], ids=lambda e: e["attack"])
def test_published_bad_verifier_key_is_refused(entry: dict[str, str]) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(entry["vkey"])


def test_every_truncation_of_a_verifier_key_is_refused() -> None:
    vkey = PUBLISHED_KEYS["PeterNeumann"]["vkey"]
    for start in range(len(vkey)):
        for end in range(start + 1, len(vkey) + 1):
            if (start, end) != (0, len(vkey)):
                with pytest.raises(CheckpointError):
                    parse_verifier_key(vkey[start:end])


def test_every_single_character_change_to_a_verifier_key_is_refused() -> None:
    vkey = PUBLISHED_KEYS["PeterNeumann"]["vkey"]
    for i, ch in enumerate(vkey):
        with pytest.raises(CheckpointError):
            parse_verifier_key(vkey[:i] + chr(ord(ch) + 1) + vkey[i + 1 :])


def test_verifier_key_with_short_key_and_adjusted_key_id_is_refused() -> None:
    # A 31-byte key whose key ID is right for it: refused for its length, not its ID.
    material = b"\x01" + LOG_VERIFIER.public_key[:31]
    key_id = hashlib.sha256(LOG_NAME.encode() + b"\n" + material).digest()[:4]
    vkey = f"{LOG_NAME}+{key_id.hex()}+{base64.b64encode(material).decode()}"
    with pytest.raises(CheckpointError, match="32 bytes"):
        parse_verifier_key(vkey)


def test_uppercase_key_id_in_verifier_key_is_refused() -> None:
    # signed-note §Conventions: hex is lowercase; one spelling per key.
    name, key_id, encoded = PUBLISHED_KEYS["PeterNeumann"]["vkey"].split("+", 2)
    with pytest.raises(CheckpointError):
        parse_verifier_key(f"{name}+{key_id.upper()}+{encoded}")


def test_verifier_key_with_mismatched_key_id_is_refused() -> None:
    name, _, encoded = PUBLISHED_KEYS["PeterNeumann"]["vkey"].split("+", 2)
    with pytest.raises(CheckpointError, match="does not match"):
        parse_verifier_key(f"{name}+00000000+{encoded}")


def test_verifier_key_under_another_name_is_refused() -> None:
    # The key ID commits to the name, so a key cannot be relabelled for another log.
    _, key_id, encoded = PUBLISHED_KEYS["PeterNeumann"]["vkey"].split("+", 2)
    with pytest.raises(CheckpointError, match="does not match"):
        parse_verifier_key(f"EnochRoot+{key_id}+{encoded}")


@pytest.mark.parametrize("name", ["", "a+b", "two words", "no\u00a0break", "tab\there", "\u2003"])
def test_invalid_key_name_is_refused(name: str) -> None:
    with pytest.raises(CheckpointError, match="key name"):
        VerifierKey(name, LOG_VERIFIER.public_key)
    with pytest.raises(CheckpointError, match="key name"):
        sign_note(TEXT, name, LOG_KEY)


def test_public_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(CheckpointError, match="32 bytes"):
        VerifierKey(LOG_NAME, LOG_VERIFIER.public_key[:31])


# Published vectors: notes and checkpoints


@pytest.mark.parametrize(
    "note_id", ["go-peter-neumann", "c2sp-example-com-foo", "go-sumdb-checkpoint"]
)
def test_published_note_opens_with_its_signer(note_id: str) -> None:
    entry = PUBLISHED_NOTES[note_id]
    (name,) = entry["signers"]
    opened = open_note(entry["note"].encode(), [PUBLISHED_VERIFIERS[name]])
    assert opened.text == entry["text"]
    assert opened.signers == (PUBLISHED_VERIFIERS[name],)


@pytest.mark.parametrize("note_id", PUBLISHED_NOTES)
def test_published_note_lists_every_trusted_signer_in_order(note_id: str) -> None:
    entry = PUBLISHED_NOTES[note_id]
    opened = open_note(entry["note"].encode(), list(PUBLISHED_VERIFIERS.values()))
    assert opened.text == entry["text"]
    assert [key.name for key in opened.signers] == entry["signers"]


def test_signing_reproduces_the_published_note() -> None:
    entry = PUBLISHED_NOTES["go-peter-neumann"]
    signed = sign_note(entry["text"], "PeterNeumann", published_key("PeterNeumann"))
    assert signed == entry["note"].encode()


def test_signing_reproduces_the_published_cosignature() -> None:
    entry = PUBLISHED_NOTES["go-peter-neumann-and-enoch-root"]
    signed = sign_note(entry["text"], "EnochRoot", published_key("EnochRoot"))
    assert entry["note"].encode().endswith(signature_line(signed))


def test_published_note_signed_by_a_key_not_trusted_is_refused() -> None:
    note = PUBLISHED_NOTES["go-peter-neumann-and-enoch-root"]["note"].encode()
    assert_refused(note, [PUBLISHED_VERIFIERS["sum.golang.org"]], "bad-note-signature")
    assert_refused(note, [], "bad-note-signature")


@pytest.mark.parametrize("entry", NOTE_VECTORS["unverifiable_notes"], ids=lambda e: e["id"])
def test_published_note_without_published_key_parses_but_is_not_trusted(
    entry: dict[str, Any],
) -> None:
    # The text of the signed-note example holds an empty line; the note is well formed,
    # so what stops it is the missing trusted signature, not a parse error.
    assert_refused(entry["note"].encode(), [LOG_VERIFIER], "bad-note-signature")


def test_published_checkpoint_verifies() -> None:
    entry = PUBLISHED_NOTES["go-sumdb-checkpoint"]
    checkpoint = verify_checkpoint(
        entry["note"].encode(),
        "go.sum database tree",
        "sum.golang.org",
        public(PUBLISHED_VERIFIERS["sum.golang.org"]),
    )
    assert checkpoint == Checkpoint(
        "go.sum database tree",
        6476701,
        bytes.fromhex("99bf102d022cd19d323f90acb6aea0ba3f3ba1759e0bd80433ca158a49a6f569"),
    )


def test_published_cosigned_checkpoint_verifies_with_the_log_key_alone() -> None:
    cosigned = PUBLISHED_NOTES["go-sumdb-checkpoint-cosigned"]["note"].encode()
    checkpoint = verify_checkpoint(
        cosigned,
        "go.sum database tree",
        "sum.golang.org",
        public(PUBLISHED_VERIFIERS["sum.golang.org"]),
    )
    assert checkpoint.size == 6476701


def test_published_checkpoint_under_a_cosigner_key_is_refused() -> None:
    # A witness's cosignature is not the log's signature.
    cosigned = PUBLISHED_NOTES["go-sumdb-checkpoint-cosigned"]["note"].encode()
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(
            cosigned,
            "go.sum database tree",
            "sum.golang.org",
            public(PUBLISHED_VERIFIERS["monkeys"]),
        )


@pytest.mark.parametrize("entry", CHECKPOINT_VECTORS["valid"], ids=lambda e: e["id"])
def test_published_checkpoint_body_parses_and_serialises_back(entry: dict[str, Any]) -> None:
    checkpoint = Checkpoint.from_bytes(entry["body"].encode())
    assert checkpoint == Checkpoint(
        entry["origin"], entry["size"], bytes.fromhex(entry["root_hex"]), tuple(entry["extensions"])
    )
    assert checkpoint.to_bytes() == entry["body"].encode()


@pytest.mark.parametrize("entry", CHECKPOINT_VECTORS["invalid"], ids=lambda e: e["attack"])
def test_published_bad_checkpoint_body_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.from_bytes(entry["body"].encode())
    assert caught.value.code == "bad-checkpoint"


# Signatures: which count, which are ignored, which sink the note


def test_signature_from_unknown_key_is_ignored() -> None:
    cosigned = SIGNED_TEXT + signature_line(sign_note(TEXT, "witness.example", OTHER_KEY))
    assert open_note(cosigned, [LOG_VERIFIER]).signers == (LOG_VERIFIER,)


def test_note_signed_only_by_unknown_keys_is_refused() -> None:
    assert_refused(
        sign_note(TEXT, "witness.example", OTHER_KEY), [LOG_VERIFIER], "bad-note-signature"
    )


def test_note_checked_against_no_keys_is_refused() -> None:
    assert_refused(SIGNED_TEXT, [], "bad-note-signature")


def test_impostor_signing_under_the_trusted_name_is_ignored() -> None:
    # Same name, other key, so other key ID: an unknown key, whose signature is ignored.
    impostor = sign_note(TEXT, LOG_NAME, OTHER_KEY)
    assert_refused(impostor, [LOG_VERIFIER], "bad-note-signature")
    both = SIGNED_TEXT + signature_line(impostor)
    assert open_note(both, [LOG_VERIFIER]).signers == (LOG_VERIFIER,)


def test_trusted_key_id_under_another_name_is_ignored() -> None:
    renamed = SIGNED_TEXT.replace(f"\u2014 {LOG_NAME} ".encode(), "\u2014 other.example ".encode())
    assert_refused(renamed, [LOG_VERIFIER], "bad-note-signature")


def test_forged_signature_from_trusted_key_refuses_the_whole_note() -> None:
    # signed-note §Signatures: a known key's failing signature sinks the note, even when
    # another line from the same key verifies.
    forged = line_for(LOG_NAME, LOG_VERIFIER.key_id + bytes(64))
    assert_refused(SIGNED_TEXT + forged, [LOG_VERIFIER], "bad-note-signature")
    forged_first = TEXT.encode() + b"\n" + forged + signature_line(SIGNED_TEXT)
    assert_refused(forged_first, [LOG_VERIFIER], "bad-note-signature")


def test_truncated_signature_from_trusted_key_is_refused() -> None:
    truncated = TEXT.encode() + b"\n" + line_for(LOG_NAME, LOG_VERIFIER.key_id + bytes(10))
    assert_refused(truncated, [LOG_VERIFIER], "bad-note-signature")


def test_signature_spliced_onto_other_text_is_refused() -> None:
    spliced = b"another line\n\n" + signature_line(SIGNED_TEXT)
    assert_refused(spliced, [LOG_VERIFIER], "bad-note-signature")


def test_colliding_key_id_gets_only_a_verification_failure() -> None:
    # signed-note §Signatures: a key made to share name and key ID with the trusted key is
    # taken for it, and its signature then fails to verify.
    trusted, impostor = (
        VerifierKey.from_public_key(COLLIDING_NAME, key.public_key()) for key in COLLIDING_KEYS
    )
    assert trusted.key_id == impostor.key_id
    assert_refused(
        sign_note(TEXT, COLLIDING_NAME, COLLIDING_KEYS[1]), [trusted], "bad-note-signature"
    )


def test_trusted_keys_sharing_name_and_key_id_are_refused() -> None:
    trusted = [
        VerifierKey.from_public_key(COLLIDING_NAME, key.public_key()) for key in COLLIDING_KEYS
    ]
    note = sign_note(TEXT, COLLIDING_NAME, COLLIDING_KEYS[0])
    with pytest.raises(CheckpointError, match="share") as caught:
        open_note(note, trusted)
    assert caught.value.code == "bad-checkpoint"


def test_repeated_trusted_key_and_signature_count_once() -> None:
    doubled = SIGNED_TEXT + signature_line(SIGNED_TEXT)
    assert open_note(doubled, [LOG_VERIFIER, LOG_VERIFIER]).signers == (LOG_VERIFIER,)


def test_note_with_the_most_signatures_allowed_opens() -> None:
    # signed-note §Format: verifiers MUST accept at least 16 signatures.
    assert MAX_SIGNATURES >= 16
    note = SIGNED_TEXT + signature_line(SIGNED_TEXT) * (MAX_SIGNATURES - 1)
    assert open_note(note, [LOG_VERIFIER]).text == TEXT


def test_note_flooded_with_signatures_is_refused() -> None:
    flood = sign_note(TEXT, "witness.example", OTHER_KEY)
    note = SIGNED_TEXT + signature_line(flood) * MAX_SIGNATURES
    assert_refused(note, [LOG_VERIFIER], "bad-checkpoint")


def test_note_of_the_largest_size_allowed_opens() -> None:
    line_size = len(signature_line(SIGNED_TEXT))
    text = "x" * (MAX_NOTE_SIZE - line_size - 2) + "\n"
    note = sign_note(text, LOG_NAME, LOG_KEY)
    assert len(note) == MAX_NOTE_SIZE
    assert open_note(note, [LOG_VERIFIER]).text == text


def test_oversized_note_is_refused() -> None:
    padding = "x" * MAX_NOTE_SIZE + "\n"
    with pytest.raises(CheckpointError, match="larger than"):
        sign_note(padding, LOG_NAME, LOG_KEY)
    with pytest.raises(CheckpointError, match="larger than") as caught:
        open_note(padding.encode() + SIGNED_TEXT, [LOG_VERIFIER])
    assert caught.value.code == "bad-checkpoint"


# Note syntax (signed-note §Format)


@pytest.mark.parametrize(
    ("attack", "note"),
    [
        ("text-only", TEXT.encode()),
        ("no-signature-lines", TEXT.encode() + b"\n"),
        ("no-blank-line", TEXT.encode() + signature_line(SIGNED_TEXT)),
        ("signature-without-final-newline", SIGNED_TEXT[:-1]),
        ("line-after-signatures", SIGNED_TEXT + b"Unexpected line.\n"),
        ("control-character", b"\x01" + SIGNED_TEXT),
        ("carriage-return", SIGNED_TEXT.replace(b"\n\n", b"\r\n\n")),
        ("invalid-utf8", b"\xff" + SIGNED_TEXT),
        ("overlong-utf8", b"\xc0\xaf" + SIGNED_TEXT),
        ("hyphen-for-em-dash", SIGNED_TEXT.replace("\u2014".encode(), b"-")),
        ("no-space-after-em-dash", SIGNED_TEXT.replace("\u2014 ".encode(), "\u2014".encode())),
        ("no-signature-after-name", TEXT.encode() + f"\n\u2014 {LOG_NAME}\n".encode()),
        ("empty-name", SIGNED_TEXT.replace(f" {LOG_NAME} ".encode(), b"  ")),
        ("plus-in-name", SIGNED_TEXT.replace(LOG_NAME.encode(), b"log+evil")),
        ("unicode-space-in-name", SIGNED_TEXT.replace(b".example", "\u00a0x".encode())),
        ("signature-not-base64", SIGNED_TEXT.replace(b"=\n", b"!\n")),
        ("signature-without-padding", SIGNED_TEXT.replace(b"=\n", b"\n")),
        ("signature-with-extra-space", SIGNED_TEXT.replace(b"=\n", b"= \n")),
        (
            "signature-of-only-a-key-id",
            TEXT.encode() + b"\n" + line_for(LOG_NAME, LOG_VERIFIER.key_id),
        ),
    ],
)
def test_malformed_note_is_refused(attack: str, note: bytes) -> None:
    assert_refused(note, [LOG_VERIFIER], "bad-checkpoint")


def test_signature_with_non_canonical_base64_is_refused() -> None:
    # A 68-byte payload ends in "X=" whose last 2 bits are unused: setting one gives a
    # second spelling of the same signature, which would let the note's bytes be altered.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    line = signature_line(SIGNED_TEXT).decode()
    last = line[-3]
    altered = line[:-3] + alphabet[alphabet.index(last) ^ 1] + line[-2:]
    assert base64.b64decode(altered.split(" ")[2]) == base64.b64decode(line.split(" ")[2])
    assert_refused(TEXT.encode() + b"\n" + altered.encode(), [LOG_VERIFIER], "bad-checkpoint")


@pytest.mark.parametrize(
    ("attack", "text"),
    [
        ("no-final-newline", "one line"),
        ("empty", ""),
        ("control-character", "bell\x07\n"),
        ("carriage-return", "crlf\r\n"),
        ("lone-surrogate", "\ud800\n"),
    ],
)
def test_malformed_text_is_not_signed(attack: str, text: str) -> None:
    with pytest.raises(CheckpointError):
        sign_note(text, LOG_NAME, LOG_KEY)


def test_note_text_may_contain_empty_lines() -> None:
    # signed-note §Format: the text ends at the last empty line of the note.
    text = "first\n\nthird\n\n"
    assert open_note(sign_note(text, LOG_NAME, LOG_KEY), [LOG_VERIFIER]).text == text


# Checkpoints (tlog-checkpoint §Note text)


def test_checkpoint_serialises_to_its_lines() -> None:
    checkpoint = Checkpoint("example.com/log", 0, bytes(32), ("ext one", "ext two"))
    assert checkpoint.to_bytes() == (
        b"example.com/log\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\next two\n"
    )


@pytest.mark.parametrize(
    ("attack", "body"),
    [
        ("leading-zero-size", b"log\n08\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("zero-written-twice", b"log\n00\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("plus-signed-size", b"log\n+8\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("spaced-size", b"log\n 8\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("underscored-size", b"log\n1_0\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("non-ascii-digit-size", "log\n\u0668\n".encode() + base64.b64encode(bytes(32)) + b"\n"),
        (
            "size-of-2-to-the-64",
            b"log\n18446744073709551616\n" + base64.b64encode(bytes(32)) + b"\n",
        ),
        ("root-of-31-bytes", b"log\n8\n" + base64.b64encode(bytes(31)) + b"\n"),
        ("root-of-33-bytes", b"log\n8\n" + base64.b64encode(bytes(33)) + b"\n"),
        ("root-without-padding", b"log\n8\n" + base64.b64encode(bytes(32)).rstrip(b"=") + b"\n"),
        ("root-url-safe-base64", b"log\n8\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n"),
        ("root-non-canonical-base64", b"log\n8\n" + base64.b64encode(bytes(32))[:-2] + b"B=\n"),
        ("empty-extension-line", b"log\n8\n" + base64.b64encode(bytes(32)) + b"\n\n"),
        ("control-character-in-origin", b"log\x1b\n8\n" + base64.b64encode(bytes(32)) + b"\n"),
        ("carriage-return-line-ends", b"log\r\n8\r\n" + base64.b64encode(bytes(32)) + b"\r\n"),
        ("invalid-utf8-origin", b"log\xff\n8\n" + base64.b64encode(bytes(32)) + b"\n"),
    ],
)
def test_malformed_checkpoint_body_is_refused(attack: str, body: bytes) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_bytes(body)


def test_largest_tree_size_is_accepted() -> None:
    body = f"log\n{MAX_TREE_SIZE}\n".encode() + base64.b64encode(bytes(32)) + b"\n"
    assert Checkpoint.from_bytes(body).size == MAX_TREE_SIZE


@pytest.mark.parametrize(
    ("attack", "fields"),
    [
        ("empty-origin", ("", 1, bytes(32), ())),
        ("newline-in-origin", ("a\nb", 1, bytes(32), ())),
        ("negative-size", ("log", -1, bytes(32), ())),
        ("size-over-64-bits", ("log", MAX_TREE_SIZE + 1, bytes(32), ())),
        ("bool-size", ("log", True, bytes(32), ())),
        ("short-root", ("log", 1, bytes(31), ())),
        ("mutable-root", ("log", 1, bytearray(32), ())),
        ("empty-extension", ("log", 1, bytes(32), ("",))),
        ("newline-in-extension", ("log", 1, bytes(32), ("a\n\nb",))),
        ("list-of-extensions", ("log", 1, bytes(32), ["ext"])),
    ],
)
def test_invalid_checkpoint_is_not_constructed(attack: str, fields: tuple[Any, ...]) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(*fields)


def test_signed_checkpoint_verifies() -> None:
    assert (
        verify_checkpoint(SIGNED_CHECKPOINT, LOG_NAME, LOG_NAME, LOG_KEY.public_key()) == CHECKPOINT
    )


def test_origin_substitution_is_refused() -> None:
    # A genuine checkpoint of one log, presented as another log's.
    with pytest.raises(CheckpointError) as caught:
        verify_checkpoint(SIGNED_CHECKPOINT, "other.example", LOG_NAME, LOG_KEY.public_key())
    assert caught.value.code == "bad-checkpoint"
    assert str(caught.value) == f"checkpoint is for origin {LOG_NAME!r}, not 'other.example'"


def test_checkpoint_signed_by_another_key_is_refused() -> None:
    forged = sign_checkpoint(CHECKPOINT, LOG_NAME, OTHER_KEY)
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(forged, LOG_NAME, LOG_NAME, LOG_KEY.public_key())


def test_signed_note_that_is_not_a_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError) as caught:
        verify_checkpoint(SIGNED_TEXT, LOG_NAME, LOG_NAME, LOG_KEY.public_key())
    assert caught.value.code == "bad-checkpoint"


# Properties

LINES = st.text(
    alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40
)
CHECKPOINTS = st.builds(
    Checkpoint,
    origin=LINES,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(LINES, max_size=3).map(tuple),
)


@given(CHECKPOINTS)
def test_checkpoint_roundtrip(checkpoint: Checkpoint) -> None:
    assert Checkpoint.from_bytes(checkpoint.to_bytes()) == checkpoint


@given(CHECKPOINTS)
def test_every_signed_checkpoint_verifies(checkpoint: Checkpoint) -> None:
    note = sign_checkpoint(checkpoint, LOG_NAME, LOG_KEY)
    assert verify_checkpoint(note, checkpoint.origin, LOG_NAME, LOG_KEY.public_key()) == checkpoint


def test_each_bit_flip_of_a_fixed_signed_checkpoint_is_refused() -> None:
    # Every bit of one note, not a sample: each position is hit on every run.
    public_key = LOG_KEY.public_key()
    for bit in range(len(SIGNED_CHECKPOINT) * 8):
        note = bytearray(SIGNED_CHECKPOINT)
        note[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CheckpointError):
            verify_checkpoint(bytes(note), LOG_NAME, LOG_NAME, public_key)


@given(CHECKPOINTS, st.data())
def test_flipped_bit_of_any_signed_checkpoint_is_refused(
    checkpoint: Checkpoint, data: st.DataObject
) -> None:
    note = bytearray(sign_checkpoint(checkpoint, LOG_NAME, LOG_KEY))
    bit = data.draw(st.integers(0, len(note) * 8 - 1), label="bit")
    note[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CheckpointError):
        verify_checkpoint(bytes(note), checkpoint.origin, LOG_NAME, LOG_KEY.public_key())


@given(
    CHECKPOINTS,
    st.sampled_from(["origin", "size", "root"]),
    st.data(),
)
def test_each_changed_field_under_old_signature_is_refused(
    checkpoint: Checkpoint, field: str, data: st.DataObject
) -> None:
    if field == "origin":
        changed = Checkpoint(
            data.draw(LINES.filter(lambda o: o != checkpoint.origin)),
            checkpoint.size,
            checkpoint.root,
            checkpoint.extensions,
        )
    elif field == "size":
        size = data.draw(st.integers(0, MAX_TREE_SIZE).filter(lambda s: s != checkpoint.size))
        changed = Checkpoint(checkpoint.origin, size, checkpoint.root, checkpoint.extensions)
    else:
        root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != checkpoint.root))
        changed = Checkpoint(checkpoint.origin, checkpoint.size, root, checkpoint.extensions)
    note = sign_checkpoint(checkpoint, LOG_NAME, LOG_KEY)
    tampered = changed.to_bytes() + note[len(checkpoint.to_bytes()) :]
    with pytest.raises(NoteSignatureError):
        verify_checkpoint(tampered, changed.origin, LOG_NAME, LOG_KEY.public_key())


@given(
    st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=20),
        min_size=1,
        max_size=5,
    )
)
def test_note_roundtrip(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    opened = open_note(sign_note(text, LOG_NAME, LOG_KEY), [LOG_VERIFIER])
    assert opened.text == text
    assert opened.signers == (LOG_VERIFIER,)


KEY_NAMES = st.text(
    alphabet=st.characters(min_codepoint=0x21, exclude_categories=["Cs"]), min_size=1, max_size=20
).filter(lambda name: "+" not in name and not any(ch.isspace() for ch in name))


@given(KEY_NAMES)
def test_verifier_key_roundtrip(name: str) -> None:
    key = VerifierKey.from_public_key(name, LOG_KEY.public_key())
    assert parse_verifier_key(format_verifier_key(name, LOG_KEY.public_key())) == key
