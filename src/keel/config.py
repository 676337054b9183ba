"""One ``Settings`` object: ``keel.toml`` in the project directory, overridden by ``KEEL_*``.

Settings are read once, at the composition root (:func:`keel.open_workspace`), and passed down;
nothing else in keel reads the environment. Precedence, highest first: keyword overrides given to
:meth:`Settings.load`, ``KEEL_*`` environment variables (nested keys with ``__``, e.g.
``KEEL_REGISTRY__REQUIRE_DISTINCT_APPROVER=true``), ``keel.toml``, then the defaults below.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from keel._monitoring_settings import MonitoringSettings
from keel.errors import ConfigError

CONFIG_FILE_NAME = "keel.toml"
ENV_PREFIX = "KEEL_"


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers)
        return "unknown"


class TrackingSettings(BaseModel):
    """How runs record what they do."""

    model_config = ConfigDict(extra="forbid")

    metric_batch_size: int = Field(1000, ge=1)
    """Buffered metric values are written in one batch when this many are pending."""
    metric_flush_seconds: float = Field(2.0, ge=0)
    """...or when the oldest pending value is this old (0 writes every value at once)."""
    capture_packages: bool = True
    """Record the versions of every installed distribution with each run."""


class RegistrySettings(BaseModel):
    """Rules of the model registry."""

    model_config = ConfigDict(extra="forbid")

    require_distinct_approver: bool = False
    """Four-eyes rule: the actor approving a version must differ from the one who registered it."""


class FeatureSettings(BaseModel):
    """Where features are served from and how they are checked."""

    model_config = ConfigDict(extra="forbid")

    online_url: str = "sqlite:///.keel/online.db"
    """Online store: sqlite:///PATH (embedded) or redis://HOST:PORT/DB."""
    definitions: str = "features.py"
    """The Python module (relative to the project) that defines entities and feature views."""
    naive_timestamps: Literal["reject", "utc"] = "reject"
    """Timestamps without a time zone: refused (default), or taken to be UTC."""
    lookup_sample_rate: float = Field(0.01, ge=0, le=1)
    """Fraction of online lookups recorded for the skew check."""
    lookup_log_dir: str = ".keel/feature-lookups"
    """Where sampled online lookups are written (relative to the project)."""

    @field_validator("online_url")
    @classmethod
    def _known_online_store(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in {"sqlite", "redis", "rediss"}:
            raise ValueError(
                f"'{value}' is not an online store URL; use sqlite:///PATH or redis://HOST:PORT/DB"
            )
        return value


class ServingSettings(BaseModel):
    """How `keel serve` answers and records predictions."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Interface the server listens on."""
    port: int = Field(8080, ge=0, le=65535)
    """Port the server listens on (0 picks a free one)."""
    workers: int = Field(1, ge=1)
    """Server worker processes."""
    prediction_log_dir: str = ".keel/predictions"
    """Where prediction and feedback logs are written (segments, then Parquet)."""
    fsync: Literal["never", "interval", "always"] = "interval"
    """When log writes are forced to disk: never (the OS decides), every fsync_interval_seconds,
    or on every group write. Entries always reach the OS before their response is sent."""
    fsync_interval_seconds: float = Field(1.0, gt=0)
    segment_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    """A log segment is closed and handed to compaction when it reaches this size."""
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Requests with a larger body are refused with 413."""
    max_request_rows: int = Field(10_000, ge=1)
    """Requests holding more records are refused with 413 (``too_many_rows``)."""
    breaker_window_seconds: float = Field(10.0, gt=0)
    """A model version's circuit breaker judges the calls of this sliding window."""
    breaker_min_requests: int = Field(20, ge=1)
    """Calls the window needs before the breaker may open."""
    breaker_error_rate: float = Field(0.5, gt=0, le=1)
    """Share of failed calls (raised or timed out) that opens the breaker."""
    breaker_open_seconds: float = Field(5.0, gt=0)
    """How long an open breaker refuses calls before probing the model again (doubled after
    each failed probe, up to a minute)."""
    auth: Literal["auto", "on", "off"] = "auto"
    """Whether requests need an API key (`keel keys create`): "auto" is on unless the server
    listens on a loopback address only."""
    ratelimit_url: str | None = None
    """Redis URL shared by every worker's per-key rate limits; none: each process its own."""
    cache_url: str = "memory"
    """Where endpoints with the cache on keep answers: "memory" (each process its own LRU) or
    a redis:// URL (shared; bypassed while Redis is unreachable)."""
    cache_ttl_seconds: float = Field(600.0, gt=0)
    cache_max_entries: int = Field(100_000, ge=1)
    """Answers the in-memory cache holds (least recently used first out)."""
    revision_poll_seconds: float = Field(2.0, gt=0)
    """How often a server checks its endpoints' live revisions (a change is loaded in the
    background and switched to once ready)."""
    keep_previous_seconds: float = Field(300.0, ge=0)
    """How long the runtime switched away from stays loaded, so a rollback to it is instant."""
    inline_below_ms: float = Field(0.5, ge=0)
    """A model call expected (from the calls so far) to take less than this runs on the event
    loop's thread, where a hand-off to the batch thread would cost more than the call; slower
    calls never block the loop. 0 runs every call on the batch thread."""
    pii_mode: Literal["tokenize", "drop"] = "tokenize"
    """What becomes of the values of fields a signature marks sensitive before they reach the
    prediction log: "tokenize" logs a keyed HMAC-SHA256 token instead (equal values, equal
    tokens, so they can still be joined), "drop" leaves them out."""
    pii_key: str | None = Field(None, min_length=16, repr=False)
    """Secret key of the tokens, the same for every server and kept as long as tokens are
    joined (set KEEL_SERVING__PII_KEY rather than writing it in keel.toml). Without it, an
    endpoint with sensitive fields does not start in tokenize mode."""
    tls_certfile: str | None = None
    """PEM certificate (chain) the server presents: with tls_keyfile, `keel serve` speaks
    HTTPS only. A relative path is taken from the project directory."""
    tls_keyfile: str | None = None
    """PEM private key of tls_certfile (both or neither)."""
    tls_keyfile_password: str | None = Field(None, repr=False)
    """Password of an encrypted tls_keyfile (prefer KEEL_SERVING__TLS_KEYFILE_PASSWORD)."""
    tls_ca_certs: str | None = None
    """PEM certificates of the CAs that sign client certificates: when set, every client must
    present one (mutual TLS)."""


class Settings(BaseSettings):
    """Everything keel needs to know about where it runs.

    settings = Settings.load("path/to/project")       # keel.toml + KEEL_* variables
    settings = Settings.load(metadata_url="postgresql://db/keel")
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    project_dir: Path = Field(default_factory=Path.cwd)
    """Directory holding keel.toml; relative paths in URLs are resolved against it."""
    metadata_url: str = "sqlite:///.keel/keel.db"
    """Metadata database (runs, registry, audit): sqlite:///PATH or postgresql://USER@HOST/DB."""
    artifacts_url: str = ".keel/artifacts"
    """Artifact store root: a local path, file://PATH, or any fsspec URL (s3://bucket/prefix)."""
    actor: str = Field(default_factory=_default_actor)
    """Who is acting, recorded in audit entries (defaults to the login name)."""
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @field_validator("project_dir")
    @classmethod
    def _absolute_project_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("metadata_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                f"'{value}' is not a database URL; use sqlite:///PATH or postgresql://HOST/DB"
            ) from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(
                f"unsupported database '{url.get_backend_name()}'; use sqlite:///PATH "
                "or postgresql://HOST/DB"
            )
        return value

    @field_validator("artifacts_url")
    @classmethod
    def _known_filesystem(cls, value: str) -> str:
        import fsspec
        from fsspec.core import split_protocol

        if not value.strip():
            raise ValueError("must not be empty")
        protocol, _ = split_protocol(value)
        if protocol is None:
            return value
        try:
            fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise ValueError(f"unknown storage protocol '{protocol}://'") from None
        except ImportError as exc:
            raise ValueError(f"storage protocol '{protocol}://' needs a package: {exc}") from None
        return value

    @classmethod
    def load(cls, project_dir: str | Path | None = None, **overrides: Any) -> Settings:
        """Read ``keel.toml`` from ``project_dir`` (default: the current directory), apply
        ``KEEL_*`` variables and ``overrides``; any problem is one :class:`ConfigError`."""
        directory = project_directory(project_dir)
        config_path = directory / CONFIG_FILE_NAME
        file_values = _read_config_file(config_path)
        file_values.pop("project_dir", None)  # the file's location is the project directory

        class _FromProject(cls):  # type: ignore[valid-type,misc]
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings, env_settings, _DictSource(settings_cls, file_values))

        try:
            loaded: Settings = _FromProject(project_dir=directory, **overrides)
        except ValidationError as exc:
            raise _config_error(exc, config_path, file_values) from None
        return cls.model_construct(**{name: getattr(loaded, name) for name in cls.model_fields})

    # -- resolved locations ------------------------------------------------------------------

    def project_path(self, path: str) -> Path:
        """``path`` made absolute against the project directory."""
        resolved = Path(path).expanduser()
        return resolved if resolved.is_absolute() else self.project_dir / resolved

    def resolved_online_url(self) -> str:
        """The online store URL with a relative SQLite path made absolute."""
        url = self.features.online_url
        if url.startswith("sqlite:///"):
            return f"sqlite:///{self.project_path(url.removeprefix('sqlite:///'))}"
        return url

    @property
    def config_path(self) -> Path:
        return self.project_dir / CONFIG_FILE_NAME

    def resolved_metadata_url(self) -> str:
        """The metadata URL with a relative SQLite path made absolute against project_dir."""
        from sqlalchemy.engine import make_url

        url = make_url(self.metadata_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            path = Path(url.database).expanduser()
            if not path.is_absolute():
                path = self.project_dir / path
            url = url.set(database=str(path))
        return url.render_as_string(hide_password=False)

    def resolved_artifacts_url(self) -> str:
        """The artifact root with a relative local path made absolute against project_dir."""
        from fsspec.core import split_protocol

        protocol, path = split_protocol(self.artifacts_url)
        if protocol not in (None, "file", "local"):
            return self.artifacts_url
        local = Path(path).expanduser()
        if not local.is_absolute():
            local = self.project_dir / local
        return str(local)


def project_directory(project_dir: str | Path | None = None) -> Path:
    """The project directory: ``project_dir`` if given, else ``KEEL_PROJECT_DIR``, else the
    current directory."""
    if project_dir is not None:
        return Path(project_dir)
    return Path(os.environ.get("KEEL_PROJECT_DIR") or Path.cwd())


class _DictSource(PydanticBaseSettingsSource):
    """Values already parsed from keel.toml, at the lowest precedence."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"is not valid TOML ({exc}); fix it or re-create it with `keel init --force`",
            source=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", source=str(path)) from None


def _config_error(exc: ValidationError, path: Path, file_values: dict[str, Any]) -> ConfigError:
    """The first validation problem as one line naming the key and where it came from."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0]) if error["loc"] else ""
    env_name = ENV_PREFIX + key.upper().replace(".", "__")
    if error["type"] == "extra_forbidden":
        message = "is not a keel setting (check the spelling; `keel init` writes every key)"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    if env_name in os.environ or (top and ENV_PREFIX + top.upper() in os.environ):
        source = f"environment variable {env_name}"
    elif top in file_values:
        source = str(path)
    else:
        source = None
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message, key=key, source=source)
