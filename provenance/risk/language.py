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
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
            (``buyer.count_1m`` as ``buyer__count_1m``), for CEL's own runtime.
        run: the condition as a Python function of the features (a mapping of feature
            name to value), with CEL's semantics for the subset rules use: what CEL
            reports as an error raises. The engine decides with it: handing 30 features
            to CEL's runtime costs more than evaluating 50 rules here.
    """

    source: str
    features: frozenset[str]
    executable: str
    run: Callable[[Mapping[str, Any]], Any]


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

    def check(self) -> _Node:
        result = self.expr()
        if self.current.kind != "end":
            raise self.fail(f"unexpected {self.current.text!r}", self.current.offset)
        return result

    def expr(self) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("the condition is nested too deeply", self.current.offset)
        start = self.current.offset
        condition = self.binary_or()
        if self.accept("?") is not None:
            self._want(condition.type, {BOOL}, "the condition before '?'", start)
            left_at = self.current.offset
            left = self.binary_or()
            self.expect(":")
            right = self.expr()
            if left.type != right.type:
                raise self.fail(
                    f"both branches of '?:' must have one type, not {left.type} and {right.type}",
                    left_at,
                    "rule-type",
                )
            test, yes, no = condition.run, left.run, right.run
            condition = _Node(left.type, lambda v: yes(v) if test(v) else no(v))
        self.depth -= 1
        return condition

    def _want(self, found: str, allowed: set[str] | frozenset[str], what: str, at: int) -> None:
        if found not in allowed:
            wanted = " or ".join(sorted(allowed))
            raise self.fail(f"{what} must be {wanted}, not {found}", at, "rule-type")

    def _logical(self, operator: str, operand: str) -> _Node:
        start = self.current.offset
        left: _Node = getattr(self, operand)()
        while self.accept(operator) is not None:
            self._want(left.type, {BOOL}, f"the left side of '{operator}'", start)
            right_at = self.current.offset
            right: _Node = getattr(self, operand)()
            self._want(right.type, {BOOL}, f"the right side of '{operator}'", right_at)
            left = _Node(BOOL, _both(left.run, right.run, operator == "&&"))
        return left

    def binary_or(self) -> _Node:
        return self._logical("||", "binary_and")

    def binary_and(self) -> _Node:
        return self._logical("&&", "relation")

    def relation(self) -> _Node:
        left = self.addition()
        while self.current.text in ("<", "<=", ">", ">=", "==", "!=", "in"):
            operator = self.take()
            right = self.addition()
            if operator.text == "in":
                if not right.type.startswith("list<"):
                    raise self.fail(
                        f"the right side of 'in' must be a list, not {right.type}",
                        operator.offset,
                        "rule-type",
                    )
                element = right.type[5:-1]
                if element != "dyn" and not _comparable(left.type, element):
                    raise self.fail(
                        f"'in' looks for a {left.type} in a list of {element}",
                        operator.offset,
                        "rule-type",
                    )
            elif operator.text in ("==", "!="):
                if not _comparable(left.type, right.type):
                    raise self.fail(
                        f"cannot compare {left.type} with {right.type}",
                        operator.offset,
                        "rule-type",
                    )
            elif not (
                (left.type in NUMERIC and right.type in NUMERIC)
                or (left.type == right.type == STRING)
            ):
                raise self.fail(
                    f"cannot order {left.type} and {right.type} with '{operator.text}'",
                    operator.offset,
                    "rule-type",
                )
            left = _Node(BOOL, _binary(_RELATIONS[operator.text], left.run, right.run))
        return left

    def _arithmetic(self, operators: tuple[str, ...], operand: str) -> _Node:
        left: _Node = getattr(self, operand)()
        while self.current.text in operators and self.current.kind == "op":
            operator = self.take()
            right: _Node = getattr(self, operand)()
            if operator.text == "+" and left.type == right.type == STRING:
                left = _Node(STRING, _binary(_concat, left.run, right.run))
                continue
            ok = (
                (left.type == right.type == INT)
                if operator.text == "%"
                else (left.type == right.type and left.type in NUMERIC)
            )
            if not ok:
                hint = (
                    "; convert with double(...) or int(...)"
                    if left.type in NUMERIC and right.type in NUMERIC
                    else ""
                )
                raise self.fail(
                    f"cannot apply '{operator.text}' to {left.type} and {right.type}{hint}",
                    operator.offset,
                    "rule-type",
                )
            table = _INT_ARITHMETIC if left.type == INT else _DOUBLE_ARITHMETIC
            left = _Node(left.type, _binary(table[operator.text], left.run, right.run))
        return left

    def addition(self) -> _Node:
        return self._arithmetic(("+", "-"), "multiplication")

    def multiplication(self) -> _Node:
        return self._arithmetic(("*", "/", "%"), "unary")

    def unary(self) -> _Node:
        token = self.current
        if self.accept("!") is not None:
            operand = self.unary()
            self._want(operand.type, {BOOL}, "the operand of '!'", token.offset)
            run = operand.run
            return _Node(BOOL, lambda v: not run(v))
        if self.accept("-") is not None:
            operand = self.unary()
            self._want(operand.type, NUMERIC, "the operand of '-'", token.offset)
            run = operand.run
            if operand.type == INT:
                return _Node(INT, lambda v: _negate(run(v)))
            return _Node(DOUBLE, lambda v: -run(v))
        return self.member()

    def member(self) -> _Node:
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
            node = _Node(FEATURES[name][0].value, operator.itemgetter(name))
        else:
            node = self.primary()
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
                self._want(node.type, {STRING}, f"the receiver of {method.text}", dot.offset)
                arguments = self.arguments()
                if [a.type for a in arguments] != [STRING]:
                    raise self.fail(f"{method.text} takes one string", method.offset, "rule-type")
                node = _Node(
                    BOOL, _binary(_STRING_METHODS[method.text], node.run, arguments[0].run)
                )
            elif self.current.text in ("[", "{") and self.current.kind == "op":
                raise self.fail("indexing is not used in rules", self.current.offset)
            else:
                return node

    def arguments(self) -> list[_Node]:
        self.expect("(")
        found = []
        if self.accept(")") is None:
            found.append(self.expr())
            while self.accept(",") is not None:
                found.append(self.expr())
            self.expect(")")
        return found

    def primary(self) -> _Node:
        token = self.take()
        if token.kind == "int":
            if token.text[-1] in "uU":
                raise self.fail("unsigned integers are not used in rules", token.offset)
            return _constant(INT, _literal(token.text))
        if token.kind == "double":
            return _constant(DOUBLE, _literal(token.text))
        if token.kind == "string":
            return _constant(STRING, _literal(token.text))
        if token.kind == "keyword":
            if token.text in ("true", "false"):
                return _constant(BOOL, token.text == "true")
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
            elements: list[_Node] = []
            if self.accept("]") is None:
                while True:
                    elements.append(self.expr())
                    if self.accept(",") is None:
                        break
                    if self.current.text == "]":
                        break
                self.expect("]")
            types = {e.type for e in elements}
            if len(types) > 1:
                raise self.fail(
                    f"a list holds one type, not {', '.join(sorted(types))}",
                    token.offset,
                    "rule-type",
                )
            runs = tuple(e.run for e in elements)
            return _Node(f"list<{types.pop() if types else 'dyn'}>", lambda v: [r(v) for r in runs])
        if token.text == "{":
            raise self.fail("maps are not used in rules", token.offset)
        found = token.text or "the end of the condition"
        raise self.fail(f"unexpected {found!r}", token.offset)

    def call(self, name: _Token) -> _Node:
        arguments = self.arguments()
        if name.text == "size":
            if len(arguments) != 1 or not (
                arguments[0].type == STRING or arguments[0].type.startswith("list<")
            ):
                raise self.fail("size takes one string or list", name.offset, "rule-type")
            run = arguments[0].run
            return _Node(INT, lambda v: len(run(v)))
        if name.text in ("int", "double"):
            if len(arguments) != 1 or arguments[0].type not in NUMERIC:
                raise self.fail(f"{name.text} takes one number", name.offset, "rule-type")
            run = arguments[0].run
            if name.text == "double":
                return _Node(DOUBLE, lambda v: float(run(v)))
            if arguments[0].type == INT:
                return arguments[0]
            return _Node(INT, lambda v: _to_int(run(v)))
        raise self.fail(f"unknown function {name.text}", name.offset, "unknown-function")


# --- evaluation: CEL's semantics for the subset rules use (cel-spec langdef.md) --------

Runner = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class _Node:
    """A checked subexpression: its CEL type and a function computing it from the
    features (raising on what CEL reports as an error: overflow, division by zero)."""

    type: str
    run: Runner


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class EvaluationError(ArithmeticError):
    """What CEL reports as an evaluation error ("no_such_overload", overflow, ...)."""


def _int64(value: int) -> int:
    # "Integer overflow ... is an error" (langdef.md, "Numeric values").
    if not INT64_MIN <= value <= INT64_MAX:
        raise EvaluationError("integer overflow")
    return value


def _negate(value: int) -> int:
    # As the runtime does: the negation of the smallest int is itself, not an error.
    return value if value == INT64_MIN else -value


def _int_divide(left: int, right: int) -> int:
    if right == 0:
        raise EvaluationError("divide by zero")
    quotient = abs(left) // abs(right)
    return _int64(quotient if (left < 0) == (right < 0) else -quotient)


def _int_modulo(left: int, right: int) -> int:
    if right == 0:
        raise EvaluationError("modulus by zero")
    if left == INT64_MIN and right == -1:
        raise EvaluationError("integer overflow")
    # Truncated division: the remainder takes the dividend's sign.
    remainder = abs(left) % abs(right)
    return remainder if left >= 0 else -remainder


def _double_divide(left: float, right: float) -> float:
    # IEEE 754: x / 0.0 is an infinity (or NaN), not an error.
    if right == 0.0:
        if left == 0.0 or math.isnan(left):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right)
    return left / right


def _to_int(value: float) -> int:
    # int(double) truncates toward zero; out of range (or NaN) is an error.
    if math.isnan(value) or not float(INT64_MIN) <= value < float(INT64_MAX):
        raise EvaluationError("double out of int range")
    return int(value)


def _concat(left: str, right: str) -> str:
    return left + right


_INT_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: _int64(a + b),
    "-": lambda a, b: _int64(a - b),
    "*": lambda a, b: _int64(a * b),
    "/": _int_divide,
    "%": _int_modulo,
}
_DOUBLE_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _double_divide,
}


def _ordered(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    # The runtime refuses to order NaN ("no such overload"); equality is simply false.
    def run(left: Any, right: Any) -> Any:
        if left != left or right != right:
            raise EvaluationError("NaN cannot be ordered")
        return compare(left, right)

    return run


_RELATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda item, items: item in items,
}
_STRING_METHODS: dict[str, Callable[[Any, Any], Any]] = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
    "contains": operator.contains,
}


def _binary(op: Callable[[Any, Any], Any], left: Runner, right: Runner) -> Runner:
    return lambda v: op(left(v), right(v))


def _both(left: Runner, right: Runner, conjunction: bool) -> Runner:
    """``&&`` or ``||`` as CEL defines them: commutative even with errors, so
    ``error && false`` is false and ``error || true`` is true (langdef.md, "Logical
    operators"); otherwise the error stands."""
    absorbing = not conjunction  # false absorbs &&, true absorbs ||

    def run(v: Mapping[str, Any]) -> bool:
        try:
            first: bool | None = left(v)
        except Exception:
            first = None
        if first is absorbing:
            return absorbing
        second: bool = right(v)
        if first is None:
            if second is absorbing:
                return absorbing
            raise EvaluationError("an operand failed")
        return bool(second)

    return run


def _literal(text: str) -> Any:
    """A literal's value, as CEL itself reads it (escapes, hex, exponents)."""
    return cel.evaluate(text)


def _constant(kind: str, value: Any) -> _Node:
    return _Node(kind, lambda v: value)


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
    if result.type != BOOL:
        raise RuleError(
            f"a condition must be bool (true or false), not {result.type}",
            code="rule-type",
            line=1,
            column=1,
        )
    compile_condition(source)
    executable = source
    for start, end, name in sorted(checker.spans, reverse=True):
        executable = executable[:start] + variable(name) + executable[end:]
    return CheckedCondition(source, frozenset(checker.features), executable, result.run)


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
