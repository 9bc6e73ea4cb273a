{#
    Regular incremental model: on incremental runs it rebuilds only the rows whose event_time lies
    in [var('start_date'), var('end_date')), which Dagster sets to the partition's window. The
    pre-hook sleeps var('slow_model_seconds') (0 by default), so tests can evict a backfill's run
    while it builds.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='fail',
        pre_hook="{{ sleep_seconds(var('slow_model_seconds')) }}",
    )
}}

with

events as (

    select * from {{ source('app', 'app_events') }}
    {% if is_incremental() %}
    where event_time >= '{{ var("start_date") }}' and event_time < '{{ var("end_date") }}'
    {% endif %}

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
