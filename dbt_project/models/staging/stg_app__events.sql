with

source as (

    select * from {{ source('app', 'app_events') }}

),

final as (

    select
        -- ids
        event_id,
        user_id as customer_id,

        -- strings
        event_type,

        -- timestamps
        event_time,
        cast(event_time as date) as event_date

    from source

)

select * from final
