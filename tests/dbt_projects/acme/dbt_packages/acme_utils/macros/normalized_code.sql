{% macro normalized_code(column) -%}upper(trim({{ column }})){%- endmacro %}
