/* bookcheck.c — keep the book's C excerpts identical to the source.
 *
 * The book quotes code verbatim, so a chapter reads on any Markdown viewer.
 * Every ```c block in a chapter must follow (blank lines allowed) a comment
 * naming where it comes from, relative to the repository root:
 *
 *     <!-- code: src/05_schedule.c#schedule_q_sample -->
 *     <!-- code: src/00_tensor.h -->                     (the whole file)
 *
 * An anchor #name is looked up by every rule below at once; it must resolve
 * to exactly one place (lines are column 0 unless said otherwise):
 *
 *   function  a line with `name(` at parenthesis depth 0 whose signature
 *             (one or more lines) ends in '{', through the first line that is
 *             exactly "}". Prototypes end in ';' and are skipped.
 *   type      `[typedef] struct|union|enum name {` or `typedef ... {` ...
 *             `} name;`, through the line that starts with '}' and ends with
 *             ';'; or a brace-less `typedef ... name;` (but not the forward
 *             declaration `typedef struct X name;`).
 *   macro     `#define name` through its '\' continuation lines.
 *   region    the lines between `// >>> name` and `// <<< name` (indented or
 *             not), for the rare piece of a function.
 *
 * A function, type or macro brings along the comment block right above it
 * (`//` lines or a block comment, no blank line in between). Region marker
 * lines never appear in any excerpt.
 *
 * Check mode (the default) reports each difference with the first differing
 * line of both sides; it also fails on an anchor that resolves to nothing or
 * to two places, on a ```c block without an anchor and on an anchor with no
 * ```c block after it. --fix rewrites the anchored blocks from the source
 * (temp file + rename) and still fails on everything it cannot fix.
 *
 * Every chapter must also be free of control characters (bytes 0x00-0x1F
 * other than the newline, and 0x7F): a TAB or BEL in a chapter is almost
 * always a backslash escape that a shell or printf ate (\tilde became a TAB
 * and "ilde", \approx a BEL and "pprox"), and the formula renders as garbage.
 * They are reported with line, column and the escape they look like.
 *
 * Usage: bookcheck [--fix] [--root DIR] CHAPTER.md...
 * Exit status: 0 all excerpts match (or were fixed), 1 problems, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HITS 8                // definitions of one name we remember
#define MAX_SIGNATURE_LINES 40    // a longer signature or typedef is not one
#define SPEC_MAX 1024             // longest PATH#NAME in an anchor comment
#define ERR_MAX 2048              // longest message about one anchor

/* ---- small helpers -------------------------------------------------------- */

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("bookcheck: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

static int is_blank(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

/* Does p start with the identifier w (not followed by more identifier)? */
static int word_at(const char *p, const char *w)
{
    size_t n = strlen(w);
    return strncmp(p, w, n) == 0 && !is_ident(p[n]);
}

/* Length of s without a trailing comment and trailing whitespace. */
static size_t code_len(const char *s)
{
    const char *c = strstr(s, "//");
    size_t n = c ? (size_t)(c - s) : strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n >= 2 && s[n - 2] == '*' && s[n - 1] == '/') {
        for (size_t i = n - 2; i-- > 0;)
            if (s[i] == '/' && s[i + 1] == '*') { n = i; break; }
        while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    }
    return n;
}

/* The last character of the line's code (comments ignored), or 0 if none. */
static char code_end(const char *s)
{
    size_t n = code_len(s);
    return n ? s[n - 1] : '\0';
}

/* Is the line exactly `text`, give or take trailing whitespace? */
static int line_is(const char *s, const char *text)
{
    size_t n = strlen(text);
    return strncmp(s, text, n) == 0 && is_blank(s + n);
}

/* ---- a text file as an array of lines ------------------------------------ */

typedef struct {
    char *buf;            // the file's bytes, each '\n' replaced by '\0'
    char **line;          // [n] pointers into buf
    size_t n;
    size_t nul_line;      // 1 + the line of the first NUL byte, 0 if none
    int final_newline;    // the last line ended with '\n'
} Text;

static int text_load(Text *t, const char *path)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t len = 0, cap = 1 << 16, got;
    char *buf = xrealloc(NULL, cap + 1);
    while ((got = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += got) == cap) buf = xrealloc(buf, (cap *= 2) + 1);
    int failed = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (failed) {
        free(buf);
        errno = saved_errno;
        return -1;
    }
    buf[len] = '\0';
    t->buf = buf;
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        t->nul_line = 1;
        for (const char *q = buf; q < nul; q++) t->nul_line += *q == '\n';
    }
    t->final_newline = len > 0 && buf[len - 1] == '\n';
    for (size_t i = 0; i < len; i++) t->n += buf[i] == '\n';
    t->n += len > 0 && !t->final_newline;
    t->line = xrealloc(NULL, t->n * sizeof *t->line);
    char *p = buf;
    for (size_t i = 0; i < t->n; i++) {
        t->line[i] = p;
        p += strcspn(p, "\n");
        if (*p == '\n') *p++ = '\0';
    }
    return 0;
}

