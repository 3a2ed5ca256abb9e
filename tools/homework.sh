#!/bin/sh
# homework.sh — hand out, grade and self-test the homework of book/homework/.
#
# An assignment is a page book/homework/hwN.md. Two kinds of lines in it are
# read by this script (anywhere in the page, usually in one fenced block):
#
#   functions: NAME NAME ...              the functions the student writes
#   test: SUITE TEST[:ITER] POINTS HINT   one graded Check test (one iteration
#                                         of a loop test with :ITER), its
#                                         points, and the hint shown on failure
#
# Commands (the Makefile's homework and grade targets call them):
#
#   homework.sh copy N DIR           write a student copy of the project into
#                                    DIR: the sources with the functions'
#                                    bodies replaced by stubs (tools/stub.c),
#                                    the tests, the Makefile and the page; no
#                                    book chapters, no git history
#   homework.sh grade N              grade this tree (build/f64/run_tests)
#   homework.sh grade N SUBMISSION   grade a submission: only the files that
#                                    define the assignment's functions are
#                                    taken from SUBMISSION (a student copy),
#                                    into a clean copy of this tree, so edited
#                                    tests are ignored
#   homework.sh selftest [N...]      the grader's own test (make test): the
#                                    reference scores full marks, the stubbed
#                                    copy scores 0 on every graded test, and
#                                    every mutation of tools/homework_mutations.txt
#                                    loses points
#
# Grading runs the double-precision test runner once per suite with
# CK_RUN_SUITE, CK_EXCLUDE_TAGS=slow and CK_VERBOSITY=verbose, and reads
# Check's per-test lines. Exit status 0 only at full marks (selftest: 0 only
# when every check holds).

set -u
B=${B:-build}
STUB=${STUB:-$B/stub}

die() { echo "homework: $*" >&2; exit 2; }

page_of() {
    p=book/homework/hw$1.md
    [ -f "$p" ] || die "no assignment $1 (no $p)"
    echo "$p"
}
functions_of() { sed -n 's/^functions:[[:space:]]*//p' "$1"; }
suites_of() { awk '$1 == "test:" { print $2 }' "$1" | sort -u; }

