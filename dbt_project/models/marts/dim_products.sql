with

products as (

    select * from {{ ref('stg_shop__products') }}

),

orders as (

    select * from {{ ref('int_orders_enriched') }}

),

order_totals as (

    select
        product_id,
        count(*) as order_count,
        sum(case when is_returned then 0 else quantity end) as units_sold,
        sum(revenue) as revenue

    from orders

    group by product_id

),

joined as (

    select
        products.product_id,
        products.product_name,
        products.category,
        products.unit_price,
        coalesce(order_totals.order_count, 0) as order_count,
        coalesce(order_totals.units_sold, 0) as units_sold,
        coalesce(order_totals.revenue, {{ round_money('0') }}) as revenue,
        {{ release_id() }} as release_id

    from products

    left join order_totals
        on products.product_id = order_totals.product_id

),

final as (

    select * from joined

)

select * from final
