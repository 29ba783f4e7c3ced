-- Unquoted names: DuckDB and BigQuery match TLC's spelling (VendorID) case-insensitively,
-- and PostgreSQL's columns are in lower case.
select
    vendorid as vendor_id,
    tpep_pickup_datetime as pickup_at,
    tpep_dropoff_datetime as dropoff_at,
    passenger_count,
    trip_distance,
    ratecodeid as rate_code_id,
    pulocationid as pickup_location_id,
    dolocationid as dropoff_location_id,
    payment_type,
    fare_amount,
    tip_amount,
    total_amount,
    source_month
from {{ source('taxi', 'yellow_tripdata') }}
