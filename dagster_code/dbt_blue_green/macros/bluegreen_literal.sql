{#
    A SQL string literal of `value`, its quotes doubled: release ids come from run ids and
    table names from the project, neither checked for quotes.
#}
{% macro bluegreen_literal(value) -%}
    {{ return("null" if value is none else "'" ~ (value | string | replace("'", "''")) ~ "'") }}
{%- endmacro %}