# The library files that define the assignment's functions (relative paths).
files_of() {
    # shellcheck disable=SC2046
    "$STUB" --dry $(ls src/*.c) -- $(functions_of "$1") | awk '{ print $2 }' | sort -u
}

# grade_table PAGE RUNNER: run the graded tests, print the table; exit status
# 0 at full marks. The last line is "total: GOT/MAX".
grade_table() {
    page=$1 runner=$2
    log=$(mktemp) err=$(mktemp)
    for s in $(suites_of "$page"); do
        CK_RUN_SUITE=$s CK_EXCLUDE_TAGS=slow CK_VERBOSITY=verbose CK_FORK=yes \
            "$runner" >>"$log" 2>>"$err"
    done
    title=$(sed -n 's/^# //p' "$page" | head -n 1)
    awk -v title="$title" '
        FNR == NR {           # Check verbose lines: file:line:R:tcase:test:iter: msg
            n = split($0, f, ":")
            if (n >= 6 && (f[3] == "P" || f[3] == "F" || f[3] == "E")) {
                ok = f[3] == "P"
                key = f[5]
                seen[key] = 1; seen[key ":" f[6]] = 1
                if (!(key in pass)) pass[key] = 1
                if (!ok) pass[key] = 0
                pass[key ":" f[6]] = ok
            }
            next
        }
        $1 == "test:" {
            t = $3; pts = $4; hint = ""
            for (i = 5; i <= NF; i++) hint = hint (i > 5 ? " " : "") $i
            max += pts
            res = (t in seen) ? (pass[t] ? "pass" : "FAIL") : "FAIL"
            if (res == "pass") got += pts
            row[++rows] = sprintf("%-40s %3d/%-3d  %s", $2 "/" t, res == "pass" ? pts : 0, pts, res)
            if (res == "FAIL") row[rows] = row[rows] "  " ((t in seen) ? "" : "(did not run) ") hint
        }
        END {
            print title
            printf "%-40s %7s  %s\n", "test", "points", "result"
            for (i = 1; i <= rows; i++) print row[i]
            if (max == 0) { print "no graded tests in the page"; exit 1 }
            printf "total: %d/%d%s\n", got, max, got == max ? "  (full marks)" : ""
            exit got == max ? 0 : 1
        }' "$log" "$page"
    rc=$?
    todo=$(grep '^TODO:' "$err" | sort -u)
    [ -n "$todo" ] && printf 'still stubbed:\n%s\n' "$todo" | sed 's/^TODO/  TODO/' >&2
    rm -f "$log" "$err"
    return $rc
}

# scratch_tree DIR: a copy of this tree's sources with its double build, so
# that a make in DIR recompiles only the files changed after the copy.
scratch_tree() {
    rm -rf "$1" && mkdir -p "$1/$B" "$1/book" || die "cannot create $1"
    cp -Rp Makefile src tests tools "$1/" && cp -Rp book/homework "$1/book/" \
        && cp -Rp "$B/f64" "$B/suites.h" "$1/$B/" || die "cannot copy into $1"
}

# build_runner DIR: (re)build DIR's double runner quietly; 0 on success. The
# changed file is compiled at -O0 (HW_OPT to change): a variant is compiled
# once and tested for a second, so compile time is what counts.
build_runner() {
    (cd "$1" && make --no-print-directory -s OPT="${HW_OPT:--O0}" "$B/f64/run_tests") \
        >"$1/build.log" 2>&1
}

cmd_copy() {
    n=$1 dir=$2
    page=$(page_of "$n") || exit 2
    [ -e "$dir" ] && die "$dir exists; remove it first (it may hold a student's work)"
    mkdir -p "$dir/book/homework" || die "cannot create $dir"
    cp -R Makefile LICENSE src tests "$dir/" || die "cannot copy into $dir"
    mkdir -p "$dir/tools"
    cp tools/stub.c tools/bookcheck.c tools/bookcheck_test.sh tools/homework.sh "$dir/tools/"
    cp "$page" "$dir/book/homework/"
    echo "$n" >"$dir/.homework"
    # shellcheck disable=SC2046
    (cd "$dir" && "$OLDPWD/$STUB" --tag "hw$n" $(ls src/*.c) -- $(functions_of "$page")) \
        >/dev/null || die "stubbing failed"
    echo "homework $n written to $dir: $(functions_of "$page" | wc -w) functions to write"
    echo "  read  $dir/$page"
    echo "  then  cd $dir && make grade"
}

cmd_grade() {
    n=$1 sub=${2:-}
    page=$(page_of "$n") || exit 2
    if [ -z "$sub" ]; then
        make --no-print-directory -s "$B/f64/run_tests" >/dev/null || die "the build failed (run make $B/f64/run_tests)"
        grade_table "$page" "$B/f64/run_tests"
        return $?
    fi
    [ -d "$sub/src" ] || die "$sub has no src/ (give the student's copy of the project)"
    make --no-print-directory -s "$B/f64/run_tests" "$STUB" >/dev/null || die "the reference build failed"
    tree=$B/grade/hw$n-$(basename "$sub")
    scratch_tree "$tree"
    for f in $(files_of "$page"); do
        [ -f "$sub/$f" ] || die "$sub/$f is missing"
        cp "$sub/$f" "$tree/$f"
        echo "taking $f from $sub"
    done
    if ! build_runner "$tree"; then
        cat "$tree/build.log"
        echo "total: 0 (the submission does not compile)"
        return 1
    fi
    (cd "$tree" && grade_table "$page" "$B/f64/run_tests")
}

# One self-test variant: grade the tree, compare with what we expect.
#   expect full | zero | less
check_variant() {
    what=$1 expect=$2 out=$3
    tot=$(sed -n 's/^total: \([0-9]*\)\/\([0-9]*\).*/\1 \2/p' "$out")
    got=${tot% *} max=${tot#* }
    passes=$(grep -c ' pass$' "$out")
    case $expect in
    full) [ -n "$tot" ] && [ "$got" = "$max" ] ;;
    zero) [ -n "$tot" ] && [ "$passes" = 0 ] ;;
    less) [ -n "$tot" ] && [ "$got" != "$max" ] ;;
    esac
    ok=$?
    if [ $ok = 0 ]; then
        echo "  ok    $what: ${got:-?}/${max:-?}"
    else
        echo "  WRONG $what: ${got:-?}/${max:-?}, expected $expect"
        sed 's/^/        /' "$out"
        bad=$((bad + 1))
    fi
}

