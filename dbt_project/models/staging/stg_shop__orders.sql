with

source as (

    select * from {{ source('shop', 'orders') }}

),

final as (

    select
        -- ids
        order_id,
        customer_id,
        product_id,

        -- strings
        status as order_status,

        -- numerics
        quantity,

        -- booleans
        status = 'returned' as is_returned,

        -- timestamps
        ordered_at,
        updated_at

    from source

)

select * from final
