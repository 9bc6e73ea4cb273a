{{ config(materialized='ephemeral') }}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

priced as (

    select
        orders.order_id,
        orders.customer_id,
        orders.product_id,
        orders.order_status,
        orders.is_returned,
        orders.quantity,
        products.unit_price,
        {{ round_money('orders.quantity * products.unit_price') }} as gross_amount,
        {{ line_revenue('orders.quantity', 'products.unit_price', 'orders.order_status') }} as revenue,
        orders.ordered_at

    from orders

    inner join products
        on orders.product_id = products.product_id

),

final as (

    select * from priced

)

select * from final
