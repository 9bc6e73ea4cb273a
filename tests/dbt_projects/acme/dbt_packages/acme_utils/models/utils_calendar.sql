{{ config(materialized='table') }}
select generate_series('2024-01-01'::date, '2024-01-07'::date, interval '1 day')::date as day
