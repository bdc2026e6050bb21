#!/bin/bash
set -e
mkdir -p "$(ctx instance runtime-properties db_path)"
ctx logger info "database started"
