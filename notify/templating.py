"""User templates: Jinja2 in its sandbox, bounded in what it may read, build and spend.

A subscription's template is written by a user and run by a worker on every delivery,
so it is treated as hostile:

- ``ImmutableSandboxedEnvironment``: no attribute starting with ``_``, no ``mro`` and
  friends, no mutation of lists and dicts; unsafe attribute names written literally
  are refused when the template is saved, dynamic ones when it renders.
- No loader and no ``include``/``import``/``extends``: a template cannot read a file.
  Its globals are ``range`` (capped by the sandbox), ``dict`` and ``namespace``.
- Size: every string a template builds (``~``, ``+``, ``*``, ``%``, filters, method
  calls, output) is checked against ``MAX_OUTPUT`` characters, and sizes are checked
  *before* the operations that could build a huge value in one step (``"x" * 10**9``,
  ``center(10**9)``, ``replace`` with a long text, ``join`` of many long texts,
  ``10 ** 10 ** 10``), so no single step allocates much more than the limit.
- Time: every loop iteration, call and filter ticks a deadline (``MAX_RENDER_SECONDS``);
  past it the render stops with :class:`TemplateError`.

A render raises :class:`TemplateError` for any failure, with the template's line when
known; the worker records it as the delivery's reason and carries on.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jinja2
import orjson
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SOURCE = 16 * 1024
"""Characters of template source a subscription may hold."""
MAX_OUTPUT = 256 * 1024
"""Characters a render (and any string it builds) may reach."""
MAX_ITEMS = 10_000
"""Items a template may build a list of by repetition (``[x] * n``)."""
MAX_RENDER_SECONDS = 0.1
MAX_INT_BITS = 4096
TICK_EVERY = 64  # loop iterations between two clock readings
_UNSAFE_NAMES = frozenset({"mro", "func_globals", "func_code", "gi_frame", "gi_code", "cr_frame"})
_WIDTHS = re.compile(r"\d+")
_BOUNDED_STR_METHODS = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "format", "format_map"}
)


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; ``line`` when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


class _Budget:
    __slots__ = ("deadline", "ticks")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.ticks = 0


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise TemplateError(f"the template ran longer than {MAX_RENDER_SECONDS * 1000:g} ms")


def size_of(value: Any, limit: int = MAX_OUTPUT) -> int:
    """About how many characters ``value`` is as text, counted up to just past ``limit``:
    shared references count each time they appear, as they would in the output, and
    the walk stops as soon as the limit is passed, so it costs at most ``limit`` steps."""
    if type(value) is str:  # the common case, without the walk
        return len(value) + 2
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, (bytes, bytearray)):
            total += len(item) + 3
        elif isinstance(item, Mapping):
            total += 2
            for k, v in item.items():
                stack += (k, v)
                total += 2
                if total > limit:
                    break
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 3
        else:
            total += 8
    return total


def _check_size(value: Any, what: str) -> Any:
    if size_of(value) > MAX_OUTPUT:
        raise TemplateError(f"{what} would be longer than {MAX_OUTPUT:,} characters")
    return value


def _check_args(args: Iterable[Any], what: str) -> None:
    if sum(size_of(a) for a in args) > MAX_OUTPUT:
        raise TemplateError(f"{what}: its arguments are longer than {MAX_OUTPUT:,} characters")


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str_method_guard(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call on ``text`` that would build a string far over the limit in one step."""
    ints = [_int_arg(a) for a in (*args, *kwargs.values())]
    if name in ("ljust", "rjust", "center", "zfill") and max(ints, default=0) > MAX_OUTPUT:
        raise TemplateError(f"{name}() width is over {MAX_OUTPUT:,}")
    if name == "expandtabs" and len(text) * max(ints, default=8) > MAX_OUTPUT:
        raise TemplateError("expandtabs() would be too long")
    if name == "replace" and args:
        new = args[1] if len(args) > 1 else ""
        if isinstance(new, str) and (len(text) + 1) * max(len(new), 1) > MAX_OUTPUT:
            raise TemplateError("replace() could build a text over the limit")
    if name == "join":
        items = list(args[0]) if args else []
        if size_of(items) + len(text) * len(items) > MAX_OUTPUT:
            raise TemplateError(f"join() would be longer than {MAX_OUTPUT:,} characters")
    if name in ("format", "format_map"):
        _check_widths(text)


