with

source as (

    select * from {{ source('shop', 'products') }}

),

final as (

    select
        -- ids
        product_id,

        -- strings
        name as product_name,
        category,

        -- numerics
        price as unit_price,

        -- timestamps
        updated_at

    from source

)

select * from final
