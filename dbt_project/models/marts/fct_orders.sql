with

orders as (

    select * from {{ ref('int_orders_enriched') }}

),

final as (

    select
        order_id,
        customer_id,
        product_id,
        country_code,
        product_category,
        order_status,
        is_returned,
        quantity,
        unit_price,
        gross_amount,
        revenue,
        ordered_at,
        order_date,
        {{ release_id() }} as release_id

    from orders

)

select * from final