def _check_widths(fmt: str) -> None:
    if sum(int(d) for d in _WIDTHS.findall(fmt) if len(d) < 12) > MAX_OUTPUT or any(
        len(d) >= 12 for d in _WIDTHS.findall(fmt)
    ):
        raise TemplateError("the format's widths are over the limit")


_PASSED = (jinja2.runtime.Context, jinja2.nodes.EvalContext, jinja2.Environment)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = [a for a in args if not isinstance(a, _PASSED)]
        values += kwargs.values()
        _check_args(values, f"filter {name}")
        if name in ("center", "indent") and any(_int_arg(v) > MAX_OUTPUT for v in values):
            raise TemplateError(f"filter {name}: width is over {MAX_OUTPUT:,}")
        if name == "indent" and len(values) > 1:
            text, width = str(values[0]), values[1]
            if isinstance(width, str) and (text.count("\n") + 1) * len(width) > MAX_OUTPUT:
                raise TemplateError("filter indent: the result would be too long")
            if (text.count("\n") + 1) * _int_arg(width) > MAX_OUTPUT:
                raise TemplateError("filter indent: the result would be too long")
        if name == "format" and values:
            _check_widths(str(values[0]))
        if name == "replace" and len(values) > 2:
            text, new = str(values[0]), str(values[2])
            if (len(text) + 1) * max(len(new), 1) > MAX_OUTPUT:
                raise TemplateError("filter replace: the result could be over the limit")
        if name == "join" and values:
            items = list(values[0]) if isinstance(values[0], Iterable) else []
            sep = values[1] if len(values) > 1 else ""
            if size_of(items) + len(str(sep)) * len(items) > MAX_OUTPUT:
                raise TemplateError(f"filter join: longer than {MAX_OUTPUT:,} characters")
        result = func(*args, **kwargs)
        if isinstance(result, str):
            _check_size(result, f"filter {name}")
        return result

    return bounded


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for n, item in enumerate(iterable, 1):
        if n % TICK_EVERY == 0:
            _tick()
        yield item


