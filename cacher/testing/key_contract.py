"""The key-function contract as tests: subclass `KeyFunctionContract`, give it a
``key_function`` fixture, the arguments it accepts and those it refuses.

Every built-in key function runs it (tests/keys/test_keys.py), and so should a third-party one:
the promises are those of `cacher.keying.keyfunc.KeyFunction` — the same inputs give the same value
every time, the value is text a key can hold, and bad input is a `UsageError` (exit 2 with one
line), never another exception.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from cacher.errors import UsageError
from cacher.keying.keyfunc import KeyContext, KeyFunction

__all__ = ["KeyFunctionContract"]


class KeyFunctionContract:
    """Tests every key function must pass. ``good_args`` are rendered with the ``key_context``
    fixture (override it to give ``--hash-from`` files or an environment); ``bad_args`` must
    be refused with `UsageError`."""

    good_args: ClassVar[tuple[str | None, ...]] = (None,)
    bad_args: ClassVar[tuple[str | None, ...]] = ()

    @pytest.fixture
    def key_function(self) -> KeyFunction:  # pragma: no cover - each subclass provides it
        raise NotImplementedError("a KeyFunctionContract subclass defines a 'key_function' fixture")

    @pytest.fixture
    def key_context(self) -> KeyContext:
        return KeyContext()

    def test_the_same_inputs_give_the_same_value(
        self, key_function: KeyFunction, key_context: KeyContext
    ) -> None:
        for arg in self.good_args:
            first = key_function.render(arg, key_context)
            assert isinstance(first, str) and first, arg
            assert key_function.render(arg, key_context) == first, arg

    def test_the_value_can_be_part_of_a_key(self, key_function: KeyFunction, key_context: KeyContext) -> None:
        for arg in self.good_args:
            value = key_function.render(arg, key_context)
            assert value == value.strip() and "\n" not in value and "\\" not in value, (arg, value)

    def test_bad_input_is_a_usage_error(self, key_function: KeyFunction, key_context: KeyContext) -> None:
        for arg in self.bad_args:
            with pytest.raises(UsageError) as caught:
                key_function.render(arg, key_context)
            assert "\n" not in caught.value.message, arg

    def test_it_is_registered(self, key_function: KeyFunction) -> None:
        """Loaded through the entry points, as a template would load it."""
        from cacher.registry import Registry

        registry = Registry.from_entry_points()
        assert type(key_function) in {type(registry.key_function(n)) for n in registry.names("keys")}
