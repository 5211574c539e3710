"""Settings: the documented defaults, precedence, and one clear line for a bad value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from flame.config import Settings, load_settings
from flame.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_flame_toml_documents_every_key_with_its_default() -> None:
    documented = tomllib.loads((ROOT / "flame.toml").read_text())
    assert documented == Settings().model_dump()
    text = (ROOT / "flame.toml").read_text().splitlines()
    for index, line in enumerate(text):
        if "=" in line and not line.startswith("#"):
            above = index - 1  # a key's block (up to the blank line above it) has a comment
            while above >= 0 and text[above].strip() and not text[above].startswith("#"):
                above -= 1
            assert above >= 0 and text[above].startswith("#"), f"undocumented key: {line}"


def test_precedence_is_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "flame.toml"
    config.write_text("[daemon]\nui_port = 9001\npeer_port = 9002\nretry_max_s = 7\n")
    environ = {"FLAME_DAEMON_UI_PORT": "9101", "FLAME_DAEMON_PEER_PORT": "9102"}
    settings = load_settings(config, environ=environ, flags={"daemon.ui_port": 9201})
    assert settings.daemon.ui_port == 9201
    assert settings.daemon.peer_port == 9102
    assert settings.daemon.retry_max_s == 7


def test_data_dir_follows_xdg_unless_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings(None, environ={}, read_default_file=False)
    assert settings.daemon_data_dir() == tmp_path / "xdg" / "flame" / "daemon"
    given = load_settings(
        None, environ={}, read_default_file=False, flags={"daemon.data_dir": str(tmp_path / "mine")}
    )
    assert given.daemon_data_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    ("content", "environ", "expected"),
    [
        ("[daemon]\nui_port = 'abc'\n", {}, "config: daemon.ui_port:"),
        ("[daemon]\nui_port = 70000\n", {}, "config: daemon.ui_port:"),
        ("[daemon]\nui_host = '0.0.0.0'\n", {}, "daemon.ui_host: the UI listens on a loopback"),
        ("[daemon]\nno_such_key = 1\n", {}, "config: daemon.no_such_key: unknown key"),
        ("[daemon\n", {}, "not valid TOML"),
        ("", {"FLAME_NOPE": "1"}, "environment FLAME_NOPE: not a setting"),
        ("", {"FLAME_DIRECTORY_REGISTRATION": "maybe"}, "config: directory.registration:"),
        # Files over 1 MiB never travel inline (PROTOCOL.md §11.6), so relays never hold them.
        ("[files]\nrelay_max_bytes = 1048577\n", {}, "config: files.relay_max_bytes:"),
        # Plain HTTP between machines only by its own setting (PROTOCOL.md §1.3).
        (
            "[daemon]\npublic_address = 'http://me.example:8470'\n",
            {},
            "config: daemon.public_address: the address must start with https:// (plain http://"
            " is off) (got 'http://me.example:8470')",
        ),
        (
            "",
            {"FLAME_DAEMON_PUBLIC_ADDRESS": "https://me.example:99999"},
            "config: daemon.public_address: port '99999' is not a port number",
        ),
        (
            "[daemon]\npublic_address = 'https://me.example/flame'\n",
            {},
            "config: daemon.public_address: the address must be scheme://host[:port]",
        ),
    ],
)
def test_invalid_config_gives_one_line_naming_key_and_problem(
    tmp_path: Path, content: str, environ: dict[str, str], expected: str
) -> None:
    config = tmp_path / "flame.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ=environ)
    assert expected in error.value.message
    assert "\n" not in error.value.message


def test_plain_http_between_machines_needs_its_explicit_setting(tmp_path: Path) -> None:
    config = tmp_path / "flame.toml"
    config.write_text(
        "[daemon]\ninsecure_plain_http = true\ndirectory_url = 'http://dir.example:8480'\n"
        "public_address = 'http://me.example:8470'\n"
    )
    settings = load_settings(config, environ={})
    assert settings.daemon.insecure_plain_http
    assert Settings().daemon.insecure_plain_http is False
    assert Settings().directory.insecure_plain_http is False


def test_the_directory_address_has_no_default_and_may_omit_https(tmp_path: Path) -> None:
    """No default (`flame init` asks for it); an address as typed, without a scheme, is https.
    Its form is checked where it is used (tests/e2e/test_cli.py: init refuses, serve warns)."""
    assert Settings().daemon.directory_url == ""
    config = tmp_path / "flame.toml"
    config.write_text("[daemon]\ndirectory_url = 'Dir.Example:8480/'\n")
    assert load_settings(config, environ={}).daemon.directory_url == "https://dir.example:8480"


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml", environ={})
