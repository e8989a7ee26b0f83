"""CARDTRACE_REGISTRIES: the offline extracts by default, a live service by configuration."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from provenance.errors import ConfigError
from tests.registry_fakes import LIVE, outside_registries
from webapp.config import load_settings
from webapp.onboarding import offline_registries, onboarding_service, registries_factory

FORM = "must be 'offline' or 'package.module:factory'"


def test_offline_extracts_answer_by_default(app: Flask) -> None:
    with app.app_context():
        assert onboarding_service().registries is offline_registries


def test_a_live_service_is_chosen_by_configuration(session: Session) -> None:
    settings = load_settings(
        environ={"CARDTRACE_REGISTRIES": "tests.registry_fakes:outside_registries"}
    )
    factory = registries_factory(settings)
    assert factory is outside_registries
    answer = factory(session).enterprise.enterprise("91350100M000100Y43")
    assert answer.source == LIVE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("offline2", FORM),
        ("tests.registry_fakes", FORM),
        ("tests.registry_fakes:outside registries", FORM),
    ],
    ids=["unknown-word", "no-factory-named", "space-in-name"],
)
def test_malformed_setting_is_refused_naming_it(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"CARDTRACE_REGISTRIES": value})
    assert "CARDTRACE_REGISTRIES" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tests.no_such_module:factory", "cannot import"),
        ("tests.registry_fakes:no_such_factory", "cannot import"),
        ("tests.registry_fakes:NOT_A_FACTORY", "is not callable"),
    ],
    ids=["missing-module", "missing-factory", "not-callable"],
)
def test_factory_that_cannot_serve_is_refused_naming_the_setting(value: str, message: str) -> None:
    settings = load_settings(environ={"CARDTRACE_REGISTRIES": value})
    with pytest.raises(ConfigError) as info:
        registries_factory(settings)
    assert str(info.value).startswith("CARDTRACE_REGISTRIES: ")
    assert message in str(info.value)
