with

source as (

    select * from {{ source('shop', 'customers') }}

),

final as (

    select
        -- ids
        customer_id,

        -- strings
        name as customer_name,
        lower(email) as email,
        country as country_code,

        -- timestamps
        updated_at

    from source

)

select * from final
