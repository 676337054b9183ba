"""Every user-facing failure in keel is a :class:`KeelError`.

Each subclass builds its message from its arguments, so the message always says what was wrong
and what to do. Third-party exceptions (SQLAlchemy, fsspec, pickle, ...) are translated into one
of these at the edge of the component that called the library. Core errors know nothing of HTTP
or of the CLI: adapters map them to status codes and exit codes.

    KeelError
    ├── ConfigError                    a bad keel.toml, unknown key, bad URL or bad value
    ├── MetadataStoreError
    │   ├── MetadataStoreUnavailable   the metadata database cannot be reached
    │   └── MigrationError             the schema cannot be brought up to date
    ├── ArtifactError
    │   ├── ArtifactNotFound           no artifact with that digest in the store
    │   └── ArtifactCorrupted          stored bytes do not match their recorded sha256
    ├── NotFoundError                  base of every "no such thing" lookup
    │   ├── ExperimentNotFound
    │   ├── RunNotFound
    │   ├── ModelNotFound
    │   ├── ModelVersionNotFound
    │   └── AliasNotFound
    ├── TrackingError
    │   └── RunNotActive               logging to a run that already ended
    ├── RegistryError
    │   ├── InvalidModelURI            not models:/name/3 or models:/name@alias
    │   ├── InvalidTransition          a lifecycle move the state machine forbids
    │   ├── ApprovalPolicyViolation    e.g. the approver is the registrant under four-eyes
    │   └── AliasConflict              the alias moved under you (compare-and-set failed)
    ├── FlavorError
    │   ├── UnsupportedModel           no flavor knows how to save this object
    │   ├── FlavorUnavailable          the flavor's library is not installed
    │   └── ModelLoadError             the artifact verified but could not be deserialised
    ├── DataError
    │   ├── SchemaError                a schema definition that cannot work
    │   ├── DataValidationError        data broke its schema's rules (carries the report)
    │   ├── SchemaMismatch             data's columns no longer match a model's signature
    │   └── SnapshotNotFound           no snapshot with that name or fingerprint
    ├── FeatureStoreError
    │   ├── FeatureDefinitionError     a definition that cannot work, or an unknown reference
    │   ├── TimestampError             naive timestamps where a zone is required, unparsable
    │   └── OnlineStoreUnavailable     the online store cannot be reached
    ├── ServingError
    │   ├── EndpointNotFound           no endpoint with that name (also a NotFoundError)
    │   ├── RevisionNotFound           the endpoint has no deployment revision with that number
    │   ├── DeploymentError            a deployment change that cannot be made
    │   │   ├── EndpointExists         creating an endpoint under a name already taken
    │   │   └── InvalidPolicy          a traffic-policy field with a bad value (names the field)
    │   ├── PredictionNotFound         no logged prediction with that id
    │   ├── LogQueryError              SQL over the prediction log that DuckDB refused
    │   ├── Overloaded                 a model's request queue is full (HTTP 503)
    │   ├── BatcherClosed              a model is shutting down and takes no more requests
    │   └── ApiKeyError                an API-key change that cannot be made (bad scope, name...)
    │       ├── InvalidApiKey          unknown, malformed, revoked or expired key (HTTP 401)
    │       ├── MissingScope           the key lacks the scope the request needs (HTTP 403)
    │       ├── RateLimited            over the key's rate limit (HTTP 429, carries retry_after)
    │       ├── ApiKeyExists           creating a key under a name already taken
    │       └── ApiKeyNotFound         no key with that id or name (also a NotFoundError)
    └── MonitoringError                a drift or monitoring option that cannot work
        └── AlertError                 an alert change that cannot be made
            ├── AlertNotFound          no alert with that id (also a NotFoundError)
            └── InvalidAlertTransition e.g. acknowledging or resolving a resolved alert
"""

from __future__ import annotations

from collections.abc import Iterable


class KeelError(Exception):
    """Root of every error keel raises on purpose."""


# -- configuration ---------------------------------------------------------------------------------


