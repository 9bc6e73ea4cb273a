select customer_id, name, country_code from {{ ref('stg_customers') }}
