-- Returns the release ids found (and fails) when the marts were not all built by one release.
with

release_ids as (

    select release_id from {{ ref('fct_orders') }}
    union all
    select release_id from {{ ref('dim_customers') }}
    union all
    select release_id from {{ ref('dim_products') }}
    union all
    select release_id from {{ ref('mart_inventory_health') }}

),

final as (

    select
        release_id,
        count(*) as row_count

    from release_ids

    group by release_id

)

select * from final
where (select count(distinct release_id) from release_ids) > 1
