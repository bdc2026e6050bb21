#!/usr/bin/env bash
# The whole CLI command on the shapes of benches/shapes.rs: wall time and peak RSS of
# `deploy`, `scale +100` / `-100` (fan-out) and `undeploy`, each blueprint alone in its
# directory, each on a fresh state file (the chains' deploy also into a store made before).
# Usage: bash benches/shapes.sh [runs per figure, 3]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release --quiet --bin windlass --example gen_blueprint
bin=$PWD/target/release/windlass
gen=$PWD/target/release/examples/gen_blueprint
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Prints "median wall s, max peak RSS MB" of `runs` runs of a command; $1 prepares each run.
measure() {
    local prepare=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        eval "$prepare"
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null
        read -r t m < "$work/t"
        times+=("$t"); (( m > rss )) && rss=$m
    done
    printf '%s s, %d MB\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" $(( rss / 1024 ))
}
shape() {
    local name=$1; shift
    mkdir -p "$work/$name"
    "$gen" "$@" > "$work/$name/blueprint.yaml"
}
shape fan250 --fan-out 250
shape fan500 --fan-out 500
shape fan1000 --fan-out 1000
shape chain100 --chain 100 5
shape chain10 --chain 10 500
shape chain1000 --chain 1000 5
db=$work/state.db
fresh="rm -f $db $db-wal $db-shm"
deployed="$fresh; $bin -q --state $db deploy \$bp -d d"
# The store already made (by `list`), as it is for every command but a user's first.
existing="$fresh; $bin -q --state $db list"
for name in fan250 fan500 fan1000 chain100 chain10 chain1000; do
    bp=$work/$name/blueprint.yaml
    echo "$name deploy:   $(measure "$fresh" "$bin" -q --state "$db" deploy "$bp" -d d)"
    echo "$name undeploy: $(measure "$deployed" "$bin" -q --state "$db" undeploy d)"
done
for name in chain100 chain1000; do
    bp=$work/$name/blueprint.yaml
    echo "$name deploy into an existing store: $(measure "$existing" "$bin" -q --state "$db" deploy "$bp" -d d)"
done
bp=$work/fan1000/blueprint.yaml
for target in app0 host1; do
    echo "fan1000 scale $target +100: $(measure "$deployed" "$bin" -q --state "$db" scale d "$target" +100)"
    echo "fan1000 scale $target -100: $(measure "$deployed" "$bin" -q --state "$db" scale d "$target" -100)"
done
