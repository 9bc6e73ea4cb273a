{#
    Pause for `seconds` (no-op when 0). int_orders_enriched, fct_app_events, snap_orders and
    snap_inventory_levels call it in a pre-hook with var('slow_model_seconds'), so tests can make a run slow at a known
    point (for example to kill the run worker while dbt is mid-build, or while a snapshot holds its
    pool slot). Dispatched on the adapter.
#}
{% macro sleep_seconds(seconds) -%}
    {{ return(adapter.dispatch('sleep_seconds', 'analytics')(seconds | int)) }}
{%- endmacro %}

{% macro postgres__sleep_seconds(seconds) -%}
    {%- if seconds > 0 -%}
        select pg_sleep({{ seconds }})
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__sleep_seconds(seconds) -%}
    {%- if seconds > 0 -%}
        call system$wait({{ seconds }})
    {%- endif -%}
{%- endmacro %}

{% macro default__sleep_seconds(seconds) -%}
    {{ exceptions.raise_compiler_error(
        "sleep_seconds has no implementation for adapter '" ~ adapter.type()
        ~ "'; add a " ~ adapter.type() ~ "__sleep_seconds macro in macros/sleep_seconds.sql"
    ) }}
{%- endmacro %}
