{#
    "Recent" is the last 7 days before the latest order in the data, not before today, so the
    mart is a pure function of the raw data (generated data lies in the past).
#}
{% set demand_window_days = 7 %}

with

products as (

    select * from {{ ref('stg_shop__products') }}

),

inventory_levels as (

    select * from {{ ref('stg_shop__inventory_levels') }}

),

orders as (

    select * from {{ ref('int_orders_enriched') }}

),

stock as (

    select
        product_id,
        count(*) as warehouse_count,
        sum(quantity_on_hand) as quantity_on_hand

    from inventory_levels

    group by product_id

),

demand_window as (

    select
        {{ dbt.dateadd('day', -demand_window_days, 'max(ordered_at)') }} as window_start,
        max(ordered_at) as window_end

    from orders

),

recent_demand as (

    select
        orders.product_id,
        sum(orders.quantity) as units_ordered_recently

    from orders

    cross join demand_window

    where
        not orders.is_returned
        and orders.ordered_at > demand_window.window_start
        and orders.ordered_at <= demand_window.window_end

    group by orders.product_id

),

joined as (

    select
        products.product_id,
        products.product_name,
        coalesce(stock.warehouse_count, 0) as warehouse_count,
        coalesce(stock.quantity_on_hand, 0) as quantity_on_hand,
        coalesce(recent_demand.units_ordered_recently, 0) as units_ordered_recently

    from products

    left join stock
        on products.product_id = stock.product_id

    left join recent_demand
        on products.product_id = recent_demand.product_id

),

classified as (

    select
        *,
        case
            when units_ordered_recently = 0 then null
            else round(quantity_on_hand * {{ demand_window_days }}.0 / units_ordered_recently, 1)
        end as days_of_cover,
        case
            when quantity_on_hand = 0 then 'out_of_stock'
            when units_ordered_recently = 0 then 'no_recent_demand'
            when quantity_on_hand < units_ordered_recently then 'low'
            else 'healthy'
        end as stock_status,
        {{ release_id() }} as release_id

    from joined

),

final as (

    select * from classified

)

select * from final
