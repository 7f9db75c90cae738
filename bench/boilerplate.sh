#!/usr/bin/env bash
# How much longer an em program is than the same EventMachine program:
# the first programs an EventMachine user writes (echo server and client,
# chat on a channel, timers, defer, a procedural client), each in
# em/examples/NAME.rs and bench/baselines/first_programs/NAME.rb, doing
# the same thing. Counts lines of code: not blank, not only a comment
# (`//`, `//!` in Rust; `#` in Ruby); the opening comment that says what
# the program is does not count on either side.
#
#   [EM_PROGRAMS=DIR] bench/boilerplate.sh [MAX_RATIO]
#
# Prints one row per program and exits non-zero if any em program is more
# than MAX_RATIO (default 1.3) times its EventMachine twin. EM_PROGRAMS
# (default em/examples) compares another set of em programs, such as the
# same programs written against an older em.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-1.3}
dir=${EM_PROGRAMS:-em/examples}
code_lines() {
    case "$1" in
        *.rs) grep -cvE '^[[:space:]]*(//.*)?$' "$1" ;;
        *.rb) grep -cvE '^[[:space:]]*(#.*)?$' "$1" ;;
    esac
}
status=0
printf '%-18s %5s %5s %6s\n' program em EM ratio
for rb in bench/baselines/first_programs/*.rb; do
    name=$(basename "$rb" .rb)
    rs=$dir/$name.rs
    if [ ! -f "$rs" ]; then
        echo "$name: $rs is missing" >&2
        status=1
        continue
    fi
    e=$(code_lines "$rs")
    m=$(code_lines "$rb")
    ratio=$(awk -v e="$e" -v m="$m" 'BEGIN { printf "%.2f", e / m }')
    verdict=$(awk -v r="$ratio" -v max="$max" 'BEGIN { print (r <= max) ? "" : "  over " max }')
    [ -z "$verdict" ] || status=1
    printf '%-18s %5d %5d %6s%s\n' "$name" "$e" "$m" "$ratio" "$verdict"
done
exit $status
