{#
    A node's custom schema as-is (blue, green, ...), not dbt's default "<target.schema>_<custom>":
    the blue/green macros address these schemas by name. Nodes without a custom schema fall back
    to the target's schema. dbt only calls generate_schema_name from the root project, so the
    project adds a one-line macros/generate_schema_name.sql that calls this one.
#}
{% macro blue_green_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
