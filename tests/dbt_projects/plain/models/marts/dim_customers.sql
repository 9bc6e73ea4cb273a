with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_orders as (

    select
        customer_id,
        count(*) as number_of_orders,
        count(*) filter (where not is_returned) as number_of_kept_orders

    from orders
    group by 1

),

final as (

    select
        customers.customer_id,
        customers.first_name,
        customers.last_name,
        coalesce(customer_orders.number_of_orders, 0) as number_of_orders,
        coalesce(customer_orders.number_of_kept_orders, 0) as number_of_kept_orders

    from customers
    left join customer_orders using (customer_id)

)

select * from final
