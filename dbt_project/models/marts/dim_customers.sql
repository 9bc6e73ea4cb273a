with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('int_orders_enriched') }}

),

activity as (

    select * from {{ ref('int_customer_activity') }}

),

order_totals as (

    select
        customer_id,
        count(*) as order_count,
        sum(revenue) as lifetime_revenue,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at

    from orders

    group by customer_id

),

joined as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.email,
        customers.country_code,
        coalesce(order_totals.order_count, 0) as order_count,
        coalesce(order_totals.lifetime_revenue, {{ round_money('0') }}) as lifetime_revenue,
        order_totals.first_ordered_at,
        order_totals.last_ordered_at,
        coalesce(activity.event_count, 0) as event_count,
        activity.last_event_at,
        {{ release_id() }} as release_id

    from customers

    left join order_totals
        on customers.customer_id = order_totals.customer_id

    left join activity
        on customers.customer_id = activity.customer_id

),

final as (

    select * from joined

)

select * from final