def _bounded_concat(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_OUTPUT:
        raise TemplateError(f"a text would be longer than {MAX_OUTPUT:,} characters")
    return value


class _Generator(CodeGenerator):
    """Jinja's code generator with every loop's iterable and every ``~`` bounded."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("bounded_iter"), [loop.iter], [], None, None
            )
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            finalize=_finalize,
            auto_reload=False,
            cache_size=0,
            keep_trailing_newline=True,
        )
        self.globals = {
            "range": self.globals["range"],
            "dict": dict,
            "namespace": self.globals["namespace"],
        }
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.policies["json.dumps_function"] = _json_dumps
        self.bounded_iter = _bounded_iter
        self.bounded_concat = _bounded_concat

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # refused at once, not an Undefined that renders as nothing (|attr('__class__'))
        raise SecurityError(f"the attribute {attribute!r} is not available")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in _UNSAFE_NAMES and super().is_safe_attribute(obj, attr, value)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        _tick()
        if operator == "**":
            if _int_arg(right) and _int_arg(left):
                if abs(left).bit_length() * right > MAX_INT_BITS:
                    raise TemplateError(f"a number over {MAX_INT_BITS} bits")
            elif isinstance(right, (int, float)) and abs(right) > 1024:
                raise TemplateError("an exponent over 1024")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    limit = MAX_OUTPUT if isinstance(seq, str) else MAX_ITEMS
                    if len(seq) * n > limit:
                        raise TemplateError("a repetition over the size limit")
            if (
                _int_arg(left)
                and _int_arg(right)
                and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS
            ):
                raise TemplateError(f"a number over {MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            _check_widths(left)
            _check_args((left, right), "%")
        elif operator == "+":
            _check_args((left, right), "+")
        return super().call_binop(context, operator, left, right)

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        _tick()
        # the sandbox hands out str.format wrapped: the bound method is __wrapped__
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _BOUNDED_STR_METHODS:
            _str_method_guard(owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str):
            _check_size(result, f"{name or 'a call'}()")
        return result


def _finalize(value: Any) -> Any:
    if type(value) is str:  # most outputs: one length, no walk
        if len(value) > MAX_OUTPUT:
            raise TemplateError(f"an output value is longer than {MAX_OUTPUT:,} characters")
        return value
    return _check_size(value, "an output value")


def _json_dumps(value: Any, **_: Any) -> str:
    # orjson for |tojson: several times the standard library's speed, keys sorted as
    # Jinja's default policy has them
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


TEXT = Sandbox(autoescape=False)
HTML = Sandbox(autoescape=True)


def _refuse_outside(tree: nodes.Template) -> None:
    """What the sandbox would only refuse at render time, refused when saved."""
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateError(
            "include, import and extends are not available in a template", node.lineno
        )
    for attr in tree.find_all(nodes.Getattr):
        if attr.attr.startswith("_") or attr.attr in _UNSAFE_NAMES:
            raise TemplateError(f"the attribute {attr.attr!r} is not available", attr.lineno)
    for item in tree.find_all(nodes.Getitem):
        key = item.arg
        if (
            isinstance(key, nodes.Const)
            and isinstance(key.value, str)
            and (key.value.startswith("_") or key.value in _UNSAFE_NAMES)
        ):
            raise TemplateError(f"the attribute {key.value!r} is not available", item.lineno)


@functools.lru_cache(maxsize=512)
def compile_template(source: str, html: bool = False) -> jinja2.Template:
    """The compiled template (cached by source), or TemplateError with the line."""
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"a template is at most {MAX_SOURCE:,} characters")
    env = HTML if html else TEXT
    try:
        tree = env.parse(source)
        _refuse_outside(tree)
        return env.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", exc.lineno) from None
    except TemplateError:
        raise
    except (RecursionError, MemoryError):
        raise TemplateError("the template nests too deeply") from None
    except Exception as exc:  # the parser's own ValueErrors, e.g. a 5,000-digit number
        raise TemplateError(f"{type(exc).__name__}: {exc}"[:200]) from None


def check(source: str, html: bool = False) -> None:
    """Raise TemplateError if the template cannot be compiled (saved subscriptions)."""
    compile_template(source, html)


def render(source: str, variables: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a user template; TemplateError (with the reason and line) on any failure."""
    template = compile_template(source, html)
    token = _budget.set(_Budget(MAX_RENDER_SECONDS))
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(variables):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TemplateError(f"the output is longer than {MAX_OUTPUT:,} characters")
            parts.append(part)
    except TemplateError as exc:
        if exc.line is None:
            raise TemplateError(exc.reason, _template_line(exc)) from None
        raise
    except SecurityError as exc:
        raise TemplateError(f"not allowed: {exc}", _template_line(exc)) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(exc.message or "undefined value", _template_line(exc)) from None
    except RecursionError:
        raise TemplateError("the template recursed too deeply") from None
    except MemoryError:
        raise TemplateError("the template ran out of memory") from None
    except Exception as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}"[:300], _template_line(exc)) from None
    finally:
        _budget.reset(token)
    return "".join(parts)


def _template_line(exc: BaseException) -> int | None:
    """The template line an error came from: Jinja rewrites tracebacks so that the
    frames of template code carry the template's file name and line numbers."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