cmd_selftest() {
    make --no-print-directory -s "$B/f64/run_tests" "$STUB" >/dev/null || die "build failed"
    [ $# -gt 0 ] || set -- $(ls book/homework/hw*.md | sed 's/.*hw\([0-9]*\)\.md/\1/' | sort -n)
    if [ $# -gt 1 ] && [ "${HW_JOBS:-2}" -gt 1 ]; then
        # two cores: odd and even assignments side by side, one log each
        mkdir -p "$B/hwtest"
        odd="" even=""
        for n in "$@"; do
            if [ $((n % 2)) = 1 ]; then odd="$odd $n"; else even="$even $n"; fi
        done
        HW_JOBS=1 sh "$0" selftest $odd >"$B/hwtest/odd.log" 2>&1 &
        pid=$!
        HW_JOBS=1 sh "$0" selftest $even >"$B/hwtest/even.log" 2>&1
        rc_even=$?
        wait $pid
        rc_odd=$?
        grep -v '^homework self-test:' "$B/hwtest/odd.log"
        grep -v '^homework self-test:' "$B/hwtest/even.log"
        cat "$B/hwtest/odd.log" "$B/hwtest/even.log" | awk '
            /^homework self-test: .* mutations caught/ { a += $3; m += $5; next }
            /^homework self-test: .* problems/ { p += $3 }
            END { if (p) { print "homework self-test: " p " problems"; exit 1 }
                  print "homework self-test: " a " assignments, " m " mutations caught, reference full marks, stubs 0" }'
        return $?
    fi
    bad=0 nmut=0
    for n in "$@"; do
        page=$(page_of "$n") || exit 2
        tree=$B/hwtest/hw$n
        out=$tree.out
        mkdir -p "$B/hwtest"
        echo "homework $n: $(sed -n 's/^# //p' "$page" | head -n 1)"
        # (a) the reference
        grade_table "$page" "$B/f64/run_tests" >"$out" 2>/dev/null
        check_variant "reference" full "$out"
        # (b) the stubbed copy
        scratch_tree "$tree"
        # shellcheck disable=SC2046
        (cd "$tree" && "$OLDPWD/$STUB" --tag "hw$n" $(ls src/*.c) -- $(functions_of "$page")) >/dev/null \
            || { echo "  WRONG stub failed"; bad=$((bad + 1)); continue; }
        if build_runner "$tree"; then
            (cd "$tree" && grade_table "$page" "$B/f64/run_tests") >"$out" 2>/dev/null
            check_variant "stubs" zero "$out"
        else
            echo "  WRONG the stubbed copy does not compile:"; sed 's/^/        /' "$tree/build.log"
            bad=$((bad + 1))
        fi
        cp -p src/*.c "$tree/src/"    # back to the reference, then touch what was stubbed
        touch $(for f in $(files_of "$page"); do echo "$tree/$f"; done)
        # (c) mutations: every graded function has at least one
        for fn in $(functions_of "$page"); do
            grep -q "^$n $fn " tools/homework_mutations.txt \
                || { echo "  WRONG $fn has no mutation in tools/homework_mutations.txt"; bad=$((bad + 1)); }
        done
        dirty=""
        grep "^$n " tools/homework_mutations.txt | while read -r _ fn file expr; do
            [ -n "$dirty" ] && [ "$dirty" != "$file" ] && cp "$dirty" "$tree/$dirty"
            sed -e "$expr" "$file" >"$tree/$file"
            dirty=$file
            if cmp -s "$file" "$tree/$file"; then
                echo "  WRONG mutation of $fn did not apply: $expr"; echo x >>"$tree.bad"; continue
            fi
            if ! build_runner "$tree"; then
                echo "  ok    mutant $fn [$expr]: does not compile (counts as caught)"; continue
            fi
            (cd "$tree" && grade_table "$page" "$B/f64/run_tests") >"$out" 2>/dev/null
            bad=0
            check_variant "mutant $fn [$expr]" less "$out"
            [ $bad = 0 ] || echo x >>"$tree.bad"
        done
        if [ -s "$tree.bad" ]; then bad=$((bad + $(wc -l <"$tree.bad"))); rm -f "$tree.bad"; fi
        nmut=$((nmut + $(grep -c "^$n " tools/homework_mutations.txt)))
    done
    if [ $bad = 0 ]; then
        echo "homework self-test: $# assignments, $nmut mutations caught, reference full marks, stubs 0"
    else
        echo "homework self-test: $bad problems"
        return 1
    fi
}

[ $# -ge 1 ] || die "usage: homework.sh copy N DIR | grade N [SUBMISSION] | selftest [N...]"
cmd=$1; shift
case $cmd in
copy) [ $# = 2 ] || die "usage: homework.sh copy N DIR"; cmd_copy "$@" ;;
grade) [ $# -ge 1 ] || die "usage: homework.sh grade N [SUBMISSION]"; cmd_grade "$@" ;;
selftest) cmd_selftest "$@" ;;
*) die "unknown command $cmd" ;;
esac