static void text_free(Text *t)
{
    free(t->buf);
    free(t->line);
    memset(t, 0, sizeof *t);
}

/* ---- a growable byte buffer (the rewritten chapter in --fix mode) -------- */

typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = 2 * (b->len + n) + 256;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

static void buf_line(Buf *b, size_t indent, const char *s)
{
    for (size_t i = 0; i < indent && *s; i++) buf_add(b, " ", 1);
    buf_add(b, s, strlen(s));
    buf_add(b, "\n", 1);
}

/* ---- an excerpt: the source lines a block must equal --------------------- */

typedef struct {
    const char **line;    // [n] pointers into the source Text
    size_t *lineno;       // [n] 1-based source line numbers, for messages
    size_t n, cap;
} Lines;

static void lines_push(Lines *l, const char *s, size_t lineno)
{
    if (l->n == l->cap) {
        l->cap = 2 * l->cap + 64;
        l->line = xrealloc(l->line, l->cap * sizeof *l->line);
        l->lineno = xrealloc(l->lineno, l->cap * sizeof *l->lineno);
    }
    l->line[l->n] = s;
    l->lineno[l->n++] = lineno;
}

static void lines_free(Lines *l)
{
    free(l->line);
    free(l->lineno);
    memset(l, 0, sizeof *l);
}

/* `// >>> name` / `// <<< name` (dir is ">>>" or "<<<"); name NULL = any. */
static int is_marker(const char *s, const char *dir, const char *name)
{
    const char *p = skip_ws(s);
    if (strncmp(p, "//", 2) != 0) return 0;
    p = skip_ws(p + 2);
    if (strncmp(p, dir, 3) != 0) return 0;
    if (!name) return 1;
    p = skip_ws(p + 3);
    return word_at(p, name) && is_blank(p + strlen(name));
}

static int is_any_marker(const char *s)
{
    return is_marker(s, ">>>", NULL) || is_marker(s, "<<<", NULL);
}

/* ---- finding a definition ------------------------------------------------- */

typedef struct {
    size_t at[MAX_HITS];       // 0-based line of each definition (for messages)
    size_t beg[MAX_HITS];      // its excerpt is source lines [beg, end)
    size_t end[MAX_HITS];
    int n;                     // definitions found; may exceed MAX_HITS
    size_t decl;               // 1-based line of a mere declaration, or 0
    char err[ERR_MAX];         // a malformed one, e.g. without its closing '}'
} Hits;

/* Move beg up over the comment block directly above it. */
static size_t with_comment(const Text *src, size_t beg)
{
    while (beg > 0) {
        const char *above = src->line[beg - 1];
        if (strncmp(above, "//", 2) == 0 && !is_any_marker(above)) {
            beg--;
            continue;
        }
        size_t n = strlen(above);
        while (n > 0 && isspace((unsigned char)above[n - 1])) n--;
        if (n < 2 || above[n - 2] != '*' || above[n - 1] != '/') break;
        size_t j = beg - 1;    // walk up to the line that opens the comment
        while (j > 0 && !strstr(src->line[j], "/*")) j--;
        if (strncmp(skip_ws(src->line[j]), "/*", 2) != 0) break;
        beg = j;
    }
    return beg;
}

/* Record the definition on line `at`, whose excerpt is lines [beg, end). */
static void hits_add(Hits *h, size_t at, size_t beg, size_t end)
{
    for (int i = 0; i < h->n && i < MAX_HITS; i++)
        if (h->at[i] == at) return;        // the same definition, seen by two rules
    if (h->n < MAX_HITS) {
        h->at[h->n] = at;
        h->beg[h->n] = beg;
        h->end[h->n] = end;
    }
    h->n++;
}

