{#
    Money as numeric(12, 2), rounded half away from zero: one definition, so every mart rounds
    the same way and the cross-mart revenue totals match to the cent.
#}
{% macro round_money(expression) -%}
    cast(round({{ expression }}, 2) as numeric(12, 2))
{%- endmacro %}
