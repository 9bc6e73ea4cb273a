-- acme's next version (k8s_tests/chaos/acme_next): events gain a weight, which fct_customer_events sums.
select event_id, customer_id, event_time, 1 as weight from {{ ref('events_seed') }}
