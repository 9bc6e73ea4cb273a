{#
    Raises unless blue was prepared for `release_id` (`prepared_for`, from <blue>._release_prepared,
    none when blue has no marker) from the release green still holds (`prepared_from`, compared
    with `green_holds`, green's latest _release_log row). Otherwise the promotion would publish
    blue's tables over a newer green, or publish the previous green (what a promotion leaves in
    blue): consumers rolled back.
#}
{% macro bluegreen_refuse_stale_blue(release_id, prepared_for, prepared_from, green_holds) %}
    {% set green_now = "Green is unchanged; it holds release " ~ (green_holds or "none yet") ~ ". " %}
    {% set launch = "Launch the release job again: a new run prepares blue from green as it is now, builds and promotes." %}
    {% if prepared_for is none %}
        {{ exceptions.raise_compiler_error(
            "Release " ~ release_id ~ " cannot be promoted: blue was not prepared for any release "
            ~ "(no _release_prepared table in blue; clone_green_to_blue makes it). " ~ green_now ~ launch
        ) }}
    {% elif prepared_for | string != release_id | string %}
        {{ exceptions.raise_compiler_error(
            "Release " ~ release_id ~ " cannot be promoted: blue was last prepared for release " ~ prepared_for
            ~ ", not this one, so it holds another release's tables. " ~ green_now ~ launch
        ) }}
    {% elif prepared_from != green_holds %}
        {{ exceptions.raise_compiler_error(
            "Release " ~ release_id ~ " cannot be promoted: blue was prepared from release "
            ~ (prepared_from or "none (an empty green)") ~ ", but release " ~ (green_holds or "none")
            ~ " was promoted since, and promoting this one would roll it back. " ~ green_now ~ launch
        ) }}
    {% endif %}
{% endmacro %}
