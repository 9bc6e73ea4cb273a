select count(*) as countries from {{ ref('stg_countries') }}
