{#
    The release that built a mart, as a text column: every mart carries it, so a test can check
    that all green marts were promoted from the same release.
#}
{% macro release_id() -%}
    cast('{{ var("release_id") }}' as {{ dbt.type_string() }})
{%- endmacro %}
