"""Settings: one model, read from flame.toml < FLAME_* environment < command-line flags.

This module is the only reader of config files and of the environment.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flame.core.models import INLINE_MAX_BYTES
from flame.core.transport import check_address, normal_address
from flame.errors import ConfigError

ENV_PREFIX = "FLAME_"
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")


def xdg_data_home() -> Path:
    raw = os.environ.get("XDG_DATA_HOME", "")
    return Path(raw) if raw else Path.home() / ".local" / "share"


def xdg_config_home() -> Path:
    raw = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(raw) if raw else Path.home() / ".config"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DaemonSettings(Section):
    data_dir: str = ""
    # No default: `flame init` asks (or takes --directory); an address without a scheme is
    # https://. Checked where it is used: `flame init` refuses a malformed one, `flame serve`
    # (which uses the directory pinned at enrollment) warns and carries on (services/account.py).
    directory_url: str = ""
    # Other addresses of the same directory (processes on one PostgreSQL database, presenting
    # one certificate), comma-separated: tried in turn when an address does not answer.
    directory_alternates: str = ""
    peer_host: str = "0.0.0.0"
    peer_port: int = Field(default=8470, ge=0, le=65535)
    public_address: str = ""
    ui_host: str = "127.0.0.1"
    ui_port: int = Field(default=8471, ge=0, le=65535)
    password_file: str = ""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_message_chars: int = Field(default=16_000, ge=1, le=100_000)
    presence_interval_s: float = Field(default=20.0, gt=0)
    directory_sync_s: float = Field(default=20.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    batch_max: int = Field(default=256, ge=1, le=1000)
    message_ttl_s: float = Field(default=14 * 24 * 3600, gt=0)
    read_receipts: bool = True
    relay_after_s: float = Field(default=60.0, ge=0)
    relay_retry_s: float = Field(default=300.0, gt=0)
    relay_count: int = Field(default=2, ge=0, le=8)
    relay_ttl_s: float = Field(default=14 * 24 * 3600, gt=0)
    relay_max_per_depositor: int = Field(default=2000, ge=0)
    relay_max_per_recipient: int = Field(default=5000, ge=0)
    relay_max_bytes_per_recipient: int = Field(default=64 * 1024 * 1024, ge=0)
    relay_depositor_share: float = Field(default=0.25, gt=0, le=1)
    probe_interval_s: float = Field(default=15.0, gt=0)
    probe_concurrency: int = Field(default=8, ge=1, le=64)
    log_level: LogLevel = "info"
    # Plain HTTP between machines (no TLS, nothing pinned): only ever by this explicit setting.
    insecure_plain_http: bool = False

    @field_validator("directory_url")
    @classmethod
    def _as_typed(cls, value: str) -> str:
        return normal_address(value)

    @model_validator(mode="after")
    def _addresses_fit_the_transport(self) -> DaemonSettings:
        values = [("public_address", self.public_address)]
        values += [("directory_alternates", url) for url in self.alternate_urls]
        for key, raw in values:
            value = raw.rstrip("/")
            if value:
                try:
                    check_address(value, plain_http=self.insecure_plain_http)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc} (got {value!r})") from None
        return self

    @property
    def alternate_urls(self) -> tuple[str, ...]:
        return tuple(normal_address(u) for u in self.directory_alternates.split(",") if u.strip())

    @field_validator("ui_host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            is_loopback = ipaddress.ip_address(value).is_loopback
        except ValueError:
            is_loopback = False
        if not is_loopback:
            raise ValueError("the UI listens on a loopback address only (127.0.0.1 or ::1)")
        return value


class DirectorySettings(Section):
    data_dir: str = ""
    host: str = "0.0.0.0"
    port: int = Field(default=8480, ge=0, le=65535)
    registration: Literal["invite", "open"] = "invite"
    presence_ttl_s: float = Field(default=60.0, gt=0)
    invite_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_per_address: float = Field(default=20.0, gt=0)
    burst_per_address: int = Field(default=200, ge=1)
    rate_per_user: float = Field(default=2.0, gt=0)
    burst_per_user: int = Field(default=60, ge=1)
    connections_per_address: int = Field(default=64, ge=1)
    connections_max: int = Field(default=512, ge=1)
    idle_timeout_s: float = Field(default=20.0, gt=0)
    # Serve plain HTTP instead of TLS, and accept http:// presence addresses: only by this setting.
    insecure_plain_http: bool = False
    # Empty: the SQLite file in data_dir (one process). A postgresql:// URL: that database, which
    # several directory processes may share (README, "Deploying the directory").
    database: str = ""
    expiry_sweep_s: float = Field(default=1.0, gt=0)  # how often expired presence is dropped

    @field_validator("database")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be empty (the SQLite file in the data folder) or a postgresql:// URL"
            )
        return value


class SecuritySettings(Section):
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_iterations: int = Field(default=3, ge=1)
    argon2_lanes: int = Field(default=1, ge=1, le=16)
    # Test-only: lets `flame init` seal under an Argon2id cost below OWASP's minimum.
    allow_weak_kdf: bool = False
    login_delay_s: float = Field(default=1.0, gt=0)  # after the 2nd wrong password in a row
    login_max_delay_s: float = Field(default=15.0, gt=0)  # the most it grows to
    # The protocol versions this daemon speaks (PROTOCOL.md §9): max_version 1 pins it to version
    # 1 (no forward secrecy); min_version 2 refuses version 1 both ways.
    min_version: int = Field(default=1, ge=1, le=2)
    max_version: int = Field(default=2, ge=1, le=2)

    @model_validator(mode="after")
    def _version_range(self) -> SecuritySettings:
        if self.min_version > self.max_version:
            raise ValueError("security.min_version cannot be above security.max_version")
        return self

    lock_after_idle_s: float = Field(default=0.0, ge=0)  # 0: never

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(range(self.min_version, self.max_version + 1))


class LimitsSettings(Section):
    """Rate limits of the remote API (PROTOCOL.md §12.5); the UI is never limited."""

    peer_rate_per_address: float = Field(default=50.0, gt=0)
    peer_burst_per_address: int = Field(default=500, ge=1)
    peer_rate_per_sender: float = Field(default=20.0, gt=0)
    peer_burst_per_sender: int = Field(default=200, ge=1)
    stranger_lookups_per_s: float = Field(default=0.2, gt=0)
    stranger_lookup_burst: int = Field(default=10, ge=1)
    peer_connections_per_address: int = Field(default=64, ge=1)
    peer_connections_max: int = Field(default=512, ge=1)
    peer_idle_timeout_s: float = Field(default=20.0, gt=0)
    peer_body_timeout_s: float = Field(default=60.0, gt=0)


class StatusSettings(Section):
    idle_away_s: float = Field(default=600.0, gt=0)
    no_ui_away_s: float = Field(default=120.0, gt=0)


class ProfilesSettings(Section):
    refresh_s: float = Field(default=3600.0, gt=0)


class FileSettings(Section):
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1, le=2**53)
    chunk_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=4 * 1024 * 1024)
    relay_max_bytes: int = Field(default=INLINE_MAX_BYTES, ge=0, le=INLINE_MAX_BYTES)
    send_rate_bytes_s: int = Field(default=0, ge=0)
    parallel_transfers: int = Field(default=4, ge=1, le=64)
    idle_timeout_s: float = Field(default=60.0, gt=0)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    profiles: ProfilesSettings = Field(default_factory=ProfilesSettings)
    files: FileSettings = Field(default_factory=FileSettings)

    def daemon_data_dir(self) -> Path:
        raw = self.daemon.data_dir
        return Path(raw).expanduser() if raw else xdg_data_home() / "flame" / "daemon"

    def directory_data_dir(self) -> Path:
        raw = self.directory.data_dir
        return Path(raw).expanduser() if raw else xdg_data_home() / "flame" / "directory"


def default_config_path() -> Path:
    return xdg_config_home() / "flame" / "flame.toml"


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    value = error.get("input")
    head, colon, rest = message.partition(": ")
    if colon and isinstance(value, dict) and head in value:  # a section's check names its key
        return f"{key}.{head}: {rest}"
    shown = (
        "" if error["type"] == "extra_forbidden" or isinstance(value, dict) else f" (got {value!r})"
    )
    return f"{key}: {message}{shown}"


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """FLAME_<SECTION>_<KEY>=value, e.g. FLAME_DAEMON_UI_PORT=9000."""
    sections = set(Settings.model_fields)
    found: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "FLAME_CONFIG":
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in sections or not key:
            raise ConfigError(
                f"config: environment {name}: not a setting "
                "(use FLAME_<SECTION>_<KEY>, e.g. FLAME_DAEMON_UI_PORT)"
            )
        found.setdefault(section, {})[key] = value
    return found


def _merge(base: dict[str, Any], extra: dict[str, dict[str, Any]]) -> None:
    for section, values in extra.items():
        target = base.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"config: {section}: must be a table")
        target.update(values)


def load_settings(
    path: str | Path | None = None,
    *,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    read_default_file: bool = True,
) -> Settings:
    """Build Settings. `flags` maps "section.key" to values given on the command line.

    Raises ConfigError with one line naming the key and the problem.
    """
    environ = dict(os.environ) if environ is None else environ
    explicit = path or environ.get("FLAME_CONFIG")
    file_path = Path(explicit) if explicit else default_config_path()
    data: dict[str, Any] = {}
    if file_path.exists() and (explicit or read_default_file):
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {file_path}: not valid TOML ({exc})") from exc
        except OSError as exc:
            raise ConfigError(f"config: {file_path}: cannot read ({exc.strerror})") from exc
    elif explicit:
        raise ConfigError(f"config: {file_path}: no such file")
    env_values = _env_overrides(environ)
    flag_values: dict[str, dict[str, Any]] = {}
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        flag_values.setdefault(section, {})[key] = value
    # Strings from the environment are coerced by a lax pass; the file keeps TOML's own types.
    _merge(data, env_values)
    _merge(data, flag_values)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"config: {_describe(dict(first))}") from exc
