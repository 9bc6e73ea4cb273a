{#
    `release_id`, refused unless it is a Dagster run id (a lowercase UUID): the release's root run
    id, which the platform passes (dagster_code/release_vars.py checks it first). Called before
    any SQL by the macros that take a release id, so no value of it can reach a statement.
#}
{% macro bluegreen_release_id(release_id) %}
    {% set run_id = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' %}
    {% if release_id is none or not modules.re.fullmatch(run_id, release_id | string) %}
        {{ exceptions.raise_compiler_error(
            "release_id must be a Dagster run id, a lowercase UUID such as "
            ~ "0b8f1c2e-5d4a-4f7e-9c3b-2a1d0e9f8c7b; got " ~ tojson(release_id) ~ ". Nothing was done: "
            ~ "pass the release's root run id (--args '{release_id: ...}', var release_id)."
        ) }}
    {% endif %}
    {{ return(release_id | string) }}
{% endmacro %}
