#!/bin/bash
# Runs once, after the influxdb:2 image's first setup (DOCKER_INFLUXDB_INIT_MODE=setup),
# with the influx CLI already configured for the new org and admin token.
#
# gridcall's boards query in InfluxQL. InfluxDB 2 answers InfluxQL on /query only for a
# database/retention policy mapped to a bucket (DBRP): map database "gridcall", retention
# policy "autogen" (the default) to the bucket the hub writes to.
set -euo pipefail

bucket="${DOCKER_INFLUXDB_INIT_BUCKET}"
org="${DOCKER_INFLUXDB_INIT_ORG}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)}"

if influx v1 dbrp list --org "$org" --db "$bucket" --hide-headers | grep -q .; then
  echo "init-dbrp: database $bucket is already mapped"
else
  influx v1 dbrp create --org "$org" --db "$bucket" --rp autogen --default \
    --bucket-id "$bucket_id"
  echo "init-dbrp: database $bucket / autogen -> bucket $bucket ($bucket_id)"
fi
