{{ config(incremental_strategy='delete+insert', unique_key='event_id') }}
select event_id, customer_id, event_time from {{ ref('events_seed') }}
{% if is_incremental() %}
where event_time >= '{{ var("window_start") }}' and event_time < '{{ var("window_end") }}'
{% endif %}
