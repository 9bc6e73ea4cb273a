with

source as (

    select * from {{ source('shop', 'inventory_levels') }}

),

final as (

    select
        -- ids
        product_id,
        warehouse,

        -- numerics
        quantity as quantity_on_hand,

        -- timestamps
        updated_at

    from source

)

select * from final
