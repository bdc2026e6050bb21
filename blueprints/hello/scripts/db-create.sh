#!/bin/bash
set -e
ctx logger info "creating database for $(ctx deployment id)"
ctx instance runtime-properties db_path "/tmp/$(ctx deployment id)-db"