/* Does `name(` occur at parenthesis depth 0, before any '{', '=', ';' or
 * comment? (So `void f(void (*name)(int))` does not define name.) */
static int names_function(const char *s, const char *name)
{
    size_t n = strlen(name);
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '(') depth++;
        else if (*p == ')') depth--;
        else if (depth > 0) continue;
        else if (strchr("{=;", *p) || (p[0] == '/' && (p[1] == '/' || p[1] == '*')))
            return 0;
        else if ((p == s || !is_ident(p[-1])) && strncmp(p, name, n) == 0 && p[n] == '(')
            return 1;
    }
    return 0;
}

static void find_function(const Text *src, const char *name, Hits *h)
{
    for (size_t i = 0; i < src->n; i++) {
        const char *s = src->line[i];
        if (!(isalpha((unsigned char)s[0]) || s[0] == '_') || word_at(s, "typedef")
            || !names_function(s, name))
            continue;
        size_t k = i;          // the signature's last line
        char last = code_end(s);
        while (last != '{' && last != ';' && last != '}' && last != '\0'
               && k + 1 < src->n && k - i < MAX_SIGNATURE_LINES)
            last = code_end(src->line[++k]);
        if (last == '}' && k == i && strchr(s, '{')) {   // int f(void) { ... }
            hits_add(h, i, with_comment(src, i), i + 1);
            continue;
        }
        if (last != '{') {                  // a prototype, or not a function
            if (last == ';' && !h->decl) h->decl = i + 1;
            continue;
        }
        size_t close = k + 1;
        while (close < src->n && !line_is(src->line[close], "}")) close++;
        if (close == src->n)
            snprintf(h->err, sizeof h->err,
                     "'%s' at line %zu has no closing '}' at column 0", name, i + 1);
        else
            hits_add(h, i, with_comment(src, i), close + 1);
    }
}

/* The identifier a declaration ending in ';' declares: `real` in
 * `typedef float real;`, `Fn` in `typedef void (*Fn)(int);`, `Arena` in
 * `} Arena;`. Returns its length (0 if none) and points *id at it. */
static size_t declared_name(const char *first, const char *last, const char **id)
{
    const char *p = strstr(first, "(*");
    if (p) {
        p = skip_ws(p + 2);
        size_t n = 0;
        while (is_ident(p[n])) n++;
        *id = p;
        return n;
    }
    size_t end = code_len(last);
    if (end == 0 || last[end - 1] != ';') return 0;
    end--;
    for (;;) {                           // skip spaces and array sizes: `name[4];`
        while (end > 0 && isspace((unsigned char)last[end - 1])) end--;
        if (end == 0 || last[end - 1] != ']') break;
        while (end > 0 && last[end - 1] != '[') end--;
        if (end > 0) end--;
    }
    size_t beg = end;
    while (beg > 0 && is_ident(last[beg - 1])) beg--;
    *id = last + beg;
    return end - beg;
}

static int declares(const char *first, const char *last, const char *name)
{
    const char *id = NULL;
    size_t n = declared_name(first, last, &id);
    return n == strlen(name) && strncmp(id, name, n) == 0;
}

/* `[typedef] struct|union|enum name {` */
static int opens_named_type(const char *s, const char *name)
{
    const char *p = s;
    if (word_at(p, "typedef")) p = skip_ws(p + 7);
    if (word_at(p, "struct")) p += 6;
    else if (word_at(p, "union")) p += 5;
    else if (word_at(p, "enum")) p += 4;
    else return 0;
    p = skip_ws(p);
    return word_at(p, name) && *skip_ws(p + strlen(name)) == '{';
}

/* `typedef struct X name;`: a forward declaration, not a definition. */
static int is_forward_typedef(const char *s)
{
    const char *p = skip_ws(s + 7);
    return (word_at(p, "struct") || word_at(p, "union") || word_at(p, "enum"))
           && !strchr(s, '{');
}

/* The line at or after `from` that closes a type: starts '}', ends ';'. */
static size_t type_close(const Text *src, size_t from)
{
    while (from < src->n && !(src->line[from][0] == '}' && code_end(src->line[from]) == ';'))
        from++;
    return from;
}

