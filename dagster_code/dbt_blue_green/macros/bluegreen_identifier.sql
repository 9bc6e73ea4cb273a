{#
    `name` as a quoted SQL identifier, its double quotes doubled: adapter.quote leaves a `"` in the
    name as is, which would end the identifier early. Every schema, table and database name the
    release macros write into SQL goes through here.
#}
{% macro bluegreen_identifier(name) -%}
    {{ return(adapter.dispatch('bluegreen_identifier', 'dagster_blue_green')(name)) }}
{%- endmacro %}


{% macro default__bluegreen_identifier(name) -%}
    {{ return('"' ~ (name | string | replace('"', '""')) ~ '"') }}
{%- endmacro %}


{#
    dbt-snowflake writes names unquoted, which Snowflake stores upper-cased: quoted, the
    upper-cased name is the same object, and no character of the name can change the statement.
#}
{% macro snowflake__bluegreen_identifier(name) -%}
    {{ return('"' ~ (name | string | upper | replace('"', '""')) ~ '"') }}
{%- endmacro %}
