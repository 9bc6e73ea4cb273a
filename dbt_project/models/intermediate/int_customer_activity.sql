with

events as (

    select * from {{ ref('stg_app__events') }}

),

per_customer as (

    select
        customer_id,
        count(*) as event_count,
        count(distinct event_date) as active_days,
        sum(case when event_type = 'page_view' then 1 else 0 end) as page_views,
        sum(case when event_type = 'add_to_cart' then 1 else 0 end) as add_to_carts,
        sum(case when event_type = 'checkout' then 1 else 0 end) as checkouts,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases,
        min(event_time) as first_event_at,
        max(event_time) as last_event_at

    from events

    group by customer_id

),

final as (

    select * from per_customer

)

select * from final