static void find_brace_type(const Text *src, const char *name, Hits *h, size_t i)
{
    const char *s = src->line[i];
    if (opens_named_type(s, name)) {
        size_t close = code_end(s) == ';' ? i : type_close(src, i + 1);
        if (close == src->n)
            snprintf(h->err, sizeof h->err,
                     "type '%s' at line %zu has no closing '};'", name, i + 1);
        else
            hits_add(h, i, with_comment(src, i), close + 1);
    }
    if (s[0] == '}' && code_end(s) == ';' && declares(s, s, name)) {
        size_t j = i;          // walk up to the typedef line that opens it
        while (j > 0 && !(is_ident(src->line[j - 1][0]) && code_end(src->line[j - 1]) == '{'))
            j--;
        if (j > 0 && word_at(src->line[j - 1], "typedef"))
            hits_add(h, j - 1, with_comment(src, j - 1), i + 1);
    }
}

/* A typedef without braces, on one line or a few: `typedef float real;`. */
static void find_plain_typedef(const Text *src, const char *name, Hits *h, size_t i)
{
    const char *s = src->line[i];
    if (!word_at(s, "typedef") || strchr(s, '{')) return;
    if (is_forward_typedef(s)) {
        if (declares(s, s, name) && !h->decl) h->decl = i + 1;
        return;
    }
    size_t k = i;
    while (code_end(src->line[k]) != ';' && k + 1 < src->n && k - i < MAX_SIGNATURE_LINES
           && !strchr(src->line[k + 1], '{'))
        k++;
    if (code_end(src->line[k]) == ';' && declares(s, src->line[k], name))
        hits_add(h, i, with_comment(src, i), k + 1);
}

static void find_type(const Text *src, const char *name, Hits *h)
{
    for (size_t i = 0; i < src->n; i++) {
        find_brace_type(src, name, h, i);
        find_plain_typedef(src, name, h, i);
    }
}

static void find_macro(const Text *src, const char *name, Hits *h)
{
    for (size_t i = 0; i < src->n; i++) {
        const char *p = src->line[i];
        if (*p != '#') continue;
        p = skip_ws(p + 1);
        if (!word_at(p, "define")) continue;
        p = skip_ws(p + 6);
        if (!word_at(p, name)) continue;
        size_t k = i;          // follow the continuation lines
        while (k + 1 < src->n) {
            size_t n = strlen(src->line[k]);
            while (n > 0 && isspace((unsigned char)src->line[k][n - 1])) n--;
            if (n == 0 || src->line[k][n - 1] != '\\') break;
            k++;
        }
        hits_add(h, i, with_comment(src, i), k + 1);
    }
}

static void find_region(const Text *src, const char *name, Hits *h)
{
    for (size_t i = 0; i < src->n; i++) {
        if (!is_marker(src->line[i], ">>>", name)) continue;
        size_t k = i + 1;
        while (k < src->n && !is_marker(src->line[k], "<<<", name)) k++;
        if (k == src->n)
            snprintf(h->err, sizeof h->err,
                     "'// >>> %s' at line %zu has no '// <<< %s'", name, i + 1, name);
        else
            hits_add(h, i, i + 1, k);
    }
}

/* ---- resolving "PATH#ANCHOR" ---------------------------------------------- */

static int is_identifier(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_')) return 0;
    while (is_ident(*s)) s++;
    return *s == '\0';
}

/* Lines [beg, end) of src, without region markers, appended to ex. */
static void take_lines(const Text *src, size_t beg, size_t end, Lines *ex)
{
    for (size_t i = beg; i < end; i++)
        if (!is_any_marker(src->line[i])) lines_push(ex, src->line[i], i + 1);
}

/* Find the one definition of name in src, or explain in err why not. */
static int resolve_name(const Text *src, const char *name, Lines *ex, char *err, size_t errlen)
{
    Hits h = {0};
    find_function(src, name, &h);
    find_type(src, name, &h);
    find_macro(src, name, &h);
    find_region(src, name, &h);
    if (h.n == 1) {
        take_lines(src, h.beg[0], h.end[0], ex);
        return 0;
    }
    if (h.n == 0 && h.err[0]) {
        snprintf(err, errlen, "%s", h.err);
    } else if (h.n == 0 && h.decl) {
        snprintf(err, errlen, "no definition of '%s' (line %zu only declares it)", name, h.decl);
    } else if (h.n == 0) {
        snprintf(err, errlen, "no definition of '%s'", name);
    } else {
        int len = snprintf(err, errlen, "'%s' is defined %d times (lines", name, h.n);
        for (int i = 0; i < h.n && i < MAX_HITS && len > 0 && (size_t)len < errlen; i++)
            len += snprintf(err + len, errlen - (size_t)len, "%s%zu",
                            i == 0 ? " " : i + 1 == h.n ? " and " : ", ", h.at[i] + 1);
        if (len > 0 && (size_t)len < errlen)
            snprintf(err + len, errlen - (size_t)len, "%s)", h.n > MAX_HITS ? ", ..." : "");
    }
    return -1;
}

