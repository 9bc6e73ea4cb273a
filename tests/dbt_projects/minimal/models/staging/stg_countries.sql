select country_code, lower(country_name) as country_name from {{ ref('countries') }}
