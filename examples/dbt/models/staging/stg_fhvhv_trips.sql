select
    hvfhs_license_num as license_number,
    dispatching_base_num as base_number,
    pickup_datetime as pickup_at,
    dropoff_datetime as dropoff_at,
    pulocationid as pickup_location_id,
    dolocationid as dropoff_location_id,
    trip_miles,
    base_passenger_fare,
    tips,
    source_month
from {{ source('taxi', 'fhvhv_tripdata') }}
