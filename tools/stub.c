/* stub.c — blank named functions for a homework copy of the project.
 *
 * Given C files and function names, rewrites each file in place so that
 * exactly those functions keep their header comment and signature but lose
 * their body, which becomes a stub that compiles, runs and fails loudly:
 *
 *     void col2im(real *dx, const real *col, int m, const ConvShape *s)
 *     {
 *         (void)dx; (void)col; (void)m; (void)s;
 *         fprintf(stderr, "TODO: hw2: write col2im (src/02_conv.c)\n");
 *         abort();
 *     }
 *
 * A graded test that reaches a stub dies of SIGABRT; Check runs every test in
 * its own process, so that test is reported as an error and the others run.
 * `static` functions are found like any other. No marker comments are needed
 * in the source: a function is found by name with the same rules the book's
 * excerpt checker uses (tools/bookcheck.c, included below for its finder):
 * a line at column 0 with `name(` at parenthesis depth 0, a signature ending
 * in '{', and the first line that is exactly "}" closes it.
 *
 * Every name must be defined exactly once across the files given.
 *
 * Usage: stub [--dry] --tag TAG FILE.c... -- NAME...
 *   --dry   write nothing; print "NAME FILE LINE" for each name (the grader
 *           uses this to learn which files an assignment touches)
 * Exit status: 0 done, 1 a name not found, found twice or not stubbable,
 * 2 usage or I/O error.
 */
#define BOOKCHECK_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bookcheck.c"
#pragma GCC diagnostic pop

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int file;          // index into the files, -1 if not found
    size_t at, close;  // 0-based: signature's first line, the closing "}"
    size_t open;       // 0-based: the signature's last line (ends in '{')
} Stub;

/* The parameter names of the signature in `sig` (one string), as
 * "(void)a; (void)b;" appended to out; "" for f(void). */
static void param_voids(const char *sig, const char *name, Buf *out)
{
    size_t n = strlen(name);
    const char *p = sig;
    for (; *p; p++)
        if ((p == sig || !is_ident(p[-1])) && strncmp(p, name, n) == 0 && p[n] == '(') break;
    if (!*p) return;
    p += n + 1;
    int depth = 1;
    const char *start = p;
    for (; *p && depth > 0; p++) {
        if (*p == '(') depth++;
        if (*p == ')') depth--;
        if ((*p == ',' && depth == 1) || depth == 0) {
            // one parameter is [start, p): its name is the identifier after
            // "(*" (a function pointer) or else the last identifier
            const char *e = p, *id = NULL;
            size_t idn = 0;
            const char *fp = NULL;
            for (const char *q = start; q + 1 < e; q++)
                if (q[0] == '(' && q[1] == '*') { fp = q + 2; break; }
            if (fp) {
                while (fp < e && *fp == ' ') fp++;
                id = fp;
                while (id + idn < e && is_ident(id[idn])) idn++;
            } else {
                while (e > start && (isspace((unsigned char)e[-1]) || e[-1] == ']')) {
                    if (e[-1] == ']') while (e > start && e[-1] != '[') e--;
                    if (e > start) e--;
                }
                const char *b = e;
                while (b > start && is_ident(b[-1])) b--;
                id = b;
                idn = (size_t)(e - b);
            }
            if (idn && !(idn == 4 && strncmp(id, "void", 4) == 0)) {
                buf_add(out, " (void)", 7);
                buf_add(out, id, idn);
                buf_add(out, ";", 1);
            }
            start = p + 1;
        }
    }
}

static int has_include(const Text *t, const char *hdr)
{
    for (size_t i = 0; i < t->n; i++)
        if (strncmp(t->line[i], "#include", 8) == 0 && strstr(t->line[i], hdr)) return 1;
    return 0;
}

