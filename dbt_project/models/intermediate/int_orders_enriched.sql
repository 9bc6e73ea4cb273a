{#
    The pre-hooks sleep var('slow_model_seconds') seconds and hold var('memory_hog_mb') MB in dbt's
    process (both 0 by default), so tests can stretch a release, or run dbt out of memory, at a
    known point between staging and the marts.
#}
{{ config(pre_hook=[
    "{{ sleep_seconds(var('slow_model_seconds')) }}",
    "{{ memory_hog(var('memory_hog_mb')) }}",
]) }}

with

order_lines as (

    select * from {{ ref('int_order_lines_priced') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

enriched as (

    select
        order_lines.order_id,
        order_lines.customer_id,
        order_lines.product_id,
        customers.country_code,
        products.category as product_category,
        order_lines.order_status,
        order_lines.is_returned,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.gross_amount,
        order_lines.revenue,
        order_lines.ordered_at,
        cast(order_lines.ordered_at as date) as order_date

    from order_lines

    left join customers
        on order_lines.customer_id = customers.customer_id

    left join products
        on order_lines.product_id = products.product_id

),

final as (

    select * from enriched

)

select * from final
