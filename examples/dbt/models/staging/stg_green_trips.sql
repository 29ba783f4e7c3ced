select
    vendorid as vendor_id,
    lpep_pickup_datetime as pickup_at,
    lpep_dropoff_datetime as dropoff_at,
    passenger_count,
    trip_distance,
    ratecodeid as rate_code_id,
    pulocationid as pickup_location_id,
    dolocationid as dropoff_location_id,
    payment_type,
    trip_type,
    fare_amount,
    tip_amount,
    total_amount,
    source_month
from {{ source('taxi', 'green_tripdata') }}
