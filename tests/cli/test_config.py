"""Settings precedence (flag > env > file > default), credentials, and config errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from cacher import config
from cacher.errors import ConfigError
from cacher.stores.s3.credentials import resolve
from tests.conftest import assert_one_error_line

SAMPLES: dict[str, tuple[Any, Any, Any, str]] = {
    # field: (file value, env value (as parsed), flag value, env text)
    "backend": ("file", "memory", "s3", "memory"),
    "endpoint": ("http://file:1", "http://env:2", "http://flag:3", "http://env:2"),
    "region": ("file-r", "env-r", "flag-r", "env-r"),
    "bucket": ("file-b", "env-b", "flag-b", "env-b"),
    "prefix": ("file/p", "env/p", "flag/p", "env/p"),
    "arch_suffix": (True, False, True, "false"),
    "key_file": ("/file/k", "/env/k", "/flag/k", "/env/k"),
    "secret_file": ("/file/s", "/env/s", "/flag/s", "/env/s"),
    "connect_timeout": (1.5, 2.5, 3.5, "2.5"),
    "read_timeout": (10.0, 20.0, 30.0, "20"),
    "request_timeout": (100.0, 200.0, 300.5, "200"),
    "max_attempts": (2, 4, 5, "4"),
    "metadata_timeout": (2.0, 4.0, 6.5, "4"),
    "session_token": ("tok-file", "tok-env", "tok-flag", "tok-env"),
    "ca_bundle": ("/f/ca.pem", "/e/ca.pem", "/g/ca.pem", "/e/ca.pem"),
    "part_size_mb": (6, 7, 9, "7"),
    "compression_level": (1, 9, 19, "9"),
    "soft_fail": (True, False, True, "no"),
    "read_only": (True, False, True, "off"),
    "scope": ("file-s", "env-s", "flag-s", "env-s"),
    "fallback_scopes": ("main", "main,dev", "release", "main,dev"),
    "local_tier": ("/file/t", "/env/t", "/flag/t", "/env/t"),
    "local_tier_max": ("1GiB", "2GiB", "3GiB", "2GiB"),
    "offline": (True, False, True, "0"),
    "lock_timeout": (10.0, 20.0, 30.0, "20"),
    "tree_format": ("tar", "cas", "tar", "cas"),
}


def test_every_field_has_a_precedence_sample() -> None:
    assert set(SAMPLES) == {f.name for f in config.FIELDS}


def test_settings_has_one_typed_attribute_per_field() -> None:
    """Settings is a frozen dataclass: a Field without its attribute (or the reverse) fails here."""
    import dataclasses

    own = {f.name for f in dataclasses.fields(config.Settings)} - {
        "sources",
        "config_path",
        "config_found",
        "options",
        "warnings",
    }
    assert own == {f.name for f in config.FIELDS}
    settings = config.load({}, {}, config_flag=os.devnull)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.prefix = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_precedence(name: str, tmp_path: Path) -> None:
    file_value, env_value, flag_value, env_text = SAMPLES[name]
    spec = config.FIELD_BY_NAME[name]
    path = tmp_path / "config.toml"
    base = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    # default
    path.write_text("")
    s = config.load(base, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (spec.default if name != "prefix" else "", "default")
    # file beats default
    path.write_text(tomli_w.dumps({name: file_value}))
    s = config.load(base, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (file_value, "file")
    # env beats file
    s = config.load({**base, spec.env: env_text}, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (env_value, "env")
    # flag beats env
    s = config.load({**base, spec.env: env_text}, {name: flag_value}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (flag_value, "flag")


def test_config_location_follows_xdg(tmp_path: Path) -> None:
    assert config.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "cacher/config.toml"
    assert config.config_path({"HOME": str(tmp_path)}) == tmp_path / ".config/cacher/config.toml"
    assert config.config_path({"CACHER_CONFIG": "/x.toml", "HOME": "/h"}) == Path("/x.toml")


def _settings(tmp_path: Path, **values: Any) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(values))
    return config.load({}, {}, config_flag=str(path))


def test_credentials_env_beats_files(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("file-key\n")
    (tmp_path / "s").write_text("file-secret\n")
    s = _settings(tmp_path, key_file=str(tmp_path / "k"), secret_file=str(tmp_path / "s"))
    creds = resolve(s, {"CACHER_S3_KEY_ID": "env-key", "CACHER_S3_SECRET": "env-secret"})
    assert (creds.key_id, creds.secret) == ("env-key", "env-secret")
    creds = resolve(s, {})
    assert (creds.key_id, creds.secret) == ("file-key", "file-secret")
    assert "file-secret" not in repr(creds) and "file-secret" not in creds.describe()


def test_key_file_flag_beats_config_files(tmp_path: Path) -> None:
    for name in ("k1", "s1", "k2", "s2"):
        (tmp_path / name).write_text(name)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({"key_file": str(tmp_path / "k1"), "secret_file": str(tmp_path / "s1")}))
    flags = {"key_file": str(tmp_path / "k2"), "secret_file": str(tmp_path / "s2")}
    creds = resolve(config.load({}, flags, config_flag=str(path)), {})
    assert (creds.key_id, creds.secret) == ("k2", "s2")


def test_missing_and_unreadable_credentials(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with pytest.raises(ConfigError, match="no S3 credentials"):
        resolve(s, {})
    with pytest.raises(ConfigError, match="CACHER_S3_SECRET is not set"):
        resolve(s, {"CACHER_S3_KEY_ID": "k"})
    secret = tmp_path / "s"
    secret.write_text("topsecret")
    secret.chmod(0)
    s = _settings(tmp_path, key_file=str(tmp_path / "missing"), secret_file=str(secret))
    with pytest.raises(ConfigError, match="does not exist") as err:
        resolve(s, {})
    assert "topsecret" not in str(err.value)


def _write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "cacher" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('bucket = "a"\nregion = \n', ["invalid TOML", "line 2"]),
        ('bucket = "a"\ncolour = "blue"\n', ["unknown field 'colour'"]),
        ('arch_suffix = "yes"\n', ["'arch_suffix' must be a bool"]),
        ("max_attempts = 0\n", ["max_attempts 0", "at least 1"]),
        ('prefix = "../x"\n', ["prefix", "'..'"]),
    ],
)
def test_bad_config_file_exits_2(
    cacher, home: Path, local_root: Path, tmp_path: Path, text: str, needles: list[str]
) -> None:
    _write_config(home, text)
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f))
    assert run.code == 2, run
    assert_one_error_line(run, *needles)
    assert not local_root.exists()


def test_bad_env_value_exits_2(cacher, tmp_path: Path) -> None:
    run = cacher("exists", "k", extra_env={"CACHER_ARCH_SUFFIX": "maybe"})
    assert run.code == 2, run
    assert_one_error_line(run, "CACHER_ARCH_SUFFIX")


def test_init_writes_0600_config_after_smoke_test(cacher, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    run = cacher("init", "--backend", "file", "--bucket", str(root), "--prefix", "proj")
    assert run.code == 0, run
    path = home / ".config" / "cacher" / "config.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config.read_file(path)[0] == {"backend": "file", "bucket": str(root), "prefix": "proj"}
    assert list(root.rglob("*")) == [root / "proj"] or not list(root.rglob("*.cacher-doctor*"))
    doctor = cacher("doctor")
    assert doctor.code == 0, doctor
    assert "canary written, read back and deleted" in doctor.err


def test_init_without_credentials_writes_nothing(cacher, home: Path) -> None:
    run = cacher("init", "--endpoint", "http://127.0.0.1:9", "--bucket", "b")
    assert run.code == 2, run
    assert_one_error_line(run, "no S3 credentials")
    assert not (home / ".config" / "cacher" / "config.toml").exists()


def test_configuration_doc_lists_every_field() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for spec in config.FIELDS:
        assert f"| `{spec.name}` | `{spec.env}` |" in doc, spec.name


# -- numbers: finite and in range, checked before any I/O, naming the setting ------------------

BAD_NUMBERS: list[tuple[str, str, str]] = [
    # (setting, how it is given, the value's text)
    ("connect_timeout", "flag", "nan"),
    ("read_timeout", "flag", "1e400"),
    ("request_timeout", "flag", "inf"),
    ("metadata_timeout", "flag", "-1"),
    ("connect_timeout", "flag", "0"),
    ("read_timeout", "flag", "1e-300"),
    ("max_attempts", "flag", "0"),
    ("max_attempts", "flag", "1000000"),
    ("metadata_timeout", "env", "nan"),
    ("read_timeout", "env", "inf"),
    ("request_timeout", "env", "1e400"),
    ("connect_timeout", "env", "-inf"),
    ("part_size_mb", "env", "0"),
    ("part_size_mb", "env", "99999999"),
    ("connect_timeout", "file", "nan"),
    ("read_timeout", "file", "inf"),
    ("request_timeout", "file", "-inf"),
    ("metadata_timeout", "file", "1e300"),
    ("max_attempts", "file", "-3"),
    ("part_size_mb", "file", "4"),
    ("local_tier_max", "flag", "nan"),
    ("local_tier_max", "env", "1e400"),
    ("local_tier_max", "file", '"' + "9" * 400 + 'TiB"'),
    ("local_tier_max", "file", '"0"'),
]


@pytest.mark.parametrize(("name", "given", "text"), BAD_NUMBERS)
def test_a_number_out_of_range_exits_2_naming_the_setting_before_any_io(
    cacher, home: Path, local_root: Path, tmp_path: Path, name: str, given: str, text: str
) -> None:
    spec = config.FIELD_BY_NAME[name]
    flag = f"--{name.replace('_', '-')}"
    f = tmp_path / "f"
    f.write_text("data")
    args: list[str] = ["upload", "k", str(f)]
    env: dict[str, str] = {}
    if given == "flag":
        args += [flag, text]
        where = flag
    elif given == "env":
        env[spec.env] = text
        where = spec.env
    else:
        path = _write_config(home, f"{name} = {text}\n")
        path.chmod(0o600)
        where = f"config file {path}"
    run = cacher(*args, extra_env=env)
    assert run.code == 2, run
    assert_one_error_line(run, name, where)
    assert "Traceback" not in run.err
    assert not local_root.exists(), "nothing may be written before the settings are checked"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("connect_timeout", "0.001"),
        ("read_timeout", "604800"),
        ("max_attempts", "1"),
        ("part_size_mb", "5120"),
    ],
)
def test_numbers_at_the_edges_of_their_range_are_taken(cacher, tmp_path: Path, name: str, text: str) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f), extra_env={config.FIELD_BY_NAME[name].env: text})
    assert run.code == 0, run


# -- the config file is obeyed only when it is the user's own -------------------------------


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_config_file_others_can_write_is_refused(
    cacher, home: Path, local_root: Path, tmp_path: Path, mode: int
) -> None:
    elsewhere = tmp_path / "elsewhere"
    path = _write_config(home, f'backend = "file"\nbucket = "{elsewhere}"\n')
    path.chmod(mode)
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f))
    assert run.code == 2, run
    assert_one_error_line(run, str(path), "writable by group or others", f"chmod go-w {path}")
    assert not elsewhere.exists() and not local_root.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == mode, "the file is refused, not changed"


def test_a_config_file_of_another_user_is_refused(
    cacher, home: Path, local_root: Path, tmp_path: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("chown to another user needs root")
    elsewhere = tmp_path / "elsewhere"
    path = _write_config(home, f'backend = "file"\nbucket = "{elsewhere}"\n')
    path.chmod(0o644)
    os.chown(path, 12345, 12345)
    f = tmp_path / "f"
    f.write_text("data")
    for args, env in [(["upload", "k", str(f)], {}), (["exists", "k", "--config", str(path)], {})]:
        run = cacher(*args, extra_env=env)
        assert run.code == 2, run
        assert_one_error_line(run, str(path), "belongs to another user")
    assert not elsewhere.exists() and not local_root.exists()


def test_a_linked_config_file_of_the_users_own_is_obeyed(cacher, home: Path, tmp_path: Path) -> None:
    """A dotfiles checkout links its config: the file behind the link is what is checked."""
    store = tmp_path / "store"
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text(f'backend = "file"\nbucket = "{store}"\n')
    real.chmod(0o644)
    link = home / ".config" / "cacher" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f))
    assert run.code == 0, run
    assert "warning" not in run.err
    assert (store / "k").exists()


def test_a_secret_others_can_read_is_warned_about_on_stderr(
    cacher, home: Path, tmp_path: Path, moto_s3: Any
) -> None:
    """Like ssh's warning for the key it loads: the secret this command uses (the s3 backend's
    secret_file, a config file's session_token), one line on stderr, never on --json stdout."""
    moto_bucket = "secret-warnings"
    moto_s3.make_bucket(moto_bucket)
    key_id, secret = tmp_path / "key-id", tmp_path / "secret"
    key_id.write_text(moto_s3.key_id)
    secret.write_text(moto_s3.secret)
    secret.chmod(0o644)
    path = _write_config(
        home,
        f'endpoint = "{moto_s3.endpoint}"\nbucket = "{moto_bucket}"\nkey_file = "{key_id}"\n'
        'session_token = "tok-in-config"\n',
    )
    path.chmod(0o644)
    run = cacher("exists", "k", "--json", "--secret-file", str(secret))
    assert run.code == 1, run
    assert json.loads(run.out)["exists"] is False  # stdout stays one JSON document
    warnings = [line for line in run.err.splitlines() if line.startswith("cacher: warning:")]
    assert len(warnings) == 2 and len(run.err.splitlines()) == 2, run.err
    assert any(str(secret) in w and f"chmod go-r {secret}" in w for w in warnings), run.err
    assert any(str(path) in w and "session_token" in w for w in warnings), run.err
    assert moto_s3.secret not in run.err + run.out and "tok-in-config" not in run.err + run.out
    quiet = cacher("exists", "k", "-q", "--secret-file", str(secret))
    assert quiet.code == 1, quiet
    assert quiet.err == "", quiet.err
    secret.chmod(0o600)
    path.chmod(0o600)
    private = cacher("exists", "k", "--secret-file", str(secret))
    assert private.code == 1, private
    assert "warning" not in private.err, private.err


