{#
    Revenue of an order line: quantity times unit price, zero when the order was returned.
    The single definition of revenue, shared by every model that reports it.
#}
{% macro line_revenue(quantity, unit_price, status) -%}
    case
        when {{ status }} = 'returned' then {{ round_money('0') }}
        else {{ round_money(quantity ~ ' * ' ~ unit_price) }}
    end
{%- endmacro %}
