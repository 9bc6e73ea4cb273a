{#
    Promotes a release: every table in blue replaces its twin in green.

    On PostgreSQL, DDL is transactional, so all tables swap in ONE transaction: a consumer
    sees either every old table or every new one, never a mix (the guide's per-table swap
    leaves a window of mixed releases). The release id is recorded in green._release_log in
    the same transaction; a promotion replayed for the same release (a retry after a crash
    that hit after the commit) finds it and changes nothing. Swapping, not dropping, leaves
    the previous release in blue until the next release clones over it.

    `built_by` ({table: {model, code_version, run_id, image}}) is recorded with the release id:
    what built each promoted table, for a reader of green to check its provenance.

    Fenced: after the replay check, and before anything touches green, a release is refused
    unless clone_green_to_blue prepared blue for it, from the release green still holds
    (bluegreen_refuse_stale_blue). On PostgreSQL the check holds the log's lock, so no other
    promotion slips in between it and the swap.

    Consumers read green while it is promoted. A reader that holds one green table and then
    asks for another that the promotion already holds closes a lock cycle, and PostgreSQL
    breaks it by aborting one of the two: the consumer's query or the release. So the promotion
    takes every table's lock first, all or none, and gives way (releasing what it took) before
    PostgreSQL's deadlock check would fire, then tries again, for at most
    var('blue_green_lock_wait_seconds', 600) seconds. A consumer is never aborted and waits at
    most half of deadlock_timeout at a time, even behind a long query that makes the promotion
    wait.

    Called by the Dagster asset `release/green_promoted`, which runs only after every model
    and every dbt test of the release succeeded.
#}
{% macro promote_blue_to_green(release_id, tables, built_by={}) %}
    {% set release_id = bluegreen_release_id(release_id) %}
    {{ return(adapter.dispatch('promote_blue_to_green', 'dagster_blue_green')(release_id, tables, built_by)) }}
{% endmacro %}


{% macro default__promote_blue_to_green(release_id, tables, built_by) %}
    {{ exceptions.raise_compiler_error(
        "Blue/green releases are not implemented for the '" ~ adapter.type() ~ "' adapter: "
        ~ "add macros " ~ adapter.type() ~ "__clone_green_to_blue and "
        ~ adapter.type() ~ "__promote_blue_to_green to the project."
    ) }}
{% endmacro %}


{% macro postgres__promote_blue_to_green(release_id, tables, built_by) %}
    {% if execute %}
        {% set green = bluegreen_identifier(var('green_schema', 'green')) %}
        {% set blue = bluegreen_identifier(var('blue_schema', 'blue')) %}
        {% set scratch = bluegreen_identifier(var('blue_schema', 'blue') ~ '_swap') %}
        {% set release_log = green ~ '._release_log' %}
        {# One transaction from `begin` to `commit`, across the run_query calls below. #}
        {% set setup %}
            begin;
            create schema if not exists {{ green }};
            create schema if not exists {{ scratch }};
            create table if not exists {{ release_log }} (
                release_id text primary key,
                promoted_at timestamptz not null default now(),
                tables text[] not null
            );
            -- Serializes promotions: a second one waits here, then sees the first's row.
            -- Consumers' reads of the log (ACCESS SHARE) do not conflict with it.
            lock table {{ release_log }} in share row exclusive mode;
        {% endset %}
        {% do run_query(setup) %}
        {#
            A log created before provenance was recorded gains its column. Only then: an ALTER
            TABLE locks the log ACCESS EXCLUSIVE even when the column exists, and a consumer
            reading the promoted tables and then the log would meet the promotion in a lock cycle.
        #}
        {% set has_built_by = run_query(
            "select count(*) from information_schema.columns where table_schema = "
            ~ bluegreen_literal(var('green_schema', 'green')) ~ " and table_name = '_release_log' and column_name = 'built_by'"
        ).rows[0][0] > 0 %}
        {% if not has_built_by %}
            {% do run_query("alter table " ~ release_log ~ " add column if not exists built_by jsonb") %}
        {% endif %}
        {% set already = run_query(
            "select count(*) from " ~ release_log ~ " where release_id = " ~ bluegreen_literal(release_id)
        ).rows[0][0] > 0 %}
        {% if already %}
            {% do run_query("commit") %}
            {% do log("Release " ~ release_id ~ " was already promoted; nothing to do.", info=True) %}
            {{ return(none) }}
        {% endif %}
        {% set marker = blue ~ '._release_prepared' %}
        {% set has_marker = run_query("select to_regclass(" ~ bluegreen_literal(marker) ~ ") is not null").rows[0][0] %}
        {% set prepared = run_query("select release_id, prepared_from from " ~ marker).rows if has_marker else [] %}
        {% do bluegreen_refuse_stale_blue(
            release_id,
            prepared[0][0] if prepared | length > 0 else none,
            prepared[0][1] if prepared | length > 0 else none,
            bluegreen_latest_release(var('green_schema', 'green')),
        ) %}

        {% set built = bluegreen_existing_tables(var('blue_schema', 'blue'), tables) %}
        {% set missing = tables | reject('in', built) | list %}
        {% if missing | length > 0 %}
            {{ exceptions.raise_compiler_error(
                "Release " ~ release_id ~ " cannot be promoted: blue has no table for "
                ~ missing | join(", ") ~ ". Green is unchanged."
            ) }}
        {% endif %}
        {% set published = bluegreen_existing_tables(var('green_schema', 'green'), tables) %}
        {% set locked = [] %}
        {% for table in published %}
            {% do locked.append(green ~ '.' ~ bluegreen_identifier(table)) %}
        {% endfor %}
        {% for table in tables %}
            {% do locked.append(blue ~ '.' ~ bluegreen_identifier(table)) %}
        {% endfor %}
        {% set wait_seconds = var('blue_green_lock_wait_seconds', 600) %}
        {% if wait_seconds is not number or wait_seconds <= 0 %}
            {{ exceptions.raise_compiler_error(
                "var blue_green_lock_wait_seconds must be a positive number of seconds, got '"
                ~ wait_seconds ~ "'. Release " ~ release_id ~ " not promoted; green is unchanged."
            ) }}
        {% endif %}
        {% for name in locked if '$lock_all$' in name %}
            {{ exceptions.raise_compiler_error(
                "Release " ~ release_id ~ " cannot be promoted: table " ~ name ~ " has `$lock_all$` in its name, "
                ~ "which would end the promotion's DO block. Rename the model. Green is unchanged."
            ) }}
        {% endfor %}
        {% set swap %}
            do $lock_all$
            declare
                deadline timestamptz := clock_timestamp() + make_interval(secs => {{ wait_seconds }});
                previous_lock_timeout text := current_setting('lock_timeout');
                attempts int := 0;
                holders text;
            begin
                -- Half of deadlock_timeout: the promotion gives way before a waiting consumer's
                -- deadlock check would abort the consumer.
                perform set_config('lock_timeout', greatest(1, (extract(epoch from
                    current_setting('deadlock_timeout')::interval) * 500)::int)::text, true);
                loop
                    begin
                        lock table {{ locked | join(', ') }} in access exclusive mode;
                        exit;
                    exception when lock_not_available or deadlock_detected then
                        attempts := attempts + 1;
                        if clock_timestamp() > deadline then
                            select string_agg(distinct format('%s (pid %s)', relation::regclass, pid), ', ')
                            into holders
                            from pg_locks
                            where granted and pid <> pg_backend_pid()
                              and relation = any(array[{% for name in locked %}{{ bluegreen_literal(name) }}{% if not loop.last %}, {% endif %}{% endfor %}]::regclass[]);
                            -- Values as arguments, not in the format string: no value changes the statement.
                            raise exception 'Release % cannot be promoted: other sessions held locks on its tables for % s (var blue_green_lock_wait_seconds), %. Green is unchanged.',
                                {{ bluegreen_literal(release_id) }}, {{ wait_seconds }}, coalesce('held now: ' || holders, 'none holds one now');
                        end if;
                        perform pg_sleep(least(0.05 * attempts, 1.0));
                    end;
                end loop;
                perform set_config('lock_timeout', previous_lock_timeout, true);
            end
            $lock_all$;
            {% for table in tables %}
            {% set name = bluegreen_identifier(table) %}
            {% if table in published %}
            alter table {{ green }}.{{ name }} set schema {{ scratch }};
            {% endif %}
            alter table {{ blue }}.{{ name }} set schema {{ green }};
            {% if table in published %}
            alter table {{ scratch }}.{{ name }} set schema {{ blue }};
            {% endif %}
            {% endfor %}
            -- clock_timestamp(), not now() (when the transaction began): a promotion that waited
            -- for the log's lock began before the one it waited for, and the order of promoted_at
            -- must be the order green held the releases (bluegreen_latest_release).
            insert into {{ release_log }} (release_id, promoted_at, tables, built_by)
            values (
                {{ bluegreen_literal(release_id) }},
                clock_timestamp(),
                array[{% for table in tables %}{{ bluegreen_literal(table) }}{% if not loop.last %}, {% endif %}{% endfor %}]::text[],
                {{ bluegreen_literal(tojson(built_by)) }}::jsonb
            );
            commit;
        {% endset %}
        {% do run_query(swap) %}
        {% do log("Release " ~ release_id ~ ": promoted " ~ tables | length ~ " table(s) to green in one transaction: " ~ tables | join(", "), info=True) %}
    {% endif %}
{% endmacro %}


{% macro snowflake__promote_blue_to_green(release_id, tables, built_by) %}
    {#
        Snowflake commits each DDL statement on its own, so no transaction can hold the
        promotion as on PostgreSQL, and swapping table by table (each swap atomic) lets a crash
        leave green mixing two releases. Instead the whole next green is built aside and
        published by ONE atomic statement:
          1. <green>_next := a zero-copy clone of green (its _release_log and any other table);
          2. every release table is cloned from blue into it as TRANSIENT: dbt-snowflake builds
             transient tables, and Snowflake refuses to clone a transient table into a permanent
             one (a model built with `transient: false` is therefore published transient too);
          3. the release is logged in <green>_next._release_log;
          4. `alter schema <green>_next swap with <green>` publishes tables and log at once.
        A crash before 4 leaves green as it was (the replay clones it afresh, replacing the
        partial <green>_next); after 4 the log holds the release and the replay changes nothing.
        Tables in green that are not in the release are carried over as they were at step 1:
        writes to them during a promotion are lost. A schema clone copies the grants on its
        tables but not those on the schema itself: grants on the green schema must be made
        again after a promotion (this macro does not).
    #}
    {% if execute %}
        {% set green_name = var('green_schema', 'green') %}
        {% set blue_name = var('blue_schema', 'blue') %}
        {% set db = bluegreen_identifier(target.database) %}
        {% set green = db ~ "." ~ bluegreen_identifier(green_name) %}
        {% set blue = db ~ "." ~ bluegreen_identifier(blue_name) %}
        {% set next_green = db ~ "." ~ bluegreen_identifier(green_name ~ "_next") %}
        {% do run_query("create schema if not exists " ~ green) %}
        {% do run_query(
            "create table if not exists " ~ green ~ "._release_log "
            ~ "(release_id varchar primary key, promoted_at timestamp_tz default current_timestamp(), tables array)"
        ) %}
        {% do run_query(
            "alter table " ~ green ~ "._release_log add column if not exists built_by variant"
        ) %}
        {% set already = run_query(
            "select count(*) from " ~ green ~ "._release_log where release_id = " ~ bluegreen_literal(release_id)
        ).rows[0][0] > 0 %}
        {% if already %}
            {# Left behind only by a crash right after the swap; holds the previous release. #}
            {% do run_query("drop schema if exists " ~ next_green) %}
            {% do log("Release " ~ release_id ~ " was already promoted; nothing to do.", info=True) %}
            {{ return(none) }}
        {% endif %}
        {#
            Checked before the swap but not atomically with it (Snowflake has no lock to hold
            across DDL): promotions of one project are serialized by the release job's run-tag
            concurrency limit of 1.
        #}
        {% set has_marker = run_query(
            "select count(*) from " ~ db ~ ".information_schema.tables where table_schema = upper("
            ~ bluegreen_literal(blue_name) ~ ") and table_name = '_RELEASE_PREPARED'"
        ).rows[0][0] > 0 %}
        {% set prepared = run_query(
            "select release_id, prepared_from from " ~ blue ~ "._release_prepared"
        ).rows if has_marker else [] %}
        {% do bluegreen_refuse_stale_blue(
            release_id,
            prepared[0][0] if prepared | length > 0 else none,
            prepared[0][1] if prepared | length > 0 else none,
            bluegreen_latest_release(green_name),
        ) %}

        {% set table_literals = [] %}
        {% for table in tables %}
            {% do table_literals.append(bluegreen_literal(table)) %}
        {% endfor %}
        {% set built = run_query(
            "select table_name from " ~ db ~ ".information_schema.tables where table_schema = upper("
            ~ bluegreen_literal(blue_name) ~ ") and table_type = 'BASE TABLE' and table_name in (upper("
            ~ table_literals | join("), upper(") ~ "))"
        ).columns[0].values() | map('upper') | list %}
        {% set missing = [] %}
        {% for table in tables if table | upper not in built %}
            {% do missing.append(table) %}
        {% endfor %}
        {% if missing | length > 0 %}
            {{ exceptions.raise_compiler_error(
                "Release " ~ release_id ~ " cannot be promoted: " ~ blue_name ~ " has no table for "
                ~ missing | join(", ") ~ ". Green is unchanged."
            ) }}
        {% endif %}

        {% do run_query("create or replace schema " ~ next_green ~ " clone " ~ green) %}
        {% for table in tables %}
            {% do run_query(
                "create or replace transient table " ~ next_green ~ "." ~ bluegreen_identifier(table) ~ " clone " ~ blue ~ "." ~ bluegreen_identifier(table)
            ) %}
        {% endfor %}
        {% do run_query(
            "insert into " ~ next_green ~ "._release_log (release_id, promoted_at, tables, built_by) select "
            ~ bluegreen_literal(release_id) ~ ", current_timestamp(), array_construct("
            ~ table_literals | join(", ") ~ "), parse_json(" ~ bluegreen_literal(tojson(built_by)) ~ ")"
        ) %}
        {% do run_query("alter schema " ~ next_green ~ " swap with " ~ green) %}
        {# Holds the previous release now; the next promotion would replace it anyway. #}
        {% do run_query("drop schema if exists " ~ next_green) %}
        {% do log("Release " ~ release_id ~ ": promoted " ~ tables | length ~ " table(s) to green in one schema swap: " ~ tables | join(", "), info=True) %}
    {% endif %}
{% endmacro %}
