{#
    Microbatch model: dbt filters the source (whose event_time is configured) to one day per
    batch; no filter here. `begin` is the first day of generated data
    (example_extras.raw_data.EVENTS_START); Dagster's daily partitions are derived from it and
    from batch_size.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_time',
        batch_size='day',
        begin='2024-01-01',
        unique_key='event_id',
        concurrent_batches=false,
    )
}}

with

events as (

    select * from {{ source('app', 'app_events') }}

),

final as (

    select
        event_id,
        event_time,
        cast(event_time as date) as event_date,
        user_id,
        event_type,
        {{ dbt.current_timestamp() }} as dbt_loaded_at

    from events

)

select * from final
