"""Configuration: defaults, then ``ENFORCE_*`` environment variables, then the test config.

Every setting the operators may change is declared once in ``SETTINGS`` with its type, so a
bad value stops start-up with a message naming the variable instead of failing later.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

ENV_PREFIX = "ENFORCE_"


class ConfigError(RuntimeError):
    """Bad configuration: raised at start-up, never at request time."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _transfer_sides(value: str) -> frozenset[str]:
    if value.strip().lower() == "none":
        return frozenset()
    sides = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(sides - TRANSFER_SIDES)
    if unknown:
        raise ValueError(f"unknown side(s) {unknown}; list some of bureau, police, prosecutor, or write none")
    return sides


TRANSFER_SIDES = frozenset({"bureau", "police", "prosecutor"})


def _limit(value: str) -> str:
    """A rate limit in the ``limits`` notation, e.g. ``10 per minute; 50 per hour``."""
    from limits import parse_many

    try:
        if parse_many(value):
            return value
    except ValueError:
        pass
    raise ValueError(f"expected a rate limit such as '10 per minute; 50 per hour', got {value!r}")


@dataclass(frozen=True)
class Setting:
    default: Any
    parse: Callable[[str], Any] = str
    help: str = ""


# Name (without prefix) -> declaration. Days/hours are plain integers in their unit.
SETTINGS: dict[str, Setting] = {
    "ENV": Setting("development", str, "development | production | test"),
    "INSTANCE_PATH": Setting(None, str, "folder for the SQLite file, generated keys and local blobs"),
    "DATABASE_URL": Setting(None, str, "SQLAlchemy URL; default SQLite in the instance folder"),
    "BROKER_URL": Setting("memory://", str, "Celery broker; memory:// runs tasks in-process"),
    "RESULT_BACKEND": Setting(None, str, "Celery result backend; defaults to the broker when it is Redis"),
    "STORAGE_URL": Setting(None, str, "file:///path or s3://bucket?endpoint_url=…&region=…"),
    "SECRET_KEY": Setting(None, str, "signs sessions and tokens; generated in the instance folder if unset"),
    "LOG_LEVEL": Setting("INFO", str, "logging level"),
    "LOG_JSON": Setting(True, _bool, "structured JSON logs"),
    "MAX_CONTENT_LENGTH": Setting(16 * 1024 * 1024, int, "largest JSON request body in bytes"),
    "STAFF_TOKEN_TTL_S": Setting(12 * 3600, int, "lifetime of a staff bearer token"),
    "DEVICE_TOKEN_TTL_S": Setting(3600, int, "lifetime of a device access token"),
    "DEVICE_OFFLINE_GRACE_DAYS": Setting(14, int, "how long a device refresh token outlives its last use"),
    "LOGIN_MAX_FAILURES": Setting(5, int, "failed passwords before the account is locked"),
    "LOGIN_LOCK_MINUTES": Setting(15, int, "how long a locked account stays locked"),
    "LOGIN_LIMIT_PER_ADDRESS": Setting("10 per minute; 50 per hour", _limit,
                                       "failed sign-ins (API and console) from one client address, then 429"),
    "LOGIN_LIMIT_PER_ACCOUNT": Setting("10 per 15 minutes; 50 per day", _limit,
                                       "failed sign-ins for one account name, from any address, then 429"),
    "REFRESH_LIMIT_PER_ADDRESS": Setting("30 per 10 minutes", _limit,
                                         "failed device token refreshes from one client address, then 429"),
    "DEVICE_REGISTRATION_LIMIT": Setting("10 per hour", _limit, "device registrations by one staff account"),
    "PUBLIC_LIMIT_PER_ADDRESS": Setting("300 per minute", _limit,
                                        "requests to the public portal and /api/v1/public from one client address"),
    "SESSION_IDLE_MINUTES": Setting(30, int, "a console sign-in ends after this many minutes without a request"),
    "SESSION_MAX_HOURS": Setting(12, int, "a console sign-in ends this many hours after it began, however active"),
    "DB_CONNECT_TIMEOUT_S": Setting(3, int, "give up connecting to the database after this"),
    "DB_STATEMENT_TIMEOUT_S": Setting(60, int, "PostgreSQL cancels a statement running longer (0: never); "
                                               "migrations and backups are not bound by it"),
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_S": Setting(120, int, "PostgreSQL ends a session idle this long inside a "
                                                          "transaction, releasing its locks (0: never)"),
    "TASK_TIME_LIMIT_S": Setting(1800, int, "a Celery task is killed after this; the broker's visibility timeout "
                                            "is 5 minutes longer, so a task whose worker died is redelivered then"),
    "HOLIDAYS_FILE": Setting(None, str, "JSON of official holidays/make-up days for years chinese-calendar lacks"),
    "CALENDAR_PROVISIONAL": Setting(True, _bool, "a deadline reaching a year with no official holiday schedule is "
                                                 "computed by the provisional rule (Mon–Fri less fixed-date "
                                                 "holidays), marked provisional and recomputed once the schedule "
                                                 "is loaded; off: refused with calendar.unknown_year"),
    "AUDIT_LOG_ORIGIN": Setting("shangluo.qinling-field/audit", str, "checkpoint origin line"),
    "AUDIT_LOG_KEY": Setting(None, str, "path of the Ed25519 log key (PEM); generated in the instance folder"),
    "AUDIT_CHECKPOINT_INTERVAL_S": Setting(300, int, "beat interval of signed checkpoints"),
    "UPLOAD_DIR": Setting(None, str, "folder of partial tus uploads (local disk); default instance/uploads"),
    "UPLOAD_MAX_BYTES": Setting(16 * 1024**3, int, "largest upload (Tus-Max-Size), bytes"),
    "UPLOAD_EXPIRY_DAYS": Setting(42, int, "an unfinished upload is kept this long (a phone may be offline for weeks)"),
    "UPLOAD_READ_TIMEOUT_S": Setting(60.0, float, "a PATCH body silent this long ends its request; what arrived is kept"),
    "UPLOAD_LOCK_STALE_S": Setting(10.0, float, "a PATCH that received nothing this long gives its upload's lock to a "
                                                "newer PATCH of the same device"),
    "UPLOAD_EXPIRE_INTERVAL_S": Setting(3600, int, "with the memory:// broker each web process removes expired "
                                                   "uploads this often (0: never; with a broker, beat does it)"),
    "UPLOAD_S3_PART_BYTES": Setting(16 * 1024**2, int, "with S3 storage, uploads are sent on in parts of this size "
                                                       "as they arrive (at least 5 MiB)"),
    "STORAGE_MIN_FREE_BYTES": Setting(2 * 1024**3, int, "/healthz warns when the upload folder or local blobs have "
                                                        "less free space than this"),
    "SYNC_CHANGE_RETENTION_DAYS": Setting(30, int, "sync changes are kept this long; a device whose cursor is older "
                                                   "downloads the offline package again (keep ≥ DEVICE_OFFLINE_GRACE_DAYS)"),
    "RECONNECT_GAP_HOURS": Setting(8, int, "silence after which a device's next request counts as regained connectivity"),
    "EVIDENCE_MAX_IMAGE_PIXELS": Setting(120_000_000, int, "larger images are flagged, not decoded (decompression bombs)"),
    "EVIDENCE_MAX_DECODE_BYTES": Setting(96 * 1024 * 1024, int,
                                         "an image whose decoded pixels would take more is not decoded (flagged)"),
    "EVIDENCE_RETENTION_YEARS": Setting(30, int, "evidence may not be deleted before this many years after capture"),
    "DOCUMENT_FONT_FILE": Setting(None, str, "optional TTF for case documents; default is the built-in STSong-Light"),
    "TRANSFER_PLATFORM_SIDES": Setting(TRANSFER_SIDES, _transfer_sides,
                                       "offices on the 两法衔接 information-sharing platform, of bureau,police,prosecutor "
                                       "(or none): each must enter its transfer decisions there within 7 days "
                                       "(衔接办法 2017 第34条 binds only offices already connected)"),
    "METRICS_TOKEN": Setting(None, str, "bearer token of the Prometheus scraper for GET /metrics; unset: no /metrics"),
    "TASK_THREADS": Setting(2, int, "with the memory:// broker, threads of the web process that run long tasks "
                                    "(imports, package builds) so their pages show progress; 0 runs them in the request"),
}

