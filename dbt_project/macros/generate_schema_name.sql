{# Custom schemas as-is (blue, events, snapshots): see the dagster_blue_green package. #}
{% macro generate_schema_name(custom_schema_name, node) -%}{{ dagster_blue_green.blue_green_schema_name(custom_schema_name, node) }}{%- endmacro %}
