{#
    Pauses for `seconds` (nothing when 0). fct_customer_events calls it in a pre-hook with
    var('acme_pause_seconds'), which dagster.yml fills from a run tag: the cluster suite stretches
    a release there to evict its run pod mid-build.
#}
{% macro pause_seconds(seconds) -%}
    {%- if seconds | int > 0 -%}
        select pg_sleep({{ seconds | int }})
    {%- endif -%}
{%- endmacro %}
