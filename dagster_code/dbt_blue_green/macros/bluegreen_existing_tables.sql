{#
    The tables among `names` that exist in `schema` (PostgreSQL), sorted.
#}
{% macro bluegreen_existing_tables(schema, names) %}
    {% if names | length == 0 %}
        {{ return([]) }}
    {% endif %}
    {% set sql %}
        select table_name
        from information_schema.tables
        where table_schema = {{ bluegreen_literal(schema) }}
          and table_type = 'BASE TABLE'
          and table_name in ({% for name in names %}{{ bluegreen_literal(name) }}{% if not loop.last %}, {% endif %}{% endfor %})
        order by table_name
    {% endset %}
    {{ return(run_query(sql).columns[0].values() | list) }}
{% endmacro %}