def test_a_secret_this_command_does_not_use_gets_no_warning(cacher, home: Path, tmp_path: Path) -> None:
    """The file backend reads no secret, and CACHER_S3_KEY_ID/CACHER_S3_SECRET take the
    secret_file's place: no warning then (an expected error stays one line)."""
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t")
    secret.chmod(0o644)
    run = cacher("exists", "k", "--secret-file", str(secret), "--key-file", str(secret))
    assert run.code == 1, run
    assert "warning" not in run.err, run.err
    env = {"CACHER_ENDPOINT": "http://127.0.0.1:9", "CACHER_BUCKET": "b", "CACHER_S3_KEY_ID": "id"}
    half = cacher("exists", "k", "--secret-file", str(secret), extra_env=env)
    assert_one_error_line(half, "CACHER_S3_SECRET is not set")


@pytest.mark.parametrize("text", ["nan", "inf", "nans", "1e400s", "9" * 400 + "s", "-1d", "1", "1.5.5s"])
def test_a_duration_that_is_not_finite_and_in_range_exits_2_in_one_short_line(
    cacher, local_root: Path, tmp_path: Path, text: str
) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    up = cacher("upload", "p/a", str(f))
    assert up.code == 0, up
    run = cacher("prune", "p/", "--older-than", text)
    assert run.code == 2, run
    assert_one_error_line(run, "invalid duration")
    assert len(run.err) < 200, run.err
    assert (local_root / "p" / "a").read_text() == "data", "nothing is pruned"


