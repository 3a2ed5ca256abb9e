#!/bin/sh
# bookcheck_test.sh — self-test for tools/bookcheck.c.
#
# Builds the checker into a temp dir, makes a tiny repository there (src/m.c,
# src/m.h, src/dup.c, book/t.md) and runs it over one chapter per case: each
# case states the exit status it wants and a string the output must contain.
# The chapters are written by hand, so "passes" means the checker resolved the
# anchor to exactly these bytes. Last line: "N passed, M failed".
#
# Usage: tools/bookcheck_test.sh        (CC=clang tools/bookcheck_test.sh)

set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
repo=$tmp/repo
mkdir -p "$repo/src" "$repo/book"

if ! ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$tmp/bookcheck" "$here/bookcheck.c"; then
    echo "bookcheck_test: cannot build bookcheck"
    echo "0 passed, 1 failed"
    exit 1
fi

pass=0
fail=0

# check NAME STATUS TEXT [ARGS...]: run bookcheck ARGS (default book/t.md) in
# the repository; it must exit with STATUS and print TEXT.
check() {
    name=$1 want=$2 text=$3
    shift 3
    [ $# -gt 0 ] || set -- book/t.md
    (cd "$repo" && "$tmp/bookcheck" "$@") >"$tmp/out" 2>&1
    got=$?
    if [ "$got" -eq "$want" ] && grep -qF -- "$text" "$tmp/out"; then
        pass=$((pass + 1))
        echo "ok   $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $got (want $want), output lacks: $text"
        sed 's/^/     | /' "$tmp/out"
    fi
}

# same NAME FILE1 FILE2: the two files must be identical.
same() {
    if cmp -s "$2" "$3"; then
        pass=$((pass + 1))
        echo "ok   $1"
    else
        fail=$((fail + 1))
        echo "FAIL $1:"
        diff "$2" "$3" | sed 's/^/     | /'
    fi
}

chapter() { cat >"$repo/book/t.md"; }

# ---- the source tree --------------------------------------------------------

cat >"$repo/src/m.h" <<'EOF'
/* m.h — the test module's API. */
int foo(int x);   // adds one
EOF

cat >"$repo/src/m.c" <<'EOF'
/* m.c — a tiny module in the project's style. */
#include "m.h"

static int helper(int x);

// Add one.
// (A two-line comment comes along.)
int foo(int x) {
    return helper(x) + 1;
}

static int helper(int x) {
    return x;
}

/* Scale x by s.
 * A block comment comes along too. */
static float scale(float x,     // a value
                   float s) {   // the factor
    // >>> product
    float y = x * s;
    // <<< product
    return y;
}

/* A point. */
typedef struct Point {
    float x, y;   // coordinates
} Point;

typedef struct {
    int n;
} Anon;

#define TWICE(x) \
    ((x) + (x))
EOF

cat >"$repo/src/dup.c" <<'EOF'
#ifdef FAST
int dup(void) {
    return 1;
}
#else
int dup(void) {
    return 2;
}
#endif
EOF

good_foo='<!-- code: src/m.c#foo -->
```c
// Add one.
// (A two-line comment comes along.)
int foo(int x) {
    return helper(x) + 1;
}
```'

# ---- cases --------------------------------------------------------------------

chapter <<EOF
# Test

Some prose.

$good_foo

More prose.
EOF
cp "$repo/book/t.md" "$tmp/good.md"
check "a matching function excerpt passes" 0 "bookcheck: 1 excerpt in 1 chapter match src/"

sed 's/+ 1;/+ 2;/' "$tmp/good.md" | chapter
check "an edited excerpt fails" 1 "book/t.md:5: excerpt of src/m.c#foo differs from the source"
check "the difference shows the book's line" 1 "book/t.md:10:     return helper(x) + 2;"
check "the difference shows the source's line" 1 "src/m.c:9:     return helper(x) + 1;"
check "--fix repairs it" 0 "bookcheck: rewrote 1 of 1 excerpt in 1 chapter" --fix book/t.md
same "--fix restores the exact text" "$tmp/good.md" "$repo/book/t.md"
check "the repaired chapter passes" 0 "match src/"

printf '%s\n' "$good_foo" '' '<!-- code: src/m.c#helper -->' '```c' '```' | chapter
check "--fix fills an empty block" 0 "rewrote 1 of 2 excerpts" --fix book/t.md

chapter <<'EOF'
<!-- code: src/m.c#nope -->
```c
int nope;
```
EOF
check "a missing anchor fails" 1 "book/t.md:1: src/m.c#nope: no definition of 'nope'"
check "--fix still fails on it" 1 "no definition of 'nope'" --fix book/t.md

chapter <<'EOF'
<!-- code: src/dup.c#dup -->
```c
```
EOF
check "a duplicate definition fails" 1 "'dup' is defined 2 times (lines 2 and 6)"

chapter <<'EOF'
# Test

```c
int x;
```
EOF
check "an unanchored C block fails" 1 "book/t.md:3: C block has no <!-- code: ... --> anchor"

chapter <<'EOF'
```sh
make book
```

~~~text
int x;
~~~
EOF
check "other fence languages are ignored" 0 "0 excerpts in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.c#product -->

```c
    float y = x * s;
```
EOF
check "a marker region works" 0 "1 excerpt in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.c#scale -->
```c
/* Scale x by s.
 * A block comment comes along too. */
static float scale(float x,     // a value
                   float s) {   // the factor
    float y = x * s;
    return y;
}
```
EOF
check "multi-line signature, block comment, markers left out" 0 "1 excerpt in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.c#Point -->
```c
/* A point. */
typedef struct Point {
    float x, y;   // coordinates
} Point;
```

<!-- code: src/m.c#Anon -->
```c
typedef struct {
    int n;
} Anon;
```
EOF
check "a typedef struct works (named and anonymous)" 0 "2 excerpts in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.c#TWICE -->
```c
#define TWICE(x) \
    ((x) + (x))
```
EOF
check "a macro with a continuation line works" 0 "1 excerpt in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.c#helper -->
```c
static int helper(int x) {
    return x;
}
```
EOF
check "a prototype in the same .c is skipped" 0 "1 excerpt in 1 chapter match"

chapter <<'EOF'
<!-- code: src/m.h#foo -->
```c
int foo(int x);   // adds one
```
EOF
check "a prototype in the .h is not a definition" 1 "no definition of 'foo' (line 2 only declares it)"

chapter <<'EOF'
<!-- code: src/m.h -->
```c
/* m.h — the test module's API. */
int foo(int x);   // adds one
```
EOF
check "a whole-file excerpt works" 0 "1 excerpt in 1 chapter match"

chapter <<'EOF'
<!-- code: src/zzz.c#foo -->
```c
```
EOF
check "a missing source file fails" 1 "cannot read src/zzz.c"

chapter <<'EOF'
Text.

<!-- code: src/m.c#foo -->
```c
int foo(int x) {
EOF
check "an unterminated fence fails with its line" 1 "book/t.md:4: code block is never closed"

chapter <<'EOF'
<!-- code: src/m.c#foo -->
Text in between.
EOF
check "an anchor without a C block fails" 1 "book/t.md:1: anchor is not followed by a \`\`\`c block"

awk 'BEGIN { printf "%s\n", "<!-- code: src/m.c#foo -->"; printf "```c\n";
             for (i = 0; i < 200000; i++) printf "x"; printf "\n```\n" }' | chapter
check "a very long line is just a difference" 1 "differs from the source"

printf '# Test\n\n$\tilde\\mu = 0$\n' | chapter   # printf turns \t into TAB
check "a TAB left from backslash-tilde fails with line and column" 1 "book/t.md:3:2: control character 0x09"
printf '# Test\n\n$x \approx 0$\n' | chapter   # printf turns \a into BEL
check "a BEL left from backslash-approx fails" 1 "book/t.md:3:4: control character 0x07"
printf '# Test\r\n' | chapter
check "a CR (CRLF line end) fails" 1 "book/t.md:1:7: control character 0x0D"
printf '# Test\n\nx\0y\n' | chapter
check "a NUL byte fails" 1 "book/t.md:3: NUL byte"
printf '# Test\177\n' | chapter
check "a DEL fails" 1 "book/t.md:1:7: control character 0x7F"
printf '# Test \342\211\210 \302\267 ok\n' | chapter
check "UTF-8 text is not a control character" 0 "0 excerpts in 1 chapter match"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
