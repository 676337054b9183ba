"""Data contracts: schemas declared once and used for training frames, requests and signatures."""

from keel.data._jsonschema import JSONSchema, to_json_schema
from keel.data._record import RecordProblem, RecordValidator
from keel.data._schema import DTYPES, Check, DType, Field, Schema, SchemaDiff, infer_dtype
from keel.data._validate import (
    ColumnProblem,
    DataValidationWarning,
    RuleFailure,
    ValidationReport,
    ValidationResult,
    check_matches,
    validate,
)

__all__ = [
    "DTYPES",
    "Check",
    "ColumnProblem",
    "DType",
    "DataValidationWarning",
    "Field",
    "JSONSchema",
    "RecordProblem",
    "RecordValidator",
    "RuleFailure",
    "Schema",
    "SchemaDiff",
    "ValidationReport",
    "ValidationResult",
    "check_matches",
    "infer_dtype",
    "to_json_schema",
    "validate",
]
