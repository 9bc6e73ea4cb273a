{#
    Promotes a release: every mart in blue replaces its twin in green.

    On PostgreSQL, DDL is transactional, so all marts swap in ONE transaction: a consumer
    sees either every old mart or every new one, never a mix (the guide's per-table swap
    leaves a window of mixed releases). The release id is recorded in green._release_log in
    the same transaction; a promotion replayed for the same release (a retry after a crash
    that hit after the commit) finds it and changes nothing. Swapping, not dropping, leaves
    the previous release in blue until the next release clones over it.

    Called by the Dagster asset `release/green_promoted`, which runs only after every model
    and every dbt test of the release succeeded.
#}
{% macro promote_blue_to_green(release_id, marts) %}
    {{ return(adapter.dispatch('promote_blue_to_green', 'analytics')(release_id, marts)) }}
{% endmacro %}


{% macro default__promote_blue_to_green(release_id, marts) %}
    {{ exceptions.raise_compiler_error(
        "Blue/green releases are not implemented for the '" ~ adapter.type() ~ "' adapter: "
        ~ "add macros " ~ adapter.type() ~ "__clone_green_to_blue and "
        ~ adapter.type() ~ "__promote_blue_to_green to the project."
    ) }}
{% endmacro %}


{% macro postgres__promote_blue_to_green(release_id, marts) %}
    {% if execute %}
        {% set green = adapter.quote(var('green_schema')) %}
        {% set blue = adapter.quote(var('blue_schema')) %}
        {% set scratch = adapter.quote(var('blue_schema') ~ '_swap') %}
        {% set release_log = green ~ '._release_log' %}
        {# One transaction from `begin` to `commit`, across the run_query calls below. #}
        {% set setup %}
            begin;
            create schema if not exists {{ green }};
            create schema if not exists {{ scratch }};
            create table if not exists {{ release_log }} (
                release_id text primary key,
                promoted_at timestamptz not null default now(),
                marts text[] not null
            );
            -- Serializes promotions: a second one waits here, then sees the first's row.
            lock table {{ release_log }} in share row exclusive mode;
        {% endset %}
        {% do run_query(setup) %}
        {% set already = run_query(
            "select count(*) from " ~ release_log ~ " where release_id = '" ~ release_id ~ "'"
        ).rows[0][0] > 0 %}
        {% if already %}
            {% do run_query("commit") %}
            {% do log("Release " ~ release_id ~ " was already promoted; nothing to do.", info=True) %}
            {{ return(none) }}
        {% endif %}

        {% set built = bluegreen_existing_tables(var('blue_schema'), marts) %}
        {% set missing = marts | reject('in', built) | list %}
        {% if missing | length > 0 %}
            {{ exceptions.raise_compiler_error(
                "Release " ~ release_id ~ " cannot be promoted: blue has no table for "
                ~ missing | join(", ") ~ ". Green is unchanged."
            ) }}
        {% endif %}
        {% set published = bluegreen_existing_tables(var('green_schema'), marts) %}
        {% set swap %}
            {% for mart in marts %}
            {% set name = adapter.quote(mart) %}
            {% if mart in published %}
            alter table {{ green }}.{{ name }} set schema {{ scratch }};
            {% endif %}
            alter table {{ blue }}.{{ name }} set schema {{ green }};
            {% if mart in published %}
            alter table {{ scratch }}.{{ name }} set schema {{ blue }};
            {% endif %}
            {% endfor %}
            insert into {{ release_log }} (release_id, marts)
            values ('{{ release_id }}', array[{% for mart in marts %}'{{ mart }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[]);
            commit;
        {% endset %}
        {% do run_query(swap) %}
        {% do log("Release " ~ release_id ~ ": promoted " ~ marts | length ~ " mart(s) to green in one transaction: " ~ marts | join(", "), info=True) %}
    {% endif %}
{% endmacro %}


{% macro snowflake__promote_blue_to_green(release_id, marts) %}
    {#
        Snowflake commits each DDL statement on its own, so marts swap one by one (each swap
        is atomic); the window of mixed releases that the PostgreSQL version closes remains.
    #}
    {% if execute %}
        {% set green = var('green_schema') %}
        {% set blue = var('blue_schema') %}
        {% set db = target.database %}
        {% do run_query("create schema if not exists " ~ db ~ "." ~ green) %}
        {% do run_query(
            "create table if not exists " ~ db ~ "." ~ green ~ "._release_log "
            ~ "(release_id varchar primary key, promoted_at timestamp_tz default current_timestamp(), marts array)"
        ) %}
        {% set already = run_query(
            "select count(*) from " ~ db ~ "." ~ green ~ "._release_log where release_id = '" ~ release_id ~ "'"
        ).rows[0][0] > 0 %}
        {% if already %}
            {% do log("Release " ~ release_id ~ " was already promoted; nothing to do.", info=True) %}
            {{ return(none) }}
        {% endif %}
        {% for mart in marts %}
            {% set green_exists = run_query(
                "select count(*) from " ~ db ~ ".information_schema.tables where table_schema = upper('"
                ~ green ~ "') and table_name = upper('" ~ mart ~ "')"
            ).rows[0][0] > 0 %}
            {% if green_exists %}
                {% do run_query("alter table " ~ db ~ "." ~ blue ~ "." ~ mart ~ " swap with " ~ db ~ "." ~ green ~ "." ~ mart) %}
            {% else %}
                {% do run_query("create or replace table " ~ db ~ "." ~ green ~ "." ~ mart ~ " clone " ~ db ~ "." ~ blue ~ "." ~ mart) %}
            {% endif %}
        {% endfor %}
        {% do run_query(
            "insert into " ~ db ~ "." ~ green ~ "._release_log (release_id, marts) select '"
            ~ release_id ~ "', array_construct('" ~ marts | join("', '") ~ "')"
        ) %}
        {% do log("Release " ~ release_id ~ ": promoted " ~ marts | join(", ") ~ " to green", info=True) %}
    {% endif %}
{% endmacro %}