_DB_SCHEMES = ("sqlite", "postgresql")
_STORAGE_SCHEMES = ("file", "s3")


def _instance_file(instance_path: Path, name: str, make: Callable[[], bytes]) -> Path:
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / name
    if not path.exists():
        path.write_bytes(make())
        path.chmod(0o600)
    return path


def load(instance_path: str, test_config: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping. Raises ConfigError on any bad value."""
    environ = os.environ if environ is None else environ
    instance = Path(instance_path)
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is None or raw == "":
            values[name] = setting.default
            continue
        try:
            values[name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}{name}: {exc}") from None
    for key, value in (test_config or {}).items():
        values[key.removeprefix(ENV_PREFIX)] = value

    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):] not in SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if values["ENV"] not in {"development", "production", "test"}:
        raise ConfigError(f"{ENV_PREFIX}ENV must be development, production or test, not {values['ENV']!r}")

    if not values["DATABASE_URL"]:
        values["DATABASE_URL"] = f"sqlite:///{instance / 'enforce.db'}"
    scheme = urlsplit(values["DATABASE_URL"]).scheme.split("+")[0]
    if scheme not in _DB_SCHEMES:
        raise ConfigError(f"{ENV_PREFIX}DATABASE_URL: scheme {scheme!r} is not one of {_DB_SCHEMES}")
    if scheme == "postgresql" and "+" not in values["DATABASE_URL"].split("://")[0]:
        values["DATABASE_URL"] = values["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)

    broker_scheme = urlsplit(values["BROKER_URL"]).scheme
    if broker_scheme not in {"memory", "redis", "rediss"}:
        raise ConfigError(f"{ENV_PREFIX}BROKER_URL: use memory:// (in-process) or redis://, not {broker_scheme!r}")

    if not values["STORAGE_URL"]:
        values["STORAGE_URL"] = (instance / "blobs").as_uri()
    storage_scheme = urlsplit(values["STORAGE_URL"]).scheme
    if storage_scheme not in _STORAGE_SCHEMES:
        raise ConfigError(f"{ENV_PREFIX}STORAGE_URL: scheme {storage_scheme!r} is not one of {_STORAGE_SCHEMES}")

    if not values["UPLOAD_DIR"]:
        values["UPLOAD_DIR"] = str(instance / "uploads")

    if not values["SECRET_KEY"]:
        if values["ENV"] == "production":
            raise ConfigError(f"{ENV_PREFIX}SECRET_KEY must be set in production")
        key_file = _instance_file(instance, "secret_key", lambda: secrets.token_hex(32).encode())
        values["SECRET_KEY"] = key_file.read_text().strip()
    if len(values["SECRET_KEY"]) < 16:
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is too short (at least 16 characters)")

    for name in ("MAX_CONTENT_LENGTH", "STAFF_TOKEN_TTL_S", "DEVICE_TOKEN_TTL_S",
                 "DEVICE_OFFLINE_GRACE_DAYS", "LOGIN_MAX_FAILURES", "DB_CONNECT_TIMEOUT_S",
                 "UPLOAD_MAX_BYTES", "UPLOAD_EXPIRY_DAYS", "RECONNECT_GAP_HOURS", "EVIDENCE_MAX_IMAGE_PIXELS",
                 "EVIDENCE_MAX_DECODE_BYTES", "SYNC_CHANGE_RETENTION_DAYS",
                 "SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS"):
        if values[name] <= 0:
            raise ConfigError(f"{ENV_PREFIX}{name} must be positive")
    if values["SESSION_IDLE_MINUTES"] > values["SESSION_MAX_HOURS"] * 60:
        raise ConfigError(f"{ENV_PREFIX}SESSION_IDLE_MINUTES is longer than {ENV_PREFIX}SESSION_MAX_HOURS")
    for name in ("DB_STATEMENT_TIMEOUT_S", "DB_IDLE_IN_TRANSACTION_TIMEOUT_S"):
        if values[name] < 0:
            raise ConfigError(f"{ENV_PREFIX}{name} must be 0 (off) or more")
    if values["TASK_TIME_LIMIT_S"] < 60:
        raise ConfigError(f"{ENV_PREFIX}TASK_TIME_LIMIT_S must be at least 60")
    if values["TASK_THREADS"] < 0:
        raise ConfigError(f"{ENV_PREFIX}TASK_THREADS must be 0 or more")

    _check_audit_log_key(values)
    if values["METRICS_TOKEN"] is not None and len(values["METRICS_TOKEN"]) < 16:
        raise ConfigError(f"{ENV_PREFIX}METRICS_TOKEN is too short (at least 16 characters)")

    if values["HOLIDAYS_FILE"]:
        from server.core.calendar import load_extra

        try:
            load_extra(values["HOLIDAYS_FILE"])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{ENV_PREFIX}HOLIDAYS_FILE: {exc}") from None

    return values


def _check_audit_log_key(values: dict[str, Any]) -> None:
    """The audit-log key signs every checkpoint: a production process must be able to read it at
    start-up (the container runs as the unprivileged ``enforce`` user, while ``openssl genpkey``
    writes mode 0600 for the file's owner), not fail at the first checkpoint minutes later.
    Elsewhere a missing key is generated on first use (``audit.checkpoints.log_private_key``)."""
    name = f"{ENV_PREFIX}AUDIT_LOG_KEY"
    path = values["AUDIT_LOG_KEY"]
    if not path:
        if values["ENV"] == "production":
            raise ConfigError(f"{name} must be set in production (the path of the Ed25519 PEM key)")
        return
    key = Path(path)
    try:
        if not key.exists():
            if values["ENV"] == "production":
                raise ConfigError(f"{name}: {key} does not exist")
            return
        with key.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise ConfigError(
            f"{name}: cannot read {key} as uid {os.getuid()} ({exc.strerror}); make it readable by the "
            f"service user, e.g. group {_group_hint()} with mode 0640") from None
    if b"PRIVATE KEY" not in head:
        raise ConfigError(f"{name}: {key} is not a PEM private key")


def _group_hint() -> str:
    try:
        import grp

        return grp.getgrgid(os.getgid()).gr_name
    except (ImportError, KeyError):
        return str(os.getgid())
