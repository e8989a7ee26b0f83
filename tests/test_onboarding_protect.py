"""Personal data at rest: sealed, bound to its purpose, looked up by keyed HMAC, masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from merchant_onboarding.protect import (
    PersonalData,
    Purpose,
    SealError,
    mask_account,
    mask_id_number,
)
from tests.keys import PERSONAL_DATA_KEY
from webapp.config import PERSONAL_DATA_KEY_FILE, ensure_secrets, load_settings

ACCOUNT = "6222021234567890123"


def test_sealed_value_opens_to_the_clear_value() -> None:
    vault = PersonalData(PERSONAL_DATA_KEY)
    sealed = vault.seal_text(Purpose.BANK_ACCOUNT, ACCOUNT)
    assert ACCOUNT.encode() not in sealed
    assert vault.open_text(Purpose.BANK_ACCOUNT, sealed) == ACCOUNT


def test_sealing_twice_gives_different_ciphertexts() -> None:
    vault = PersonalData(PERSONAL_DATA_KEY)
    assert vault.seal_text(Purpose.ID_NUMBER, "x") != vault.seal_text(Purpose.ID_NUMBER, "x")


def test_a_bank_account_cannot_be_opened_as_an_id_number() -> None:
    vault = PersonalData(PERSONAL_DATA_KEY)
    sealed = vault.seal_text(Purpose.BANK_ACCOUNT, ACCOUNT)
    with pytest.raises(SealError) as caught:
        vault.open_text(Purpose.ID_NUMBER, sealed)
    assert ACCOUNT not in str(caught.value)


def test_another_key_cannot_open_a_sealed_value() -> None:
    sealed = PersonalData(PERSONAL_DATA_KEY).seal_text(Purpose.ID_NUMBER, "x")
    with pytest.raises(SealError):
        PersonalData(bytes(32)).open_text(Purpose.ID_NUMBER, sealed)


def test_lookup_tags_match_for_equal_values_only_and_depend_on_the_key() -> None:
    vault = PersonalData(PERSONAL_DATA_KEY)
    tag = vault.lookup(Purpose.BANK_ACCOUNT, ACCOUNT)
    assert tag == vault.lookup(Purpose.BANK_ACCOUNT, ACCOUNT)
    assert tag != vault.lookup(Purpose.BANK_ACCOUNT, ACCOUNT[:-1] + "4")
    assert tag != vault.lookup(Purpose.ID_NUMBER, ACCOUNT)
    assert tag != PersonalData(bytes(32)).lookup(Purpose.BANK_ACCOUNT, ACCOUNT)


def test_masks_keep_only_the_ends() -> None:
    assert mask_id_number("110105194912310029") == "110***********0029"
    assert mask_account(ACCOUNT) == "6222***********0123"
    assert repr(PersonalData(PERSONAL_DATA_KEY)) == "PersonalData(<key hidden>)"


def test_init_creates_an_owner_only_personal_data_key(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, overrides={"instance_path": tmp_path, "key_dir": tmp_path / "keys"}
    )
    assert PERSONAL_DATA_KEY_FILE in ensure_secrets(settings)
    path = tmp_path / "keys" / PERSONAL_DATA_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_bytes()) == 32
    assert ensure_secrets(settings) == []
