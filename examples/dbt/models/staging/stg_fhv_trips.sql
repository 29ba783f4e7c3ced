select
    dispatching_base_num as base_number,
    pickup_datetime as pickup_at,
    dropoff_datetime as dropoff_at,
    pulocationid as pickup_location_id,
    dolocationid as dropoff_location_id,
    sr_flag as shared_ride_flag,
    affiliated_base_number,
    source_month
from {{ source('taxi', 'fhv_tripdata') }}
