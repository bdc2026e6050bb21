#!/bin/bash
# The Stackato core node (seed 001): named after its public address, mDNS off, core roles on.
set -euo pipefail
public_ip="$1"
kato node rename "${public_ip}.xip.io"
kato config set cluster mdns false || kato disable mdns
kato node setup core "api.${public_ip}.xip.io"
kato role add stager
echo "core ready at api.${public_ip}.xip.io"
