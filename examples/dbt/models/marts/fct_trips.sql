-- Every service's trips in one table, with the borough and zone of each end.
with trips as (
    select 'yellow' as service, pickup_at, dropoff_at, pickup_location_id,
           dropoff_location_id, fare_amount, total_amount, source_month
    from {{ ref('stg_yellow_trips') }}
    union all
    select 'green', pickup_at, dropoff_at, pickup_location_id, dropoff_location_id,
           fare_amount, total_amount, source_month
    from {{ ref('stg_green_trips') }}
    union all
    select 'fhv', pickup_at, dropoff_at, pickup_location_id, dropoff_location_id,
           null, null, source_month
    from {{ ref('stg_fhv_trips') }}
    union all
    select 'fhvhv', pickup_at, dropoff_at, pickup_location_id, dropoff_location_id,
           base_passenger_fare, null, source_month
    from {{ ref('stg_fhvhv_trips') }}
)

select
    trips.service,
    trips.pickup_at,
    trips.dropoff_at,
    trips.pickup_location_id,
    pickup_zone.borough as pickup_borough,
    pickup_zone.zone as pickup_zone,
    trips.dropoff_location_id,
    dropoff_zone.borough as dropoff_borough,
    dropoff_zone.zone as dropoff_zone,
    trips.fare_amount,
    trips.total_amount,
    trips.source_month
from trips
left join {{ ref('stg_zones') }} as pickup_zone
    on trips.pickup_location_id = pickup_zone.location_id
left join {{ ref('stg_zones') }} as dropoff_zone
    on trips.dropoff_location_id = dropoff_zone.location_id
