#!/bin/sh
# book.sh — render the book to HTML pages with pandoc.
#
# Usage: tools/book.sh OUTDIR [BOOKDIR]
#
# Renders BOOKDIR/index.md, every BOOKDIR/NN_*.md and appendix_*.md (BOOKDIR defaults to the
# repository's book/) into OUTDIR/NAME.html. Each page is standalone: its
# figures (../figures/*.png, relative to the chapter) and tools/book.css are
# embedded, math is MathML (no JavaScript, works offline), it has a table of
# contents, its title is its first "# " heading, links to NN_name.md point at
# NN_name.html (both done by tools/book.lua), and a bar at the top and bottom
# leads to the contents and to the previous and next chapters.
set -eu

die() {
    echo "book.sh: $*" >&2
    exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: tools/book.sh OUTDIR [BOOKDIR]" >&2
    exit 2
fi
command -v pandoc >/dev/null 2>&1 || die "pandoc not found: run 'make deps'"
tools=$(cd "$(dirname "$0")" && pwd)
book=${2:-$tools/../book}
[ -d "$book" ] || die "no book directory '$book'"
book=$(cd "$book" && pwd)
shown=${1%/}                  # OUTDIR as the user wrote it, for messages
mkdir -p "$1" || die "cannot create '$1'"
out=$(cd "$1" && pwd)

# Pandoc 2.19 replaced --self-contained with --embed-resources; Debian 12 has 2.17.
if pandoc --help | grep -q -- '--embed-resources'; then
    embed='--standalone --embed-resources'
else
    embed='--standalone --self-contained'
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# title_of PAGE: its first "# " heading, HTML-escaped, for the navigation bar.
title_of() {
    t=$(sed -n 's/^# //p' "$1" | head -n 1)
    [ -n "$t" ] || t=${1%.md}
    printf '%s\n' "$t" | sed 's/[`*]//g; s/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'
}

# nav_bar PAGE PREV NEXT CLASS: previous chapter | Contents | next chapter.
nav_bar() {
    printf '<nav class="chapters %s">\n' "$4"
    if [ -n "$2" ] && [ "$2" != index.md ]; then
        printf '<a href="%s.html" rel="prev">&larr; %s</a>\n' "${2%.md}" "$(title_of "$2")"
    else
        printf '<span></span>\n'
    fi
    if [ "$1" != index.md ]; then
        printf '<a href="index.html">Contents</a>\n'
    else
        printf '<span></span>\n'
    fi
    if [ -n "$3" ]; then
        printf '<a href="%s.html" rel="next">%s &rarr;</a>\n' "${3%.md}" "$(title_of "$3")"
    else
        printf '<span></span>\n'
    fi
    printf '</nav>\n'
}

# render PAGE PREV NEXT: one Markdown page to OUTDIR/PAGE.html.
# Run from the book directory, so ../figures/NAME.png resolves.
render() {
    nav_bar "$1" "$2" "$3" top >"$tmp/top.html"
    nav_bar "$1" "$2" "$3" bottom >"$tmp/bottom.html"
    # shellcheck disable=SC2086  # $embed is two options
    pandoc "$1" --from=markdown --to=html5 $embed \
        --toc --toc-depth=3 --mathml --metadata=lang:en \
        --lua-filter="$tools/book.lua" --css="$tools/book.css" \
        --resource-path=".:$book" \
        --include-before-body="$tmp/top.html" \
        --include-after-body="$tmp/bottom.html" \
        --output="$out/${1%.md}.html" 2>"$tmp/err" || {
        cat "$tmp/err" >&2
        if grep -q 'not found in resource path' "$tmp/err"; then
            die "$book/$1 shows a figure that does not exist yet ('make chapterNN' makes a chapter's figures)"
        fi
        die "pandoc failed on $book/$1"
    }
    cat "$tmp/err" >&2      # pandoc's warnings, if any
    echo "book.sh: wrote $shown/${1%.md}.html"
}

cd "$book"
set --
if [ -f index.md ]; then set -- index.md; fi
for f in [0-9][0-9]_*.md appendix_*.md; do
    if [ -f "$f" ]; then set -- "$@" "$f"; fi
done
[ $# -gt 0 ] || die "nothing to render: no index.md or NN_*.md in $book"
[ -f index.md ] || echo "book.sh: note: $book has no index.md (the Contents links will be dead)" >&2

pages=$#
prev=
while [ $# -gt 0 ]; do
    page=$1
    shift
    render "$page" "$prev" "${1:-}"
    prev=$page
done
echo "book.sh: $pages pages in $shown/ (open $shown/index.html)"
