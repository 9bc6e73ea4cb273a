-- Returns a row (and fails) when the marts disagree on total revenue or order count.
with

fct_orders as (

    select
        count(*) as order_count,
        coalesce(sum(revenue), 0) as revenue

    from {{ ref('fct_orders') }}

),

dim_customers as (

    select
        coalesce(sum(order_count), 0) as order_count,
        coalesce(sum(lifetime_revenue), 0) as revenue

    from {{ ref('dim_customers') }}

),

dim_products as (

    select
        coalesce(sum(order_count), 0) as order_count,
        coalesce(sum(revenue), 0) as revenue

    from {{ ref('dim_products') }}

),

final as (

    select
        fct_orders.order_count as fct_orders_count,
        dim_customers.order_count as dim_customers_order_count,
        dim_products.order_count as dim_products_order_count,
        fct_orders.revenue as fct_orders_revenue,
        dim_customers.revenue as dim_customers_revenue,
        dim_products.revenue as dim_products_revenue

    from fct_orders

    cross join dim_customers

    cross join dim_products

    where
        fct_orders.revenue <> dim_customers.revenue
        or fct_orders.revenue <> dim_products.revenue
        or fct_orders.order_count <> dim_customers.order_count
        or fct_orders.order_count <> dim_products.order_count

)

select * from final