/* Load the file that spec ("PATH" or "PATH#NAME") names and take its excerpt.
 * On failure write one sentence into err; src must be freed either way. */
static int resolve(const char *root, const char *spec, Text *src, Lines *ex,
                   char *err, size_t errlen)
{
    const char *hash = strchr(spec, '#');
    size_t plen = hash ? (size_t)(hash - spec) : strlen(spec);
    if (plen == 0) {
        snprintf(err, errlen, "the anchor names no file");
        return -1;
    }
    if (hash && !is_identifier(hash + 1)) {
        snprintf(err, errlen, "'%s' is not a C identifier", hash + 1);
        return -1;
    }
    char *path = xrealloc(NULL, strlen(root) + plen + 2);
    sprintf(path, "%s/%.*s", root, (int)plen, spec);
    int rc = text_load(src, path);
    free(path);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read %.*s: %s", (int)plen, spec, strerror(errno));
        return -1;
    }
    if (!hash) {
        take_lines(src, 0, src->n, ex);
        return 0;
    }
    return resolve_name(src, hash + 1, ex, err, errlen);
}

/* ---- Markdown: fences and anchor comments -------------------------------- */

typedef struct {
    size_t indent;        // spaces before the fence; stripped from the body
    char ch;              // '`' or '~'
    size_t len;           // 3 or more
    int is_c;             // the info string names C: ```c, ```C, ```{.c}
} Fence;

static int fence_open(const char *s, Fence *f)
{
    const char *p = s;
    while (*p == ' ') p++;
    if (*p != '`' && *p != '~') return 0;
    f->indent = (size_t)(p - s);
    f->ch = *p;
    f->len = 0;
    while (p[f->len] == f->ch) f->len++;
    if (f->len < 3) return 0;
    const char *info = skip_ws(p + f->len);
    if (f->ch == '`' && strchr(info, '`')) return 0;   // inline code, not a fence
    while (*info == '{' || *info == '.') info++;
    size_t n = 0;
    while (is_ident(info[n]) || info[n] == '+' || info[n] == '-') n++;
    f->is_c = n == 1 && (info[0] == 'c' || info[0] == 'C');
    return 1;
}

static int fence_closes(const char *s, const Fence *f)
{
    const char *p = s;
    while (*p == ' ') p++;
    size_t n = 0;
    while (p[n] == f->ch) n++;
    return n >= f->len && is_blank(p + n);
}

/* `<!-- code: SPEC -->`: copy SPEC into spec and return 1, else return 0. */
static int anchor_comment(const char *s, char *spec, size_t cap)
{
    const char *p = skip_ws(s);
    if (strncmp(p, "<!--", 4) != 0) return 0;
    p = skip_ws(p + 4);
    if (strncmp(p, "code:", 5) != 0) return 0;
    p = skip_ws(p + 5);
    const char *end = strstr(p, "-->");
    if (!end || !is_blank(end + 3)) return 0;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    snprintf(spec, cap, "%.*s", (int)(end - p), p);
    return 1;
}

/* ---- checking and fixing one chapter -------------------------------------- */

typedef struct {
    const char *root;     // the repository root; anchors are relative to it
    int fix;              // --fix: rewrite blocks instead of reporting them
    int problems;         // errors reported so far
    int excerpts;         // anchored C blocks that resolved
    int rewritten;        // blocks --fix changed
    int chapters;         // Markdown files read
} Run;

static void problem(Run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    r->problems++;
}

/* The block body's line i, without the fence's indentation. */
static const char *body_line(const Text *md, size_t open, const Fence *f, size_t i)
{
    const char *s = md->line[open + 1 + i];
    for (size_t k = 0; k < f->indent && *s == ' '; k++) s++;
    return s;
}

