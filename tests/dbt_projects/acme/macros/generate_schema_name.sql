{% macro generate_schema_name(custom_schema_name, node) -%}{{ dagster_blue_green.blue_green_schema_name(custom_schema_name, node) }}{%- endmacro %}
