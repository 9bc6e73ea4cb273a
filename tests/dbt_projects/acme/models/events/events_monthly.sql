{{ config(incremental_strategy='microbatch', event_time='event_time', batch_size='month',
          begin='2024-01-15', unique_key='event_id', concurrent_batches=false) }}
select event_id, customer_id, event_time from {{ ref('events_seed') }}
