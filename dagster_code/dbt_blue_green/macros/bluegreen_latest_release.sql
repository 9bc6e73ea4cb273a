{#
    The release id `schema`._release_log recorded last, or none when it records none yet: the
    release that schema holds.
#}
{% macro bluegreen_latest_release(schema) %}
    {{ return(adapter.dispatch('bluegreen_latest_release', 'dagster_blue_green')(schema)) }}
{% endmacro %}


{% macro postgres__bluegreen_latest_release(schema) %}
    {% set release_log = bluegreen_identifier(schema) ~ '._release_log' %}
    {% set logged = run_query("select to_regclass(" ~ bluegreen_literal(release_log) ~ ") is not null").rows[0][0] %}
    {% if not logged %}
        {{ return(none) }}
    {% endif %}
    {% set latest = run_query("select release_id from " ~ release_log ~ " order by promoted_at desc limit 1").rows %}
    {{ return(latest[0][0] if latest | length > 0 else none) }}
{% endmacro %}


{% macro snowflake__bluegreen_latest_release(schema) %}
    {% set db = bluegreen_identifier(target.database) %}
    {% set logged = run_query(
        "select count(*) from " ~ db ~ ".information_schema.tables where table_schema = upper("
        ~ bluegreen_literal(schema) ~ ") and table_name = '_RELEASE_LOG'"
    ).rows[0][0] > 0 %}
    {% if not logged %}
        {{ return(none) }}
    {% endif %}
    {% set latest = run_query(
        "select release_id from " ~ db ~ "." ~ bluegreen_identifier(schema) ~ "._release_log order by promoted_at desc limit 1"
    ).rows %}
    {{ return(latest[0][0] if latest | length > 0 else none) }}
{% endmacro %}
