{{ config(pre_hook="{{ pause_seconds(var('acme_pause_seconds', 0)) }}") }}
select c.customer_id, count(e.event_id) as events
from {{ ref('stg_customers') }} c left join {{ ref('stg_events') }} e using (customer_id)
group by c.customer_id
