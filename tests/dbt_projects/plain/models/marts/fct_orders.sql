-- Sleeps before it builds: the window a fault lands in, with the staging models already done.
{{ config(pre_hook="select pg_sleep(40)") }}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

final as (

    select
        order_id,
        customer_id,
        order_date,
        status = 'returned' as is_returned

    from orders

)

select * from final
