#!/bin/bash
set -e
ctx logger info "serving $(ctx instance runtime-properties banner) on port $(ctx node properties port)"
ctx instance runtime-properties started true
