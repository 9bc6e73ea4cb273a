{#
    Use a model's custom schema as-is (blue, events, snapshots), not dbt's default
    "<target.schema>_<custom>": the blue/green macros and Dagster address these schemas by name.
    Nodes without a custom schema fall back to the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
