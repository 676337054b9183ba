"""Data contracts: schemas declared once and used for training frames, requests and signatures;
snapshots of data sets with their profiles, and the drift between two of them."""

from keel.data._jsonschema import JSONSchema, to_json_schema
from keel.data._profile import ColumnProfile, Frequencies, Histogram, Profile, profile
from keel.data._profile_diff import ColumnChange, ProfileDiff, profile_diff
from keel.data._record import RecordProblem, RecordValidator
from keel.data._report import (
    ColumnProblem,
    DataValidationWarning,
    RuleFailure,
    ValidationReport,
    ValidationResult,
)
from keel.data._schema import DTYPES, Check, DType, Field, Schema, SchemaDiff, infer_dtype
from keel.data._snapshot import Snapshot, SnapshotDiff, SnapshotStore, read_data
from keel.data._validate import check_matches, conform, validate

__all__ = [
    "DTYPES",
    "Check",
    "ColumnChange",
    "ColumnProblem",
    "ColumnProfile",
    "DType",
    "DataValidationWarning",
    "Field",
    "Frequencies",
    "Histogram",
    "JSONSchema",
    "Profile",
    "ProfileDiff",
    "RecordProblem",
    "RecordValidator",
    "RuleFailure",
    "Schema",
    "SchemaDiff",
    "Snapshot",
    "SnapshotDiff",
    "SnapshotStore",
    "ValidationReport",
    "ValidationResult",
    "check_matches",
    "conform",
    "infer_dtype",
    "profile",
    "profile_diff",
    "read_data",
    "to_json_schema",
    "validate",
]
