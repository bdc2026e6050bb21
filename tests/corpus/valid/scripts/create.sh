#!/bin/bash
ctx logger info "creating $(ctx node id)"
ctx instance runtime-properties created true
