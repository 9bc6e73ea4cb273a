select customer_id, name, {{ acme_utils.normalized_code('country_code') }} as country_code from {{ ref('customers_seed') }}
