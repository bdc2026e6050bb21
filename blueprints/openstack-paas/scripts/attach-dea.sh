#!/bin/bash
# A DEA node joins the cluster through the core's LAN address (seed 001: `kato attach -e dea`).
set -euo pipefail
core_lan_ip="$1"
kato node attach -e dea "$core_lan_ip"
echo "DEA attached to $core_lan_ip"
