"""Data contracts: schemas declared once and used for training frames, requests and signatures."""

from keel.data._schema import DTYPES, DType, Field, Schema, SchemaDiff, infer_dtype

__all__ = ["DTYPES", "DType", "Field", "Schema", "SchemaDiff", "infer_dtype"]
