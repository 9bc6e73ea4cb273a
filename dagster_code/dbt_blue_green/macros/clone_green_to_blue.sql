{#
    Prepares the blue schema for a release: every table that green publishes is copied into
    blue, so a release (even one that rebuilds only some models) starts from what consumers
    see now. Called by the Dagster asset `release/blue_prepared` through
    `dbt run-operation clone_green_to_blue --args '{release_id: ..., tables: [...]}'`, never
    from on-run-start: a retried run must not clone green over blue tables it already rebuilt.

    Then it records in <blue>._release_prepared (release_id, prepared_from) the release blue was
    prepared for and the one green held (its latest _release_log row, null before any). The
    promotion refuses a blue prepared for another release, or from a green another release
    replaced since: promoting either would roll consumers back. The marker is never promoted
    nor cloned: both copy only the release's `tables`.
#}
{% macro clone_green_to_blue(release_id, tables) %}
    {% set release_id = bluegreen_release_id(release_id) %}
    {{ return(adapter.dispatch('clone_green_to_blue', 'dagster_blue_green')(release_id, tables)) }}
{% endmacro %}


{% macro default__clone_green_to_blue(release_id, tables) %}
    {{ exceptions.raise_compiler_error(
        "Blue/green releases are not implemented for the '" ~ adapter.type() ~ "' adapter: "
        ~ "add macros " ~ adapter.type() ~ "__clone_green_to_blue and "
        ~ adapter.type() ~ "__promote_blue_to_green to the project."
    ) }}
{% endmacro %}


{#
    Tables are copied a few hundred per transaction. One transaction for all would hold about five
    locks per table (the blue table dropped, the one created, their types, the green one read), and
    PostgreSQL's lock table, shared by every session (max_locks_per_transaction x max_connections:
    6,400 by default), runs out for a release of a few thousand tables. Blue is no consumer's: a
    clone stopped half-way leaves `release/blue_prepared` unmaterialized, and its retry clones again.
#}
{% macro postgres__clone_green_to_blue(release_id, tables) %}
    {% if execute %}
        {% set green = var('green_schema', 'green') %}
        {% set blue = var('blue_schema', 'blue') %}
        {#
            Read before the copy: a promotion landing during the copy then fences this release
            out, rather than letting it promote over a green it did not copy.
        #}
        {% set prepared_from = bluegreen_latest_release(green) %}
        {% set published = bluegreen_existing_tables(green, tables) %}
        {% do run_query("begin; create schema if not exists " ~ bluegreen_identifier(blue) ~ "; commit;") %}
        {% for some in published | batch(200) %}
            {% set sql %}
                begin;
                {% for table in some %}
                drop table if exists {{ bluegreen_identifier(blue) }}.{{ bluegreen_identifier(table) }} cascade;
                create table {{ bluegreen_identifier(blue) }}.{{ bluegreen_identifier(table) }}
                    as select * from {{ bluegreen_identifier(green) }}.{{ bluegreen_identifier(table) }};
                {% endfor %}
                commit;
            {% endset %}
            {% do run_query(sql) %}
        {% endfor %}
        {% set marker = bluegreen_identifier(blue) ~ '._release_prepared' %}
        {% do run_query(
            "begin; drop table if exists " ~ marker ~ "; "
            ~ "create table " ~ marker ~ " (release_id text not null, prepared_from text); "
            ~ "insert into " ~ marker ~ " values (" ~ bluegreen_literal(release_id) ~ ", "
            ~ bluegreen_literal(prepared_from) ~ "); commit;"
        ) %}
        {% if published | length == 0 %}
            {% do log("Release " ~ release_id ~ ": " ~ green ~ " publishes no table yet; first release.", info=True) %}
        {% else %}
            {% do log("Release " ~ release_id ~ ": cloned " ~ published | length ~ " tables from " ~ green ~ " into " ~ blue, info=True) %}
        {% endif %}
    {% endif %}
{% endmacro %}


{% macro snowflake__clone_green_to_blue(release_id, tables) %}
    {% if execute %}
        {% set green = var('green_schema', 'green') %}
        {% set blue = var('blue_schema', 'blue') %}
        {% set db = bluegreen_identifier(target.database) %}
        {% set green_exists = run_query(
            "select count(*) from " ~ db ~ ".information_schema.schemata where schema_name = upper("
            ~ bluegreen_literal(green) ~ ")"
        ).rows[0][0] > 0 %}
        {# Read before the clone, as on PostgreSQL. #}
        {% set prepared_from = bluegreen_latest_release(green) if green_exists else none %}
        {% if green_exists %}
            {# Zero-copy: a metadata operation however large the tables are. #}
            {% do run_query("create or replace schema " ~ db ~ "." ~ bluegreen_identifier(blue) ~ " clone " ~ db ~ "." ~ bluegreen_identifier(green)) %}
            {% do log("Release " ~ release_id ~ ": cloned schema " ~ green ~ " into " ~ blue, info=True) %}
        {% else %}
            {% do run_query("create schema if not exists " ~ db ~ "." ~ bluegreen_identifier(blue)) %}
            {% do log("Release " ~ release_id ~ ": no " ~ green ~ " schema yet; first release.", info=True) %}
        {% endif %}
        {# After the clone, which replaces blue with a copy of green (that has no marker). #}
        {% do run_query(
            "create or replace table " ~ db ~ "." ~ bluegreen_identifier(blue) ~ "._release_prepared (release_id varchar not null, prepared_from varchar)"
        ) %}
        {% do run_query(
            "insert into " ~ db ~ "." ~ bluegreen_identifier(blue) ~ "._release_prepared (release_id, prepared_from) select "
            ~ bluegreen_literal(release_id) ~ ", " ~ bluegreen_literal(prepared_from)
        ) %}
    {% endif %}
{% endmacro %}
