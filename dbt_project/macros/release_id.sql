{#
    The release that built a mart, as a text column: every mart carries it, so a test can check
    that all green marts were promoted from the same release. The var is the release's run id
    (checked), or the project's default outside a release.
#}
{% macro release_id() -%}
    {%- set release = var("release_id") -%}
    {%- if release != "unreleased" -%}
        {%- set release = dagster_blue_green.bluegreen_release_id(release) -%}
    {%- endif -%}
    cast({{ dagster_blue_green.bluegreen_literal(release) }} as {{ dbt.type_string() }})
{%- endmacro %}
