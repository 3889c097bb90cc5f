"""The trading service's settings, read from environment variables and checked at start.

Every setting has a default that works on a developer machine with a local Redis; the names
are the guide's (``REDIS_URL``, ``LOG_LEVEL``, ``BINANCE_API_KEY``...) where it has one.
A wrong value stops the service before it contacts anything, with one line per variable
saying what was wrong and what is expected; secret values are never echoed.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MIN_TOKEN_LENGTH", "Settings", "SettingsError", "load_settings"]

MIN_TOKEN_LENGTH = 16
_ENV_NAMES = {"admin_token": "QUANTUM_ADMIN_TOKEN", "quantum_admin_token": "QUANTUM_ADMIN_TOKEN"}


class SettingsError(ValueError):
    """The environment holds a setting the service cannot start with."""


class Settings(BaseSettings):
    """What the service reads from its environment (the variable is the field's name, upper case).

    ``BUS_URL`` empty (the default) puts the event bus on the Redis of ``REDIS_URL``; set it to
    ``memory://`` to keep every event in this process, or to another broker's URL.
    ``QUANTUM_ADMIN_TOKEN`` unset disables ``POST /policy/mode``.
    """

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", validate_default=True, populate_by_name=True
    )

    service_name: str = Field("quantum_trader", min_length=1, max_length=100)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    redis_url: str = "redis://localhost:6379/0"
    bus_url: str | None = None
    policy_key_prefix: str = Field("quantum_core:policy", min_length=1)
    policy_snapshot: str = Field(
        "auto", description="'auto' (a private file per Redis and prefix, state dir), 'off', a path"
    )

    binance_testnet: bool = True
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    binance_base_url: str | None = None
    check_binance: bool = True
    health_timeout: float = Field(2.0, gt=0, le=30)

    admin_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("QUANTUM_ADMIN_TOKEN", "admin_token")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "bus_url", "binance_api_key", "binance_api_secret", "binance_base_url", "admin_token",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("bus_url")
    @classmethod
    def _bus_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("expected a transport URL such as memory:// or redis://host:6379/0")
        return value

    @field_validator("binance_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @property
    def snapshot_path(self) -> str | None:
        """The policy snapshot as ``initialize_policy_store`` takes it."""
        if self.policy_snapshot.strip().lower() in ("", "off", "none"):
            return None
        return self.policy_snapshot


def load_settings() -> Settings:
    """Read the settings from the environment.

    Raises:
        SettingsError: naming each variable that is wrong and what it expects.
    """
    try:
        return Settings()
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            field = str(problem["loc"][0]).lower() if problem["loc"] else "?"
            name = _ENV_NAMES.get(field, field.upper())
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {message}{_shown(name, problem.get('input'))}")
        raise SettingsError("invalid settings in the environment:\n" + "\n".join(lines)) from None


def _shown(name: str, value: object) -> str:
    """The rejected value for the message: never a secret, never a URL's password."""
    if name in {"QUANTUM_ADMIN_TOKEN", "BINANCE_API_KEY", "BINANCE_API_SECRET"}:
        return ""
    if isinstance(value, str) and "@" in value:
        parts = urlsplit(value)
        if parts.password:
            value = value.replace(parts.password, "***")
    return f" (got {value!r})"
