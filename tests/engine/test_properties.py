"""Property tests (hypothesis) for what must hold for every input, hostile or random:

- a key that `validate_key` accepts can never leave the prefix or the file backend's root,
  and the rules it documents are exactly the ones it applies;
- `Store.path` of an accepted key stays under ``bucket/prefix``; a refused key never reaches
  the store;
- template rendering either gives a string or raises `UsageError`, substitutes what the key
  functions return and nothing else, and the key it yields is checked like any other key;
- the arch suffix keeps a valid key valid, in the same directory.
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cacher.errors import UsageError
from cacher.keying.keyfunc import KeyContext, KeyFunction
from cacher.keying.keyrules import validate_key, validate_list_prefix, validate_prefix
from cacher.keying.keytemplate import arch_suffixed, insert_before_extension, render, split_extension
from cacher.stores.base import Store
from cacher.stores.local import LocalStore

SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Segments biased towards the dangerous ones, plus arbitrary text (control characters,
# backslashes, unicode, NUL).
HOSTILE = st.sampled_from(
    ["", ".", "..", "...", "a", "a.b", " ", "~", "%2e%2e", "\\", "..\\..", "\x00", "C:"]
)
SEGMENT = st.one_of(HOSTILE, st.text(min_size=0, max_size=8))
KEYS = st.one_of(
    st.lists(SEGMENT, min_size=1, max_size=6).map("/".join),
    st.lists(SEGMENT, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
    st.text(max_size=40),
)


def expected_valid(key: str) -> bool:
    """The documented rules, restated independently."""
    return (
        bool(key)
        and not key.startswith("/")
        and "\\" not in key
        and not any(ord(c) < 32 or ord(c) == 127 for c in key)
        # control, format (bidi, zero-width), surrogate (not UTF-8) and private-use characters
        and not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in key)
        and all(seg not in ("", ".", "..") for seg in key.split("/"))
        # cacher's own temporaries
        and all(".cacher-tmp-" not in seg and ".cacher-staging-" not in seg for seg in key.split("/"))
    )


def expected_valid_prefix(prefix: str) -> bool:
    """A prefix: the key rules, and no reserved segment (``_scopes``, ``_paths``, any case)."""
    return expected_valid(prefix) and all(seg.casefold() not in ("_scopes", "_paths") for seg in prefix.split("/"))


def accepted(key: str) -> bool:
    try:
        validate_key(key)
    except UsageError:
        return False
    return True


@SETTINGS
@given(KEYS)
@example("../etc/passwd")
@example("a/../../b")
@example("/abs")
@example("a//b")
@example("a/./b")
@example("a\\..\\b")
@example("a\x00b")
@example("ok/key.tar.zst")
@example("a/.cacher-tmp-")
def test_validate_key_applies_exactly_the_documented_rules(key: str) -> None:
    assert accepted(key) == expected_valid(key)


@SETTINGS
@given(KEYS)
def test_an_accepted_key_never_escapes(key: str) -> None:
    if not accepted(key):
        return
    root = "/srv/cache/prefix"
    joined = posixpath.join(root, key)
    assert posixpath.normpath(joined) == joined  # nothing to collapse: no '..', '.', '//'
    assert joined.startswith(root + "/")
    assert not key.startswith("/") and ".." not in key.split("/")


PREFIXES = st.one_of(
    st.just(""), st.lists(st.sampled_from(["p", "proj", "a.b", "x-1"]), min_size=1, max_size=3).map("/".join)
)


@SETTINGS
@given(KEYS, PREFIXES)
def test_store_path_stays_under_bucket_and_prefix(key: str, prefix: str) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    store = Store(MemoryFileSystem(skip_instance_cache=True), "bucket", prefix, protocol="memory")
    base = "/".join(p for p in ("bucket", prefix) if p)
    if not accepted(key):
        with pytest.raises(UsageError):
            store.path(key)
        return
    path = store.path(key)
    assert path == f"{base}/{key}"
    assert posixpath.normpath(path) == path and path.startswith(base + "/")
    assert store._key_of(path) == key  # the listing maps it back to the same key


@SETTINGS
@given(KEYS)
def test_local_store_path_stays_under_its_root(key: str) -> None:
    import fsspec.implementations.local as local

    root = "/srv/cacher-root"
    store = LocalStore(local.LocalFileSystem(), root, "pre")
    if not accepted(key):
        with pytest.raises(UsageError):
            store.path(key)
        return
    path = store.path(key)
    assert os.path.normpath(path) == path
    assert Path(path).is_relative_to(Path(root) / "pre")


@SETTINGS
@given(KEYS)
@example("proj/_scopes/main")
@example("_PATHS/x")
@example("k\u202etxt")
def test_prefix_and_list_prefix_follow_the_key_rules(text: str) -> None:
    stripped = text.strip("/")
    try:
        out = validate_prefix(text)
    except UsageError:
        assert stripped and not expected_valid_prefix(stripped)
    else:
        assert out == stripped and (not out or expected_valid_prefix(out))
    try:
        validate_list_prefix(text)
    except UsageError:
        assert text.rstrip("/") and not expected_valid(text.rstrip("/"))


VALID_KEYS = KEYS.filter(accepted)


@SETTINGS
@given(VALID_KEYS, st.sampled_from(["linux-amd64", "darwin-arm64", "abc123"]))
def test_suffix_keeps_a_valid_key_valid_in_the_same_directory(key: str, text: str) -> None:
    out = insert_before_extension(key, text)
    validate_key(out)
    assert out.rpartition("/")[0] == key.rpartition("/")[0]
    stem, ext = split_extension(key)
    assert stem + ext == key
    validate_key(arch_suffixed(key))


# -- template rendering ---------------------------------------------------------------------------


class Fixed(KeyFunction):
    def __init__(self, value: str) -> None:
        self.value = value

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        return self.value


NAMES = st.sampled_from(["hash", "os", "env", "x", "a.b", "k-1"])
VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["..", "../..", "/etc", "a/b", "{x}", "}", ""]))
TEXT = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=10)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]]]:
    parts, used = [], []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(TEXT))
        name = draw(NAMES)
        arg = draw(
            st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=6))
        )
        parts.append("{" + name + (f":{arg}" if arg is not None else "") + "}")
        used.append((name, arg))
    parts.append(draw(TEXT))
    return "".join(parts), used


@SETTINGS
@given(templates(), st.dictionaries(NAMES, VALUES))
def test_render_substitutes_exactly_what_key_functions_return(tpl, values: dict[str, str]) -> None:
    template, used = tpl

    def lookup(name: str) -> KeyFunction:
        if name not in values:
            raise UsageError(f"unknown placeholder {{{name}}}")
        return Fixed(values[name])

    ctx = KeyContext()
    try:
        key = render(template, ctx, lookup)
    except UsageError:
        # Only an unknown placeholder, or a value that looks like a placeholder, refuses.
        assert any(n not in values for n, _ in used) or any(
            "{" in values[n] or "}" in values[n] for n, _ in used if n in values
        )
        return
    expected = re.sub(r"\{([A-Za-z0-9_.-]+)(?::([^{}]*))?\}", lambda m: values[m.group(1)], template)
    assert key == expected
    # Whatever the rendering yields is a candidate key like any other: checked before use.
    if accepted(key):
        assert posixpath.normpath(posixpath.join("/r", key)).startswith("/r/")


@SETTINGS
@given(st.text(max_size=30))
def test_render_of_arbitrary_text_raises_only_usage_errors(template: str) -> None:
    def lookup(name: str) -> KeyFunction:
        if name in ("os", "arch"):
            return Fixed(name)
        raise UsageError(f"unknown placeholder {{{name}}}")

    try:
        out = render(template, KeyContext(), lookup)
    except UsageError:
        return
    assert isinstance(out, str)
    assert "{" not in out and "}" not in out


@SETTINGS
@given(st.sampled_from(["../../etc", "/abs", "a/./b", "ok", "a\\b", "x/..", "dir/ok"]))
def test_env_placeholder_cannot_smuggle_an_escaping_key(value: str) -> None:
    """``{env:NAME}`` renders what the environment holds; the key rules refuse the bad ones."""
    from cacher.keys.builtin import EnvKey

    key = render("cache/{env:V}.tar.zst", KeyContext(environ={"V": value}), lambda name: EnvKey())
    assert accepted(key) == expected_valid(key)
    if accepted(key):
        assert posixpath.normpath(posixpath.join("/r", key)).startswith("/r/cache")
