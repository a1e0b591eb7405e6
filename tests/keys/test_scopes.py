"""Cache poisoning: read-only jobs and branch scopes, on SeaweedFS through the installed cacher.

- With ``read_only`` no write request reaches the store (a recording proxy sees every request),
  every command exits as a successful run and says what it did not do; restores work.
- With credentials that may only read (a SeaweedFS identity with Read and List), a write exits 2
  naming the permission, or warns under ``--soft-fail``.
- A scope's objects are invisible to another scope's exact key and restore keys; a fallback
  scope's object is restored as a partial hit naming its scope; ``_scopes`` is reserved.
- Scope names map to prefixes injectively: names that slug alike (case, punctuation, length)
  are different scopes, and ``cacher scope NAME`` prints the prefix each maps to.
- ``_paths/`` is written only by the ``paths`` kind; ``exists`` and ``list`` still name it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import assert_one_error_line, tree_files
from tests.realparts.recording_proxy import RecordingProxy

pytestmark = pytest.mark.s3

WRITES = {"PUT", "POST", "DELETE"}


def s3(server: Any, bucket: str, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "CACHER_ENDPOINT": endpoint or server.endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
        "CACHER_PREFIX": "proj",
        **extra,
    }


def tree(root: Path, content: str) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "f.txt").write_text(content)
    return root


def test_read_only_sends_no_write_and_restores_as_usual(cacher, seaweed_s3, s3_bucket, tmp_path: Path, http) -> None:
    rw = s3(seaweed_s3, s3_bucket)
    assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "t", "v1")), extra_env=rw).code == 0
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    assert cacher("upload", "old.bin", str(f), extra_env=rw).code == 0
    url = http.put("tool", b"tool bytes")
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        ro = s3(seaweed_s3, s3_bucket, proxy.endpoint, CACHER_READ_ONLY="1")
        runs = {
            "upload": cacher("upload", "new.bin", str(f), "--json", extra_env=ro),
            "dir upload": cacher("dir", "upload", "x.tar.zst", str(tmp_path / "t"), extra_env=ro),
            "delete": cacher("delete", "old.bin", extra_env=ro),
            "prune": cacher("prune", "--older-than", "0s", extra_env=ro),
            "fetch": cacher("download", "k.bin", str(tmp_path / "tool"), "--url", url, "--json", extra_env=ro),
            "ensure": cacher(
                "dir", "ensure", "built.tar.zst", str(tmp_path / "built"), "--",
                "sh", "-c", f"mkdir -p {tmp_path}/built && echo b > {tmp_path}/built/b", extra_env=ro,
            ),
            "doctor": cacher("doctor", extra_env=ro),
            "restore": cacher("dir", "download", "deps.tar.zst", str(tmp_path / "restored"), extra_env=ro),
        }
        methods = {r.method for r in proxy.requests}
    for name, run in runs.items():
        assert run.code == 0, f"{name}: {run}"
    assert not methods & WRITES, f"write requests reached the store: {methods}"
    assert json.loads(runs["upload"].out)["outcome"] == "read-only"
    assert "read-only: new.bin not stored" in runs["upload"].err
    assert "read-only: old.bin not deleted" in runs["delete"].err
    assert "read-only: nothing deleted" in runs["prune"].err
    fetched = json.loads(runs["fetch"].out)
    assert (fetched["outcome"], fetched["raw_bytes"]) == ("fetched-not-stored", 10)
    assert (tmp_path / "tool").read_bytes() == b"tool bytes"
    assert "no canary written" in runs["doctor"].err
    assert tree_files(tmp_path / "restored") == {"sub/f.txt": b"v1"}
    # Nothing changed in the store.
    keys = cacher("list", extra_env=rw)
    assert keys.code == 0 and sorted(keys.out.split()) == ["deps.tar.zst", "old.bin"], keys


def test_read_only_credentials_make_a_write_fail_naming_the_permission(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    reader = {
        **s3(seaweed_s3, s3_bucket),
        "CACHER_S3_KEY_ID": seaweed_s3.read_key_id,
        "CACHER_S3_SECRET": seaweed_s3.read_secret,
    }
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    run = cacher("upload", "k.bin", str(f), extra_env=reader)
    assert_one_error_line(run, "access denied")
    soft = cacher("upload", "k.bin", str(f), "--soft-fail", extra_env=reader)
    assert soft.code == 0 and "warning: soft failure" in soft.err and "access denied" in soft.err, soft
    assert cacher("exists", "k.bin", extra_env=s3(seaweed_s3, s3_bucket)).code == 1


def test_a_scope_sees_its_own_objects_and_its_fallbacks_only(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    main = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="main")
    feature = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="Feature/X")
    other = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="123/merge")
    assert cacher("dir", "upload", "deps-1.tar.zst", str(tree(tmp_path / "m", "main")), extra_env=main).code == 0
    up = cacher("dir", "upload", "deps-2.tar.zst", str(tree(tmp_path / "f", "feature")), extra_env=feature)
    assert up.code == 0, up
    # Another scope sees neither, by exact key or restore key.
    dest = tmp_path / "dest"
    assert cacher("dir", "download", "deps-2.tar.zst", str(dest), extra_env=other).code == 3
    assert cacher("dir", "download", "deps-3.tar.zst", str(dest), "--restore-key", "deps-", extra_env=other).code == 3
    assert not dest.exists()
    # The feature branch falls back to main: a partial hit, named with its scope.
    with_fallback = {**feature, "CACHER_FALLBACK_SCOPES": "main"}
    run = cacher("dir", "download", "deps-1.tar.zst", str(dest), "--json", extra_env=with_fallback)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert (document["outcome"], document["scope"], document["matched_key"]) == ("partial", "main", "deps-1.tar.zst")
    assert "of scope main" in run.err
    assert tree_files(dest) == {"sub/f.txt": b"main"}
    # Its own scope comes first: its own deps-2 before main's deps-1 through the restore key.
    run = cacher("dir", "download", "deps-9.tar.zst", str(dest), "--restore-key", "deps-", "--json", extra_env=with_fallback)
    assert run.code == 0 and json.loads(run.out)["matched_key"] == "deps-2.tar.zst", run
    # The layout: <prefix>/_scopes/<segment>/<key>: a clean slug as it is, any other name as its
    # slug, "--" and 16 hex of the sha256 of the exact name.
    listed = cacher("list", extra_env=s3(seaweed_s3, s3_bucket))
    digest = hashlib.sha256(b"Feature/X").hexdigest()[:16]
    assert sorted(listed.out.split()) == [
        f"_scopes/feature-x--{digest}/deps-2.tar.zst",
        "_scopes/main/deps-1.tar.zst",
    ], listed


def test_scoped_names_are_reserved_and_empty_scopes_refused(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    plain = s3(seaweed_s3, s3_bucket)
    run = cacher("upload", "_scopes/main/k.bin", str(f), extra_env=plain)
    assert_one_error_line(run, "which is reserved (scopes: use --scope)")
    run = cacher("download", "_Scopes/main/k.bin", str(tmp_path / "out"), extra_env=plain)
    assert_one_error_line(run, "which is reserved (scopes: use --scope)")  # a case-insensitive store
    assert not (tmp_path / "out").exists()
    run = cacher("upload", "k.bin", str(f), extra_env={**plain, "CACHER_SCOPE": "///"})
    assert_one_error_line(run, "names no scope")
    assert cacher("list", extra_env=plain).out == ""
    # An empty variable is unset: the unscoped layout.
    assert cacher("upload", "k.bin", str(f), extra_env={**plain, "CACHER_SCOPE": ""}).code == 0
    assert cacher("list", extra_env=plain).out.split() == ["k.bin"]


def test_a_job_without_credentials_finds_the_store_unavailable(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """A fork's pull request gets no secrets: read-only or soft-failing, it misses with a
    warning and skips writes; otherwise the missing credentials are an error (exit 2)."""
    rw = s3(seaweed_s3, s3_bucket)
    assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "t", "v1")), extra_env=rw).code == 0
    bare = {k: v for k, v in rw.items() if not k.startswith("CACHER_S3_")}
    dest = tmp_path / "dest"
    strict = cacher("dir", "download", "deps.tar.zst", str(dest), extra_env=bare)
    assert_one_error_line(strict, "no S3 credentials")
    for flag in ("CACHER_READ_ONLY", "CACHER_SOFT_FAIL"):
        env = {**bare, flag: "1"}
        run = cacher("dir", "download", "deps.tar.zst", str(dest), "--json", extra_env=env)
        assert run.code == 3, run
        assert json.loads(run.out)["outcome"] == "miss"
        assert "no S3 credentials" in run.err and "error:" not in run.err, run
        assert not dest.exists()
        up = cacher("dir", "upload", "new.tar.zst", str(tmp_path / "t"), extra_env=env)
        assert up.code == 0 and "error:" not in up.err, up
    assert cacher("exists", "new.tar.zst", extra_env=rw).code == 1  # nothing was written


# Names that GitLab's slug folds together: case, punctuation, a trailing '-', and two long names
# that share their first 63 characters.
LONG = "a" * 63
COLLIDING = [
    ("main", "Main"),
    ("main", "MAIN"),
    ("main", "main."),
    ("main", "main-"),
    ("release/1.0", "release-1.0"),
    (LONG + "-one", LONG + "-two"),
]


def test_names_that_slug_alike_are_different_scopes(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """`Main` cannot overwrite what `main` restores: every pair lands on two prefixes."""
    good, evil = tmp_path / "good.txt", tmp_path / "evil.txt"
    good.write_text("good")
    evil.write_text("evil")
    for number, (victim, attacker) in enumerate(COLLIDING):
        key = f"tool-{number}"
        up = cacher("upload", key, str(good), extra_env=s3(seaweed_s3, s3_bucket, CACHER_SCOPE=victim))
        assert up.code == 0, up
        up = cacher("upload", "--force", key, str(evil), extra_env=s3(seaweed_s3, s3_bucket, CACHER_SCOPE=attacker))
        assert up.code == 0, up
        out = tmp_path / f"out-{number}"
        down = cacher("download", key, str(out), extra_env=s3(seaweed_s3, s3_bucket, CACHER_SCOPE=victim))
        assert down.code == 0, down
        assert out.read_text() == "good", (victim, attacker)
    prefixes: dict[str, str] = {}
    for name in {name for pair in COLLIDING for name in pair}:
        shown = cacher("scope", name, extra_env=s3(seaweed_s3, s3_bucket))
        assert shown.code == 0, shown
        prefixes[name] = shown.out.strip()
    assert len(set(prefixes.values())) == len(prefixes), prefixes
    # A clean slug keeps its readable prefix (existing objects of `main` stay where they are);
    # what `cacher scope` prints is where the objects are.
    assert prefixes["main"] == "proj/_scopes/main"
    listed = cacher("list", extra_env=s3(seaweed_s3, s3_bucket))
    assert listed.code == 0, listed
    stored = {f"proj/{k.rsplit('/', 1)[0]}" for k in listed.out.split()}
    assert stored == set(prefixes.values()), listed
    for name, prefix in prefixes.items():
        assert len(prefix.rsplit("/", 1)[1]) <= 63, prefix
        if name != "main":
            assert "--" in prefix, prefix


def test_a_clean_name_cannot_take_a_digested_names_prefix(cacher, tmp_path: Path) -> None:
    """The separator "--" never appears in a clean slug, so naming a scope after another's
    segment gives a third prefix; `cacher scope` says which, as text and JSON."""
    lossy = cacher("scope", "Feature/X", "--prefix", "proj")
    assert lossy.code == 0, lossy
    segment = lossy.out.strip().rsplit("/", 1)[1]
    assert segment == f"feature-x--{hashlib.sha256(b'Feature/X').hexdigest()[:16]}"
    mimic = cacher("scope", segment, "--prefix", "proj", "--json")
    assert mimic.code == 0, mimic
    document = json.loads(mimic.out)
    assert document["command"] == "scope" and document["scope"] == segment
    assert document["prefix"] not in (lossy.out.strip(), f"proj/_scopes/{segment}")
    assert document["prefix"] == f"proj/_scopes/{document['segment']}"
    configured = cacher("scope", extra_env={"CACHER_SCOPE": "main", "CACHER_PREFIX": "p"})
    assert (configured.code, configured.out) == (0, "p/_scopes/main\n"), configured
    assert_one_error_line(cacher("scope"), "needs a scope name")
    assert_one_error_line(cacher("scope", "///"), "names no scope")


def test_only_the_paths_kind_writes_its_namespace(cacher, seaweed_s3, s3_bucket, tmp_path: Path, http) -> None:
    """`_paths/` holds the paths kind's objects: another kind's upload there is a usage error
    before anything runs; `exists` and `list` still name such keys (the Action's lookup-only)."""
    env = s3(seaweed_s3, s3_bucket)
    f = tmp_path / "f"
    f.write_text("planted")
    marker = tmp_path / "built"
    runs = {
        "upload": cacher("upload", "_paths/abc/y", str(f), extra_env=env),
        "fast path with json": cacher("upload", "_paths/abc/y", str(f), "--json", extra_env=env),
        "any case": cacher("upload", "_PATHS/abc/y", str(f), extra_env=env),
        "download --url": cacher(
            "download", "_paths/abc/u", str(tmp_path / "fetched"), "--url", http.put("tool", b"x"), extra_env=env
        ),
        "dir upload": cacher("dir", "upload", "_paths/abc/y.tar.zst", str(tree(tmp_path / "t", "x")), extra_env=env),
        "docker upload": cacher("docker", "upload", "_paths/abc/img", "probe/a:1", extra_env=env),
        "dir ensure": cacher(
            "dir", "ensure", "_paths/abc/z.tar.zst", str(tmp_path / "out"), "--",
            "sh", "-c", f"touch {marker}", extra_env=env,
        ),
    }
    for run in runs.values():
        assert_one_error_line(run, "_paths", "only the paths kind writes")
    assert not marker.exists(), "the build ran"
    assert not (tmp_path / "fetched").exists()
    assert cacher("list", extra_env=env).out == ""
    # The owner writes there; exists and list name its objects.
    work = tmp_path / "w"
    (work / "deps").mkdir(parents=True)
    (work / "deps" / "a").write_text("a")
    up = cacher("paths", "upload", "k", "deps", extra_env=env, cwd=work)
    assert up.code == 0, up
    listed = cacher("list", "_paths/", extra_env=env)
    assert listed.code == 0 and len(listed.out.split()) == 1, listed
    stored = listed.out.strip()
    assert stored.startswith("_paths/") and stored.endswith("/k"), stored
    assert cacher("exists", stored, extra_env=env).code == 0
    assert cacher("exists", "_paths/abc/y", extra_env=env).code == 1


def security_section(title: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    return next(p for p in re.split(r"^## ", text, flags=re.M) if p.split("\n", 1)[0].strip() == title)


def test_the_security_page_shows_what_cacher_scope_prints(cacher) -> None:
    """docs/security.md's `cacher scope` examples and named segments are what cacher prints."""
    section = security_section("Scopes")
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    assert blocks
    for block in blocks:
        lines = block.strip().splitlines()
        for command, expected in zip(lines[::2], lines[1::2], strict=True):
            assert command.startswith("$ cacher ")
            run = cacher(*shlex.split(command[len("$ cacher ") :]))
            assert (run.code, run.out.strip()) == (0, expected), command
    for name, made in re.findall(r"`([^`]+)` is `([a-z0-9-]+--[0-9a-f]{16})`", section):
        run = cacher("scope", name)
        assert (run.code, run.out.strip()) == (0, f"_scopes/{made}"), name


def shell_value(expression: str, env: dict[str, str]) -> str:
    """What bash makes of a double-quoted recipe expression in this environment."""
    shell = subprocess.run(["bash", "-c", f'printf %s "{expression}"'], env=env, capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    return shell.stdout


def test_the_recipes_give_a_tag_its_own_scope(cacher) -> None:
    """The GitLab and Buildkite recipes pass the exact ref name, a tag as tag:NAME; GitHub's
    checks the ref type."""
    recipes = security_section("Recipes")
    assert "CI_COMMIT_REF_SLUG\n" not in recipes and "CACHER_SCOPE: $CI_COMMIT_REF_SLUG" not in recipes
    assert "github.ref_type == 'tag' && format('tag:{0}', github.ref_name) || github.ref_name" in recipes
    gitlab = re.search(r'export CACHER_SCOPE="([^"]+)"', recipes)
    buildkite = re.search(r'`CACHER_SCOPE="([^"]+)"`', recipes)
    assert gitlab and buildkite
    for expression, tag_variable, ref_variable in (
        (gitlab.group(1), "CI_COMMIT_TAG", "CI_COMMIT_REF_NAME"),
        (buildkite.group(1), "BUILDKITE_TAG", "BUILDKITE_BRANCH"),
    ):
        branch = shell_value(expression, {ref_variable: "Main"})
        tag = shell_value(expression, {ref_variable: "main", tag_variable: "main"})
        assert (branch, tag) == ("Main", "tag:main")
        shown = {cacher("scope", name).out for name in (branch, tag, "main")}
        assert len(shown) == 3, shown


@given(
    st.lists(
        st.one_of(
            st.from_regex(r"[a-z0-9][a-z0-9-]{0,70}", fullmatch=True),
            st.text(alphabet=st.sampled_from("aAbB09-_./:é "), min_size=1, max_size=80),
        ),
        min_size=2,
        max_size=6,
        unique=True,
    )
)
def test_the_mapping_is_injective_and_keeps_clean_names(names: list[str]) -> None:
    """No two names share a segment; a clean slug is its own segment; a segment is always a
    single path segment of a-z, 0-9 and '-', at most 63 characters."""
    from cacher.keying.scopes import segment, slug

    made = {}
    for name in names:
        if not re.search(r"[A-Za-z0-9]", name):
            continue
        made[name] = segment(name)
        assert re.fullmatch(r"[a-z0-9]+(-{1,2}[a-z0-9]+)*", made[name]) and len(made[name]) <= 63, made
        assert (made[name] == name) == (slug(name) == name)
    assert len(set(made.values())) == len(made), made
