#!/bin/bash
set -e
ctx instance runtime-properties banner "$banner"
