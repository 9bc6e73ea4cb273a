{#
    A SQL string literal of `value` (null for none), safe whatever it holds: release ids are
    checked to be run ids (bluegreen_release_id) but table and schema names come from the
    project, and JSON (built_by) can hold anything.
#}
{% macro bluegreen_literal(value) -%}
    {{ return(adapter.dispatch('bluegreen_literal', 'dagster_blue_green')(value)) }}
{%- endmacro %}


{# PostgreSQL (standard_conforming_strings, on since 9.1): only a quote needs doubling. #}
{% macro default__bluegreen_literal(value) -%}
    {{ return("null" if value is none else "'" ~ (value | string | replace("'", "''")) ~ "'") }}
{%- endmacro %}


{# Snowflake reads backslash escapes in single-quoted literals: a backslash is doubled too. #}
{% macro snowflake__bluegreen_literal(value) -%}
    {{ return("null" if value is none else "'" ~ (value | string | replace("\\", "\\\\") | replace("'", "''")) ~ "'") }}
{%- endmacro %}
