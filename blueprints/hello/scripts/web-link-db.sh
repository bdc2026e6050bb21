#!/bin/bash
set -e
ctx source instance runtime-properties db_path "$(ctx target instance runtime-properties db_path)"
ctx logger info "linked to database ${db_name:-default}"
