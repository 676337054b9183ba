"""The public API is what keel/__init__.py exports, listed once and sorted."""

from __future__ import annotations

import subprocess
import sys

import keel


def test_all_is_sorted_and_complete() -> None:
    assert keel.__all__ == sorted(keel.__all__)
    for name in keel.__all__:
        assert hasattr(keel, name), name


def test_every_error_is_a_keel_error() -> None:
    from keel import errors

    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert all(issubclass(cls, keel.KeelError) for cls in classes)
    for cls in classes:
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} missing from the tree"


def test_importing_keel_does_not_import_optional_backends() -> None:
    code = (
        "import sys, keel; "
        "print(sorted(m for m in ('lightgbm', 'xgboost', 'psycopg', 'redis', 'typer') "
        "if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
