{# Custom schemas by name (models build in `blue`), as the blue/green package expects. #}
{% macro generate_schema_name(custom_schema_name, node) -%}{{ dagster_blue_green.blue_green_schema_name(custom_schema_name, node) }}{%- endmacro %}
