"""Turning a JSON request body into a validated model, or a clear 4xx problem."""

from __future__ import annotations

from typing import TypeVar

import pydantic
from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from provenance.errors import ValidationError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def parse_body(model: type[ModelT]) -> ModelT:
    """Validate the request's JSON body against ``model``.

    Raises:
        UnsupportedMediaType: the body is not ``application/json``.
        ValidationError: the JSON is malformed or does not match, naming the field but
            never echoing the value (it may be a PIN).
    """
    if not request.is_json:
        raise UnsupportedMediaType("send the request body as application/json")
    raw = request.get_data(cache=True)
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as e:
        first = e.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "json_invalid":
            raise ValidationError("the request body is not valid JSON", field="body") from e
        raise ValidationError(f"{where}: {first['msg']}", field=where) from e
