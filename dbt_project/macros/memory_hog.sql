{#
    Holds `megabytes` MB in dbt's own process while the hook renders, and renders no SQL (no-op when
    0): int_orders_enriched calls it in a pre-hook with var('memory_hog_mb'), so tests can make dbt
    meet its pod's memory limit at a known point. The string is built, not just sized, so its pages
    are really touched.
#}
{% macro memory_hog(megabytes) -%}
    {%- if megabytes | int > 0 -%}
        {%- set held = "x" * (megabytes | int * 1048576) -%}
        {{- log("memory_hog: holding " ~ (held | length // 1048576) ~ " MB", info=True) -}}
    {%- endif -%}
{%- endmacro %}
