select event_id, customer_id, event_time from {{ ref('events_seed') }}