/* Index of the first body line that differs from the excerpt, or SIZE_MAX. */
static size_t first_difference(const Text *md, size_t open, size_t close,
                               const Fence *f, const Lines *ex)
{
    size_t n = close - open - 1;
    for (size_t i = 0; i < n || i < ex->n; i++)
        if (i >= n || i >= ex->n || strcmp(body_line(md, open, f, i), ex->line[i]) != 0)
            return i;
    return SIZE_MAX;
}

static void report_difference(Run *r, const char *path, size_t anchor, const char *spec,
                              const Text *md, size_t open, size_t close, const Fence *f,
                              const Lines *ex, size_t i)
{
    problem(r, "%s:%zu: excerpt of %s differs from the source (run 'make book-sync')",
            path, anchor + 1, spec);
    size_t plen = strcspn(spec, "#");
    if (i < close - open - 1)
        fprintf(stderr, "  %s:%zu: %s\n", path, open + 2 + i, body_line(md, open, f, i));
    else
        fprintf(stderr, "  %s:%zu: (the book's block ends here)\n", path, close + 1);
    if (i < ex->n)
        fprintf(stderr, "  %.*s:%zu: %s\n", (int)plen, spec, ex->lineno[i], ex->line[i]);
    else
        fprintf(stderr, "  %.*s: (the excerpt ends after %zu lines)\n", (int)plen, spec, ex->n);
}

/* Check (or, with --fix, rewrite into out) the ```c block md[open..close]
 * whose anchor comment is on line `anchor` (SIZE_MAX if it has none).
 * Returns 1 if --fix changed it. */
static int do_block(Run *r, const char *path, const Text *md, size_t anchor,
                    size_t open, size_t close, const Fence *f, Buf *out)
{
    char spec[SPEC_MAX], err[ERR_MAX];
    Text src = {0};
    Lines ex = {0};
    size_t diff = SIZE_MAX;
    int ok = 0;
    if (anchor == SIZE_MAX) {
        problem(r, "%s:%zu: C block has no <!-- code: ... --> anchor", path, open + 1);
    } else {
        anchor_comment(md->line[anchor], spec, sizeof spec);
        ok = resolve(r->root, spec, &src, &ex, err, sizeof err) == 0;
        if (!ok) problem(r, "%s:%zu: %s: %s", path, anchor + 1, spec, err);
    }
    if (ok) {
        r->excerpts++;
        diff = first_difference(md, open, close, f, &ex);
        if (diff != SIZE_MAX && !r->fix)
            report_difference(r, path, anchor, spec, md, open, close, f, &ex, diff);
        if (diff != SIZE_MAX && r->fix)
            printf("%s:%zu: rewrote the excerpt of %s\n", path, anchor + 1, spec);
    }
    int rewrite = r->fix && diff != SIZE_MAX;
    buf_line(out, 0, md->line[open]);
    for (size_t i = 0; rewrite && i < ex.n; i++) buf_line(out, f->indent, ex.line[i]);
    for (size_t i = open + 1; !rewrite && i < close; i++) buf_line(out, 0, md->line[i]);
    buf_line(out, 0, md->line[close]);
    lines_free(&ex);
    text_free(&src);
    return rewrite;
}

