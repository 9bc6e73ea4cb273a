select country_code, count(*) as customers from {{ ref('stg_customers') }} group by country_code
