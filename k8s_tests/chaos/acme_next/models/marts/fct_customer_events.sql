{{ config(pre_hook="{{ pause_seconds(var('acme_pause_seconds', 0)) }}") }}
-- acme's next version: reads stg_events' new column, so it fails on a stg_events built by the old code.
select c.customer_id, count(e.event_id) as events, coalesce(sum(e.weight), 0) as weight
from {{ ref('stg_customers') }} c left join {{ ref('stg_events') }} e using (customer_id)
group by c.customer_id
