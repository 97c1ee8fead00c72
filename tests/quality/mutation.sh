#!/usr/bin/env bash
# Mutation testing of the pure core (`make mutation`): mutmut 2 mutates each module in a
# copy of the tracked tree (never the working copy) and runs that module's unit tests
# against every mutant. Prints killed/total per module and the overall score; the list
# of survivors is kept in mutation-survivors.txt for review.
#
#   tests/quality/mutation.sh [module ...]     (default: the five modules below)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$root/.venv/bin}
modules=("${@:-channels routing retry webhooks sse}")
read -r -a modules <<<"${modules[*]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar -cf -) | tar -xf - -C "$work"
cd "$work"
export PYTHONPATH=$work
# a mutant of the same size written within the same second as the original would be
# shadowed by the original's cached bytecode (a false survivor): write no bytecode
export PYTHONDONTWRITEBYTECODE=1

killed_all=0
total_all=0
: >"$root/mutation-survivors.txt"
for m in "${modules[@]}"; do
    tests=$(ls tests/unit/test_"$m"*.py | tr '\n' ' ')
    rm -f .mutmut-cache
    # mutmut 2 takes only exit status 1 for failed tests: a mutant that breaks the
    # module's import (pytest's 2, a collection error) would pass for a survivor
    "$bin/mutmut" run --paths-to-mutate "notify/$m.py" --no-progress --simple-output \
        --runner "bash -c '$bin/python -m pytest -x -q -p no:cacheprovider -p no:randomly $tests || exit 1'" \
        >/dev/null 2>&1 || true  # mutmut exits non-zero when mutants survive
    count() { "$bin/mutmut" result-ids "$1" | wc -w; }
    killed=$(count killed)
    survived=$(count survived)
    timeout=$(count timeout)
    suspicious=$(count suspicious)
    # a mutant that hangs the tests is caught by them (timeout counts as killed), and
    # so is a "suspicious" one: mutmut's name for a mutant the tests failed on, slowly
    caught=$((killed + timeout + suspicious))
    total=$((caught + survived))
    printf '%-10s %4d / %4d killed\n' "$m" "$caught" "$total"
    for id in $("$bin/mutmut" result-ids survived); do
        { echo "--- notify/$m.py mutant $id"; "$bin/mutmut" show "$id"; } >>"$root/mutation-survivors.txt"
    done
    killed_all=$((killed_all + caught))
    total_all=$((total_all + total))
done
# The score recorded in the README (tests/quality/MUTATION.md) must not fall: a run of
# all five modules below the floor fails (MUTATION_FLOOR to change it, only upwards).
floor=${MUTATION_FLOOR:-95.0}
awk -v k="$killed_all" -v t="$total_all" -v floor="$floor" -v all="$(( $# == 0 ))" '
    BEGIN {
        score = t ? 100 * k / t : 0
        printf "mutation score: %d / %d = %.1f %% (floor %.1f %%)\n", k, t, score, floor
        if (all && score < floor) { print "the mutation score fell below its floor"; exit 1 }
    }'
