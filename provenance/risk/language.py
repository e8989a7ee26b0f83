"""The rule language: CEL conditions over the features, checked before they are saved.

Conditions are Common Expression Language (https://cel.dev) and run on the
``common-expression-language`` package; nothing is ever ``eval``-ed. CEL's own runtime
only finds type errors when a branch runs, so a condition is first parsed and typed here
against :data:`~provenance.risk.features.FEATURES`, and refused with the line and column
of the first problem:

- ``rule-syntax``: not a CEL expression, or a construct rules do not use (maps, indexing,
  ``null``, unsigned or bytes literals);
- ``unknown-feature``: a name that is not a feature (with the closest feature suggested);
- ``unknown-function``: a function other than ``size``, ``int``, ``double`` or the string
  methods ``startsWith``, ``endsWith``, ``contains``;
- ``rule-type``: an operator or function applied to the wrong types (CEL does not mix
  ``int`` and ``double`` in arithmetic: write ``double(buyer.count_1h) * 2.5``), or a
  condition that is not ``bool``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import cel

from provenance.risk.errors import RuleError
from provenance.risk.features import FEATURES, GROUPS, FeatureType

MAX_CONDITION = 2000
MAX_DEPTH = 40

INT, DOUBLE, BOOL, STRING = "int", "double", "bool", "string"
NUMERIC = frozenset({INT, DOUBLE})

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<double>(?:[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+))
  | (?P<int>0[xX][0-9a-fA-F]+[uU]?|[0-9]+[uU]?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[<>!+\-*/%?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"true", "false", "null", "in"}
_STRING_METHODS = {"startsWith", "endsWith", "contains"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class CheckedCondition:
    """A condition that parsed and typed, with the features it reads.

    Attributes:
        executable: the same condition with each feature written as one variable
            (``buyer.count_1m`` as ``buyer__count_1m``): scalar variables reach CEL
            several times faster than maps of them.
    """

    source: str
    features: frozenset[str]
    executable: str


def variable(feature: str) -> str:
    """The CEL variable a feature is passed as (see ``CheckedCondition.executable``)."""
    return feature.replace(".", "__")


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = self._tokenise()
        self.index = 0
        self.depth = 0
        self.features: set[str] = set()
        self.spans: list[tuple[int, int, str]] = []

    # --- errors ---------------------------------------------------------------------

    def fail(self, message: str, offset: int, code: str = "rule-syntax") -> RuleError:
        line = self.source.count("\n", 0, offset) + 1
        column = offset - (self.source.rfind("\n", 0, offset) + 1) + 1
        return RuleError(message, code=code, line=line, column=column)

    def _tokenise(self) -> list[_Token]:
        tokens = []
        position = 0
        while position < len(self.source):
            match = _TOKEN_RE.match(self.source, position)
            if match is None:
                raise self.fail(f"unexpected character {self.source[position]!r}", position)
            kind = match.lastgroup or ""
            if kind != "space":
                text = match.group()
                if kind == "ident" and text in _KEYWORDS:
                    kind = "keyword"
                tokens.append(_Token(kind, text, position))
            position = match.end()
        tokens.append(_Token("end", "", len(self.source)))
        return tokens

    # --- token stream -----------------------------------------------------------------

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text: str) -> _Token | None:
        if self.current.text == text and self.current.kind in ("op", "keyword"):
            return self.take()
        return None

    def expect(self, text: str) -> _Token:
        token = self.accept(text)
        if token is None:
            found = self.current.text or "the end of the condition"
            raise self.fail(f"expected '{text}' but found {found!r}", self.current.offset)
        return token

    # --- grammar (cel-spec langdef.md, "Syntax") -----------------------------------------

    def check(self) -> str:
        result = self.expr()
        if self.current.kind != "end":
            raise self.fail(f"unexpected {self.current.text!r}", self.current.offset)
        return result

    def expr(self) -> str:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("the condition is nested too deeply", self.current.offset)
        start = self.current.offset
        condition = self.binary_or()
        if (question := self.accept("?")) is not None:
            self._want(condition, {BOOL}, "the condition before '?'", start)
            left_at = self.current.offset
            left = self.binary_or()
            self.expect(":")
            right = self.expr()
            if left != right:
                raise self.fail(
                    f"both branches of '?:' must have one type, not {left} and {right}",
                    left_at,
                    "rule-type",
                )
            del question
            condition = left
        self.depth -= 1
        return condition

    def _want(self, found: str, allowed: set[str] | frozenset[str], what: str, at: int) -> None:
        if found not in allowed:
            wanted = " or ".join(sorted(allowed))
            raise self.fail(f"{what} must be {wanted}, not {found}", at, "rule-type")

    def _logical(self, operator: str, operand: str) -> str:
        start = self.current.offset
        left = getattr(self, operand)()
        while (token := self.accept(operator)) is not None:
            self._want(left, {BOOL}, f"the left side of '{operator}'", start)
            right_at = self.current.offset
            right = getattr(self, operand)()
            self._want(right, {BOOL}, f"the right side of '{operator}'", right_at)
            del token
            left = BOOL
        return str(left)

    def binary_or(self) -> str:
        return self._logical("||", "binary_and")

    def binary_and(self) -> str:
        return self._logical("&&", "relation")

    def relation(self) -> str:
        left = self.addition()
        while self.current.text in ("<", "<=", ">", ">=", "==", "!=", "in"):
            operator = self.take()
            right = self.addition()
            if operator.text == "in":
                if not right.startswith("list<"):
                    raise self.fail(
                        f"the right side of 'in' must be a list, not {right}",
                        operator.offset,
                        "rule-type",
                    )
                element = right[5:-1]
                if element != "dyn" and not _comparable(left, element):
                    raise self.fail(
                        f"'in' looks for a {left} in a list of {element}",
                        operator.offset,
                        "rule-type",
                    )
            elif operator.text in ("==", "!="):
                if not _comparable(left, right):
                    raise self.fail(
                        f"cannot compare {left} with {right}", operator.offset, "rule-type"
                    )
            elif not ((left in NUMERIC and right in NUMERIC) or (left == right == STRING)):
                raise self.fail(
                    f"cannot order {left} and {right} with '{operator.text}'",
                    operator.offset,
                    "rule-type",
                )
            left = BOOL
        return left

    def _arithmetic(self, operators: tuple[str, ...], operand: str) -> str:
        left: str = getattr(self, operand)()
        while self.current.text in operators and self.current.kind == "op":
            operator = self.take()
            right: str = getattr(self, operand)()
            if operator.text == "+" and left == right == STRING:
                continue
            ok = (left == right == INT) if operator.text == "%" else (left == right in NUMERIC)
            if not ok:
                hint = (
                    "; convert with double(...) or int(...)"
                    if left in NUMERIC and right in NUMERIC
                    else ""
                )
                raise self.fail(
                    f"cannot apply '{operator.text}' to {left} and {right}{hint}",
                    operator.offset,
                    "rule-type",
                )
        return left

    def addition(self) -> str:
        return self._arithmetic(("+", "-"), "multiplication")

    def multiplication(self) -> str:
        return self._arithmetic(("*", "/", "%"), "unary")

    def unary(self) -> str:
        token = self.current
        if self.accept("!") is not None:
            operand = self.unary()
            self._want(operand, {BOOL}, "the operand of '!'", token.offset)
            return BOOL
        if self.accept("-") is not None:
            operand = self.unary()
            self._want(operand, NUMERIC, "the operand of '-'", token.offset)
            return operand
        return self.member()

    def member(self) -> str:
        token = self.current
        if token.kind == "ident" and token.text in GROUPS:
            self.take()
            dot = self.accept(".")
            if dot is None:
                raise self.fail(
                    f"{token.text} is a group of features: name one, e.g. {_example(token.text)}",
                    token.offset,
                    "unknown-feature",
                )
            name_token = self.current
            if name_token.kind != "ident":
                raise self.fail("expected a feature name after '.'", name_token.offset)
            self.take()
            name = f"{token.text}.{name_token.text}"
            if name not in FEATURES:
                raise self.fail(_unknown(name), name_token.offset, "unknown-feature")
            self.features.add(name)
            self.spans.append((token.offset, name_token.offset + len(name_token.text), name))
            kind: str = FEATURES[name][0].value
        else:
            kind = self.primary()
        while True:
            if (dot := self.accept(".")) is not None:
                method = self.current
                if method.kind != "ident":
                    raise self.fail("expected a name after '.'", method.offset)
                self.take()
                if method.text not in _STRING_METHODS:
                    raise self.fail(
                        f"unknown function {method.text}", method.offset, "unknown-function"
                    )
                self._want(kind, {STRING}, f"the receiver of {method.text}", dot.offset)
                arguments = self.arguments()
                if arguments != [STRING]:
                    raise self.fail(f"{method.text} takes one string", method.offset, "rule-type")
                kind = BOOL
            elif self.current.text in ("[", "{") and self.current.kind == "op":
                raise self.fail("indexing is not used in rules", self.current.offset)
            else:
                return kind

    def arguments(self) -> list[str]:
        self.expect("(")
        found = []
        if self.accept(")") is None:
            found.append(self.expr())
            while self.accept(",") is not None:
                found.append(self.expr())
            self.expect(")")
        return found

    def primary(self) -> str:
        token = self.take()
        if token.kind == "int":
            if token.text[-1] in "uU":
                raise self.fail("unsigned integers are not used in rules", token.offset)
            return INT
        if token.kind == "double":
            return DOUBLE
        if token.kind == "string":
            return STRING
        if token.kind == "keyword":
            if token.text in ("true", "false"):
                return BOOL
            if token.text == "null":
                raise self.fail("null is not used in rules: no feature is ever null", token.offset)
        if token.kind == "ident":
            if self.current.text == "(":
                return self.call(token)
            raise self.fail(_unknown(token.text), token.offset, "unknown-feature")
        if token.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if token.text == "[":
            elements = []
            if self.accept("]") is None:
                while True:
                    elements.append((self.current.offset, self.expr()))
                    if self.accept(",") is None:
                        break
                    if self.current.text == "]":
                        break
                self.expect("]")
            types = {kind for _, kind in elements}
            if len(types) > 1:
                raise self.fail(
                    f"a list holds one type, not {', '.join(sorted(types))}",
                    token.offset,
                    "rule-type",
                )
            return f"list<{types.pop() if types else 'dyn'}>"
        if token.text == "{":
            raise self.fail("maps are not used in rules", token.offset)
        found = token.text or "the end of the condition"
        raise self.fail(f"unexpected {found!r}", token.offset)

    def call(self, name: _Token) -> str:
        arguments = self.arguments()
        if name.text == "size":
            if len(arguments) != 1 or not (
                arguments[0] == STRING or arguments[0].startswith("list<")
            ):
                raise self.fail("size takes one string or list", name.offset, "rule-type")
            return INT
        if name.text in ("int", "double"):
            if len(arguments) != 1 or arguments[0] not in NUMERIC:
                raise self.fail(f"{name.text} takes one number", name.offset, "rule-type")
            return name.text
        raise self.fail(f"unknown function {name.text}", name.offset, "unknown-function")


def _comparable(left: str, right: str) -> bool:
    return left == right or (left in NUMERIC and right in NUMERIC)


def _example(group: str) -> str:
    return next(name for name in FEATURES if name.startswith(group + "."))


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(FEATURES), n=1)
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown feature {name}{suggestion}"


_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+)")


def check_condition(source: str) -> CheckedCondition:
    """Parse and type a condition; it must be a ``bool`` over known features.

    Raises:
        RuleError: ``rule-syntax``, ``unknown-feature``, ``unknown-function`` or
            ``rule-type``, with the line and column of the first problem.
    """
    if not isinstance(source, str) or not source.strip():
        raise RuleError("the condition is empty", code="rule-syntax")
    if len(source) > MAX_CONDITION:
        raise RuleError(
            f"the condition is longer than {MAX_CONDITION} characters", code="rule-syntax"
        )
    checker = _Checker(source)
    result = checker.check()
    if result != BOOL:
        raise RuleError(
            f"a condition must be bool (true or false), not {result}",
            code="rule-type",
            line=1,
            column=1,
        )
    compile_condition(source)
    executable = source
    for start, end, name in sorted(checker.spans, reverse=True):
        executable = executable[:start] + variable(name) + executable[end:]
    return CheckedCondition(source, frozenset(checker.features), executable)


def compile_condition(source: str) -> cel.Program:
    """The CEL program for a condition (checked with :func:`check_condition` first).

    Raises:
        RuleError: ``rule-syntax`` if CEL's own parser refuses it.
    """
    try:
        return cel.compile(source)
    except (ValueError, RuntimeError) as e:
        match = _CEL_POSITION.search(str(e))
        line, column = (int(match[1]), int(match[2])) if match else (None, None)
        raise RuleError(
            "CEL cannot parse the condition", code="rule-syntax", line=line, column=column
        ) from e


assert all(kind in FeatureType for kind, _ in FEATURES.values())