def test_local_tier_max_as_a_toml_integer_is_bytes(cacher, tmp_path: Path) -> None:
    """Red-team pass of issue 25: `local_tier_max = 1048576` (a value the table lists) was
    refused as "must be a str"."""
    config = tmp_path / "config.toml"
    config.write_text(f'local_tier = "{tmp_path / "tier"}"\nlocal_tier_max = 1048576\n')
    config.chmod(0o600)
    run = cacher("stats", "--local", "--json", extra_env={"CACHER_CONFIG": str(config)})
    assert run.code == 0, run
    assert json.loads(run.out)["max_bytes"] == 1048576


def test_doctor_shows_every_setting_and_where_it_came_from(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """Issue 27 item 8: doctor showed 8 settings, "(env)" for a variable, and "s3 (default)" for
    an inferred backend."""
    from cacher.config import FIELDS

    env = {
        "CACHER_ENDPOINT": seaweed_s3.endpoint,
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
        "CACHER_READ_TIMEOUT": "30",
    }
    run = cacher("doctor", extra_env=env)
    assert run.code == 0, run
    lines = run.err.splitlines()
    for field in FIELDS:
        assert any(line.startswith(f"cacher: {field.name}: ") for line in lines), (field.name, run.err)
    assert "cacher: backend: s3 (inferred: an endpoint or bucket is set)" in lines
    assert "cacher: read_timeout: 30.0 (CACHER_READ_TIMEOUT)" in lines
    assert seaweed_s3.secret not in run.err + run.out
    # --json: the same settings and sources as one document.
    run = cacher("doctor", "--json", extra_env=env)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert set(document["settings"]) == {f.name for f in FIELDS}
    assert document["settings"]["backend"] == {"value": "s3", "source": "inferred: an endpoint or bucket is set"}
    assert document["settings"]["read_timeout"] == {"value": 30.0, "source": "CACHER_READ_TIMEOUT"}
    assert document["outcome"] == "ok" and "canary written, read back and deleted" in document["checks"]
    assert seaweed_s3.secret not in run.out


# -- one declaration: every setting is a flag, a variable and a config key -------------------


def test_every_setting_is_a_store_flag_with_its_declared_help() -> None:
    """`StoreOptions` is generated from `Settings`: one flag per setting (issue 28: it lacked
    part_size_mb, compression_level and lock_timeout), plus --config and --debug."""
    import dataclasses
    import typing

    from cacher.cli.options import StoreOptions, flag_help

    hints = typing.get_type_hints(StoreOptions, include_extras=True)
    names = [f.name for f in dataclasses.fields(StoreOptions)]
    assert names == [f.name for f in config.FIELDS] + ["config", "debug"]
    for spec in config.FIELDS:
        (parameter,) = typing.get_args(hints[spec.name])[1:]
        assert parameter.help == flag_help(spec) and spec.help.rstrip(".)") in parameter.help, spec.name
    assert StoreOptions().flags() == {f.name: None for f in config.FIELDS}


def test_the_flags_that_were_missing_reach_the_settings(cacher) -> None:
    run = cacher("doctor", "--json", "--part-size-mb", "16", "--compression-level", "5", "--lock-timeout", "7")
    assert run.code == 0, run
    settings = json.loads(run.out)["settings"]
    assert settings["part_size_mb"] == {"value": 16, "source": "flag"}
    assert settings["compression_level"] == {"value": 5, "source": "flag"}
    assert settings["lock_timeout"] == {"value": 7.0, "source": "flag"}
    bad = cacher("doctor", "--part-size-mb", "4")
    assert bad.code == 2, bad
    assert_one_error_line(bad, "part_size_mb 4 (--part-size-mb)", "at least 5")


def test_cli_doc_lists_every_store_flag() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    section = doc.split("## Store options", 1)[1].split("\n## ", 1)[0]
    for spec in config.FIELDS:
        assert f"`{spec.flag}" in section, spec.flag