static int write_file(const char *path, const Buf *b, int final_newline)
{
    size_t len = b->len;
    if (!final_newline && len > 0 && b->s[len - 1] == '\n') len--;
    char *tmp = xrealloc(NULL, strlen(path) + 16);
    sprintf(tmp, "%s.bookcheck-tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(b->s, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) remove(tmp);
    free(tmp);
    return ok ? 0 : -1;
}

/* Walk one chapter: anchors, fences, blocks. Returns the number of blocks
 * rewritten into out, or -1 if the file cannot be parsed (never rewrite it). */
static int walk_chapter(Run *r, const char *path, const Text *md, Buf *out)
{
    char spec[SPEC_MAX];
    size_t anchor = SIZE_MAX;  // line of a <!-- code: --> awaiting its block
    int changed = 0;
    for (size_t i = 0; i < md->n; i++) {
        Fence f;
        const char *s = md->line[i];
        if (fence_open(s, &f)) {
            size_t close = i + 1;
            while (close < md->n && !fence_closes(md->line[close], &f)) close++;
            if (close == md->n) {
                problem(r, "%s:%zu: code block is never closed", path, i + 1);
                return -1;
            }
            if (f.is_c) {
                changed += do_block(r, path, md, anchor, i, close, &f, out);
            } else {
                if (anchor != SIZE_MAX)
                    problem(r, "%s:%zu: anchor is followed by a non-C block", path, anchor + 1);
                for (size_t k = i; k <= close; k++) buf_line(out, 0, md->line[k]);
            }
            anchor = SIZE_MAX;
            i = close;
            continue;
        }
        int is_anchor = anchor_comment(s, spec, sizeof spec);
        if (anchor != SIZE_MAX && (is_anchor || !is_blank(s)))
            problem(r, "%s:%zu: anchor is not followed by a ```c block", path, anchor + 1);
        if (is_anchor) anchor = i;
        else if (!is_blank(s)) anchor = SIZE_MAX;
        buf_line(out, 0, s);
    }
    if (anchor != SIZE_MAX)
        problem(r, "%s:%zu: anchor is not followed by a ```c block", path, anchor + 1);
    return changed;
}

/* The C escape a control character is usually left from, or "". */
static const char *escape_name(unsigned char c)
{
    switch (c) {
    case '\a': return " (\\a, as in \\approx)";
    case '\b': return " (\\b, as in \\beta)";
    case '\t': return " (TAB, \\t as in \\tilde)";
    case '\v': return " (\\v, as in \\vert)";
    case '\f': return " (\\f, as in \\frac)";
    case '\r': return " (\\r, a CRLF line end or \\rho)";
    default: return "";
    }
}

/* Report every control character in the chapter (the newline excepted). */
static void check_controls(Run *r, const char *path, const Text *md)
{
    if (md->nul_line)
        problem(r, "%s:%zu: NUL byte (a chapter is text)", path, md->nul_line);
    for (size_t i = 0; i < md->n; i++)
        for (const unsigned char *p = (const unsigned char *)md->line[i]; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                problem(r, "%s:%zu:%zu: control character 0x%02X%s", path, i + 1,
                        (size_t)(p - (const unsigned char *)md->line[i]) + 1, *p,
                        escape_name(*p));
}

static void do_chapter(Run *r, const char *path)
{
    Text md;
    if (text_load(&md, path) != 0) {
        problem(r, "%s: cannot read: %s", path, strerror(errno));
        return;
    }
    r->chapters++;
    check_controls(r, path, &md);
    Buf out = {0};
    int changed = walk_chapter(r, path, &md, &out);
    if (r->fix && changed > 0) {
        if (write_file(path, &out, md.final_newline) != 0)
            problem(r, "%s: cannot write: %s", path, strerror(errno));
        else
            r->rewritten += changed;
    }
    free(out.s);
    text_free(&md);
}

/* ---- main ------------------------------------------------------------------ */

static int usage(void)
{
    fputs("usage: bookcheck [--fix] [--root DIR] CHAPTER.md...\n"
          "  checks that every ```c block equals the source its <!-- code: PATH#NAME -->\n"
          "  comment names; --fix rewrites the blocks from the source instead\n",
          stderr);
    return 2;
}

static const char *plural(int n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

#ifndef BOOKCHECK_NO_MAIN   // tools/stub.c includes this file for its finder
int main(int argc, char **argv)
{
    Run r = {.root = "."};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--fix") == 0) r.fix = 1;
        else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) r.root = argv[++i];
        else if (strncmp(argv[i], "--root=", 7) == 0) r.root = argv[i] + 7;
        else if (strcmp(argv[i], "--") == 0) { i++; break; }
        else return usage();
    }
    if (i == argc) return usage();
    for (; i < argc; i++) do_chapter(&r, argv[i]);

    const char *ex = plural(r.excerpts, "excerpt", "excerpts");
    const char *ch = plural(r.chapters, "chapter", "chapters");
    if (r.fix)
        printf("bookcheck: rewrote %d of %d %s in %d %s\n",
               r.rewritten, r.excerpts, ex, r.chapters, ch);
    if (r.problems) {
        fprintf(stderr, "bookcheck: %d %s\n", r.problems, plural(r.problems, "problem", "problems"));
        return 1;
    }
    if (!r.fix) printf("bookcheck: %d %s in %d %s match src/\n", r.excerpts, ex, r.chapters, ch);
    return 0;
}
#endif