static int rewrite(const char *path, const Text *t, Stub *st, int ns, int file, const char *tag)
{
    Buf b = {0};
    int need_stdio = !has_include(t, "<stdio.h>"), need_stdlib = !has_include(t, "<stdlib.h>");
    size_t cur = 0;
    int added = 0;
    for (;;) {
        // the next stub in this file, in line order
        Stub *s = NULL;
        for (int i = 0; i < ns; i++)
            if (st[i].file == file && st[i].at >= cur && (!s || st[i].at < s->at)) s = &st[i];
        size_t stop = s ? s->open + 1 : t->n;
        for (; cur < stop; cur++) {
            if (!added && strncmp(t->line[cur], "#include", 8) == 0) {
                if (need_stdio) buf_line(&b, 0, "#include <stdio.h>");
                if (need_stdlib) buf_line(&b, 0, "#include <stdlib.h>");
                // helpers of a stubbed function stay unused until it is written
                buf_line(&b, 0, "#pragma GCC diagnostic ignored \"-Wunused-function\"");
                added = 1;
            }
            buf_line(&b, 0, t->line[cur]);
        }
        if (!s) break;
        Buf sig = {0};
        for (size_t i = s->at; i <= s->open; i++) {
            buf_add(&sig, t->line[i], code_len(t->line[i]));
            buf_add(&sig, " ", 1);
        }
        buf_add(&sig, "", 1);
        Buf v = {0};
        param_voids(sig.s, s->name, &v);
        buf_add(&v, "", 1);
        if (v.s[0]) buf_line(&b, 3, v.s);
        char msg[512];
        snprintf(msg, sizeof msg, "    fprintf(stderr, \"TODO: %s: write %s (%s)\\n\");",
                 tag, s->name, path);
        buf_line(&b, 0, msg);
        buf_line(&b, 0, "    abort();");
        buf_line(&b, 0, "}");
        free(sig.s);
        free(v.s);
        cur = s->close + 1;
    }
    int rc = write_file(path, &b, t->final_newline);
    free(b.s);
    return rc;
}

int main(int argc, char **argv)
{
    int dry = 0, a = 1;
    const char *tag = NULL;
    for (; a < argc && argv[a][0] == '-' && strcmp(argv[a], "--"); a++) {
        if (!strcmp(argv[a], "--dry")) dry = 1;
        else if (!strcmp(argv[a], "--tag") && a + 1 < argc) tag = argv[++a];
        else break;
    }
    int f0 = a, nf = 0;
    while (a < argc && strcmp(argv[a], "--")) a++, nf++;
    if (a == argc || (!tag && !dry) || nf == 0) {
        fputs("usage: stub [--dry] --tag TAG FILE.c... -- NAME...\n", stderr);
        return 2;
    }
    a++;
    int ns = argc - a;
    Text *t = xrealloc(NULL, nf * sizeof *t);
    for (int i = 0; i < nf; i++)
        if (text_load(&t[i], argv[f0 + i]) != 0) {
            fprintf(stderr, "stub: cannot read %s: %s\n", argv[f0 + i], strerror(errno));
            return 2;
        }
    Stub *st = xrealloc(NULL, (ns ? ns : 1) * sizeof *st);
    int bad = 0;
    for (int k = 0; k < ns; k++) {
        Stub *s = &st[k];
        s->name = argv[a + k];
        s->file = -1;
        int found = 0;
        for (int i = 0; i < nf; i++) {
            Hits h;
            memset(&h, 0, sizeof h);
            find_function(&t[i], s->name, &h);
            if (h.err[0]) {
                fprintf(stderr, "stub: %s: %s\n", argv[f0 + i], h.err);
                bad = 1;
            }
            for (int j = 0; j < h.n && j < MAX_HITS; j++) {
                found++;
                s->file = i;
                s->at = h.at[j];
                s->close = h.end[j] - 1;
            }
        }
        if (found != 1) {
            fprintf(stderr, "stub: function '%s' %s in the files given\n", s->name,
                    found ? "is defined more than once" : "is not defined");
            bad = 1;
            continue;
        }
        const Text *src = &t[s->file];
        s->open = s->at;
        while (code_end(src->line[s->open]) != '{' && s->open < s->close) s->open++;
        if (s->open >= s->close) {
            fprintf(stderr, "stub: %s:%zu: '%s' is a one-line function; cannot stub it\n",
                    argv[f0 + s->file], s->at + 1, s->name);
            bad = 1;
        }
    }
    if (bad) return 1;
    for (int k = 0; k < ns; k++)
        printf("%s %s %zu\n", st[k].name, argv[f0 + st[k].file], st[k].at + 1);
    if (dry) return 0;
    for (int i = 0; i < nf; i++) {
        int any = 0;
        for (int k = 0; k < ns; k++) any |= st[k].file == i;
        if (any && rewrite(argv[f0 + i], &t[i], st, ns, i, tag) != 0) {
            fprintf(stderr, "stub: cannot write %s: %s\n", argv[f0 + i], strerror(errno));
            return 2;
        }
    }
    return 0;
}