class ConfigError(KeelError):
    """The configuration (keel.toml or a KEEL_* variable) is unusable."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        self.key = key
        self.source = source
        where = f" in {source}" if source else ""
        prefix = f"config key '{key}'{where}: " if key else (f"{source}: " if source else "")
        super().__init__(f"{prefix}{message}")


# -- metadata store --------------------------------------------------------------------------------


class MetadataStoreError(KeelError):
    """The metadata database failed in a way the caller cannot fix by changing input."""


class MetadataStoreUnavailable(MetadataStoreError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(
            f"cannot connect to the metadata database {url}: {reason} "
            "(check that the server is running and that metadata_url in keel.toml is right)"
        )


class MigrationError(MetadataStoreError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot migrate the metadata database {url}: {reason}")


# -- artifacts -------------------------------------------------------------------------------------


class ArtifactError(KeelError):
    """Base of artifact store failures."""


class ArtifactNotFound(ArtifactError):
    def __init__(self, digest: str, location: str) -> None:
        self.digest = digest
        super().__init__(
            f"artifact sha256:{digest} is missing from {location} "
            "(was the artifact store moved or pruned? check artifacts_url in keel.toml)"
        )


class ArtifactCorrupted(ArtifactError):
    def __init__(self, digest: str, location: str, detail: str) -> None:
        self.digest = digest
        super().__init__(
            f"artifact sha256:{digest} at {location} failed its integrity check ({detail}); "
            "it was modified or truncated after it was written and will not be loaded"
        )


# -- lookups ---------------------------------------------------------------------------------------


class NotFoundError(KeelError):
    """Base of every lookup that found nothing."""


class ExperimentNotFound(NotFoundError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no experiment named '{name}' (list them with `keel runs list`)")


class RunNotFound(NotFoundError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id '{run_id}' (list runs with `keel runs list`)")


class ModelNotFound(NotFoundError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no registered model named '{name}' (see `keel models list`)")


class ModelVersionNotFound(NotFoundError):
    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        super().__init__(f"model '{name}' has no version {version} (see `keel models show {name}`)")


class AliasNotFound(NotFoundError):
    def __init__(self, name: str, alias: str) -> None:
        self.name = name
        self.alias = alias
        super().__init__(
            f"model '{name}' has no alias '{alias}' "
            f"(set one with `keel models alias {name} {alias} VERSION`)"
        )


# -- tracking --------------------------------------------------------------------------------------


class TrackingError(KeelError):
    """Base of experiment-tracking failures."""


class RunNotActive(TrackingError):
    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        super().__init__(f"run '{run_id}' is {status}; start a new run to log more")


# -- registry --------------------------------------------------------------------------------------


class RegistryError(KeelError):
    """Base of model-registry failures."""


class InvalidModelURI(RegistryError):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(
            f"'{uri}' is not a model URI; use models:/NAME/VERSION or models:/NAME@ALIAS"
        )


class InvalidTransition(RegistryError):
    def __init__(self, name: str, version: int, current: str, target: str, allowed: Iterable[str]):
        self.current = current
        self.target = target
        allowed_list = ", ".join(sorted(allowed)) or "nothing"
        super().__init__(
            f"model '{name}' version {version} is {current} and cannot move to {target} "
            f"(from {current} it can move to: {allowed_list})"
        )


class ApprovalPolicyViolation(RegistryError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class AliasConflict(RegistryError):
    def __init__(self, name: str, alias: str, expected: int | None, actual: int | None) -> None:
        self.expected = expected
        self.actual = actual
        exp = "unset" if expected is None else f"version {expected}"
        act = "unset" if actual is None else f"version {actual}"
        super().__init__(
            f"alias '{alias}' of model '{name}' was expected at {exp} but is at {act}: "
            "someone else moved it; re-read and retry"
        )


# -- flavors ---------------------------------------------------------------------------------------


class FlavorError(KeelError):
    """Base of save/load/predict adapter failures."""


class UnsupportedModel(FlavorError):
    def __init__(self, type_name: str, known: Iterable[str]) -> None:
        super().__init__(
            f"no flavor can save a {type_name}; known flavors: {', '.join(sorted(known))} "
            "(wrap it in a class with a predict(frame) method to use the pyfunc flavor)"
        )


class FlavorUnavailable(FlavorError):
    def __init__(self, flavor: str, package: str, extra: str) -> None:
        super().__init__(
            f"the {flavor} flavor needs the '{package}' package, which is not installed "
            f"(pip install 'keel-ml[{extra}]')"
        )


class ModelLoadError(FlavorError):
    def __init__(self, flavor: str, reason: str) -> None:
        super().__init__(f"could not load the {flavor} model: {reason}")


# -- data ------------------------------------------------------------------------------------------


class DataError(KeelError):
    """Base of data-contract and snapshot failures."""


class SchemaError(DataError):
    """A schema definition (Python, YAML or JSON) that cannot work."""


class DataValidationError(DataError):
    """Data broke its schema's rules; ``report`` says which rule, where, and how often."""

    def __init__(self, message: str, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class SchemaMismatch(DataError):
    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{what} does not match: {'; '.join(self.problems)}")


class SnapshotNotFound(DataError, NotFoundError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no snapshot named or fingerprinted '{ref}' (see `keel data show`)")


# -- features --------------------------------------------------------------------------------------


class FeatureStoreError(KeelError):
    """Base of feature-store failures."""


class FeatureDefinitionError(FeatureStoreError):
    """A feature definition that cannot work (bad name, missing key, unknown reference...)."""


class TimestampError(FeatureStoreError):
    def __init__(self, column: str, problem: str) -> None:
        self.column = column
        super().__init__(f"timestamp column '{column}': {problem}")


class OnlineStoreUnavailable(FeatureStoreError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach the online store {url}: {reason}")


# -- serving ---------------------------------------------------------------------------------------


class ServingError(KeelError):
    """Base of endpoint, deployment and request-path failures."""


class EndpointNotFound(ServingError, NotFoundError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no endpoint named '{name}' (list them with `keel endpoints list`)")


class RevisionNotFound(ServingError, NotFoundError):
    def __init__(self, endpoint: str, revision: int, current: int) -> None:
        self.endpoint = endpoint
        self.revision = revision
        super().__init__(
            f"endpoint '{endpoint}' has no revision {revision}: its revisions are 1 to {current} "
            f"(see `keel endpoints history {endpoint}`)"
        )


class DeploymentError(ServingError):
    """A change to an endpoint's deployment that cannot be made; the message says why."""


class EndpointExists(DeploymentError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"an endpoint named '{name}' already exists; change it with "
            f"`keel endpoints set {name}` or pick another name"
        )


class InvalidPolicy(DeploymentError):
    """A traffic-policy field with a value that cannot work; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid deployment policy: {field} {problem}")


class PredictionNotFound(ServingError, NotFoundError):
    def __init__(self, prediction_id: str, location: str) -> None:
        self.prediction_id = prediction_id
        super().__init__(
            f"no prediction '{prediction_id}' in the prediction log at {location} "
            "(check the id, and that [serving] prediction_log_dir is the server's)"
        )


class LogQueryError(ServingError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the prediction log query failed: {reason}")


class Overloaded(ServingError):
    """The batcher's queue is full; the request was refused without being queued."""

    def __init__(self, name: str, queued: int, limit: int) -> None:
        self.name = name
        self.queued = queued
        self.limit = limit
        super().__init__(
            f"model '{name}' is overloaded: {queued} requests are already waiting "
            f"(max_queue={limit}); retry later or add capacity"
        )


class BatcherClosed(ServingError):
    """A submission reached a batcher that is shutting down or shut down."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"model '{name}' is shutting down and accepts no more requests")


class ApiKeyError(ServingError):
    """An API-key change that cannot be made, or a request its key does not admit."""


class InvalidApiKey(ApiKeyError):
    """The presented secret does not admit anyone. The message is the same whatever the cause,
    so a caller learns nothing about which keys exist; ``reason`` (unknown, malformed, revoked,
    expired) is for the server's log, never for the client."""

    def __init__(self, reason: str, key_id: str | None = None) -> None:
        self.reason = reason
        self.key_id = key_id
        super().__init__("invalid API key")


class MissingScope(ApiKeyError):
    def __init__(self, key_name: str, scope: str) -> None:
        self.key_name = key_name
        self.scope = scope
        super().__init__(f"API key '{key_name}' does not have the '{scope}' scope")


class RateLimited(ApiKeyError):
    """Over the key's rate limit; ``retry_after`` is how many seconds until a request fits."""

    def __init__(self, key_name: str, retry_after: float) -> None:
        self.key_name = key_name
        self.retry_after = retry_after
        super().__init__(
            f"API key '{key_name}' is over its rate limit; retry in {retry_after:.3g} s"
        )


class ApiKeyExists(ApiKeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"an API key named '{name}' already exists (revoked keys keep their names); "
            "pick another name"
        )


class ApiKeyNotFound(ApiKeyError, NotFoundError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no API key with id or name '{ref}' (list them with `keel keys list`)")


# -- monitoring ------------------------------------------------------------------------------------


class MonitoringError(KeelError):
    """A drift or monitoring call that cannot work: an unknown statistic or correction, alpha
    outside (0, 1), a column that neither side has. The message says what to change."""

    def __init__(self, problem: str, *, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}")


class AlertError(MonitoringError):
    """An alert change that cannot be made (e.g. acknowledging a resolved alert)."""

    def __init__(self, problem: str, *, fix: str = "see `keel alerts list`") -> None:
        super().__init__(problem, fix=fix)


class AlertNotFound(AlertError, NotFoundError):
    def __init__(self, alert_id: str) -> None:
        self.alert_id = alert_id
        super().__init__(f"no alert with id '{alert_id}'", fix="list them with `keel alerts list`")


class InvalidAlertTransition(AlertError):
    def __init__(self, alert_id: str, state: str, wanted: str) -> None:
        self.alert_id = alert_id
        self.state = state
        super().__init__(
            f"alert '{alert_id}' is {state} and cannot be {wanted}",
            fix="only a firing alert can be acknowledged, and a resolved one stays resolved",
        )
