"""Deterministic synthetic raw data (events, shop tables) for the dbt project, and its loader."""

from example_extras.raw_data.generator import (
    EVENTS_DAYS,
    EVENTS_START,
    RAW_SCHEMA,
    TABLE_COLUMNS,
    RawData,
    SourceChanges,
    apply_source_changes,
    generate,
    load,
    summarize,
)

__all__ = [
    "EVENTS_DAYS",
    "EVENTS_START",
    "RAW_SCHEMA",
    "TABLE_COLUMNS",
    "RawData",
    "SourceChanges",
    "apply_source_changes",
    "generate",
    "load",
    "summarize",
]
