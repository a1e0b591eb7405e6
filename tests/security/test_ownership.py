"""`cacher.fs.ownership`: the one rule for the files and directories cacher trusts (the user's own,
not writable by group or others; private directories 0700). The commands that use it are
tested through the CLI in test_config.py and test_entrypoint_index.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cacher.errors import ConfigError
from cacher.fs.ownership import (
    Untrusted,
    private_dir,
    read_config,
    read_trusted,
    readable_by_others,
    trusted_file,
)

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")


def test_a_private_directory_is_made_0700_with_its_parents(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    assert private_dir(made) == made  # an existing one of the user's own is taken


def test_an_existing_private_directory_is_taken_unless_others_can_change_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert private_dir(shared) == shared
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o700, "the user's own is made private"
    shared.chmod(0o755)
    shared.chmod(0o777)
    with pytest.raises(Untrusted, match="writable by group or others"):
        private_dir(shared)
    assert issubclass(Untrusted, ConfigError)  # exit 2 where it reaches the user


def test_a_linked_or_non_directory_is_no_private_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(Untrusted, match="symbolic link"):
        private_dir(tmp_path / "link")
    (tmp_path / "file").write_text("x")
    with pytest.raises(Untrusted, match="not a directory"):
        private_dir(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        private_dir(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


@needs_root
def test_another_users_directory_and_file_are_not_trusted(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    with pytest.raises(Untrusted, match="another user"):
        private_dir(theirs)
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o600)
    os.chown(f, 12345, 12345)
    assert not trusted_file(f)
    with pytest.raises(Untrusted, match="uid 12345"):
        read_trusted(f)
    with pytest.raises(Untrusted, match=f"chown {os.getuid()} {f}"):
        read_config(f)


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_file_others_can_write_is_not_trusted(tmp_path: Path, mode: int) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o644)
    assert trusted_file(f) and read_trusted(f) == b"x"
    assert read_config(f)[0] == b"x"
    f.chmod(mode)
    assert not trusted_file(f)
    with pytest.raises(Untrusted, match="writable by group or others"):
        read_trusted(f)
    with pytest.raises(Untrusted, match=f"bad owner or permissions on the config file {f}.*chmod go-w {f}"):
        read_config(f)


def test_a_link_is_no_trusted_cache_file_but_a_linked_config_is_checked_behind_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("x")
    real.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert not trusted_file(link)
    with pytest.raises(Untrusted, match="symbolic link"):
        read_trusted(link)
    assert read_config(link)[0] == b"x"
    real.chmod(0o666)
    with pytest.raises(Untrusted):
        read_config(link)


def test_a_fifo_is_no_trusted_cache_file_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert not trusted_file(fifo)
    with pytest.raises(Untrusted, match="not a regular file"):
        read_trusted(fifo)


def test_devices_are_read_as_config_unchecked() -> None:
    """/dev/null (mode 0666, root's) is how tests and ``init`` say "no config file"."""
    assert read_config(Path(os.devnull))[0] == b""


def test_a_secret_others_can_read_gets_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t")
    secret.chmod(0o600)
    assert readable_by_others(secret, "secret file") is None
    for mode in (0o640, 0o604):
        secret.chmod(mode)
        warning = readable_by_others(secret, "secret file")
        assert warning is not None and "\n" not in warning
        assert str(secret) in warning and f"chmod go-r {secret}" in warning and "s3cr3t" not in warning
    assert readable_by_others(tmp_path / "missing", "secret file") is None
