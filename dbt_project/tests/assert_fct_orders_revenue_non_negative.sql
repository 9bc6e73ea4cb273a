-- Returns the orders (and fails) whose revenue is negative: bad source data, e.g. a negative
-- quantity. Nothing upstream tests quantities, so every model builds and this mart test is the
-- gate that stops the release (the failing-release scenario of tests/test_release.py).
with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        order_id,
        quantity,
        revenue

    from orders

    where revenue < 0

)

select * from final
