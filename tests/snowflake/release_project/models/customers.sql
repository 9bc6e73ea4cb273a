select
    '{{ var("release_id") }}' as release_id,
    current_timestamp() as built_at
