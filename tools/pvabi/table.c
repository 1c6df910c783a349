/* SPDX-License-Identifier: MIT */
/*
 * Aligned text tables: rows are kept until printing, because a column is as
 * wide as its widest cell (domids, ports and refs vary from 1 to 10 digits).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Columns of a row are separated by this many spaces. */
#define TABLE_GAP 2

struct table {
    const struct table_col *cols;
    unsigned ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols */
};

struct table *table_new(const struct table_col *cols, unsigned ncols)
{
    struct table *t = cli_xmalloc(sizeof(*t));

    *t = (struct table){ .cols = cols, .ncols = ncols };
    return t;
}

void table_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cells, cap * t->ncols * sizeof(*grown));
        if (!grown)
            cli_xmalloc(SIZE_MAX); /* reports and exits */
        t->cells = grown;
        t->cap = cap;
    }
    for (unsigned c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = cli_xstrdup(cells[c][0] ? cells[c] : "-");
    t->nrows++;
}

static size_t width(const struct table *t, unsigned c)
{
    size_t w = strlen(t->cols[c].title);

    for (size_t r = 0; r < t->nrows; r++) {
        size_t n = strlen(t->cells[r * t->ncols + c]);
        w = n > w ? n : w;
    }
    return w;
}

static void print_line(const struct table *t, const size_t *w, const char *const *cells, FILE *f)
{
    for (unsigned c = 0; c < t->ncols; c++) {
        bool last = c + 1 == t->ncols;
        int pad = (int)w[c];
        /* No trailing blanks after the last column. */
        if (t->cols[c].right)
            fprintf(f, "%*s", pad, cells[c]);
        else
            fprintf(f, "%-*s", last ? 0 : pad, cells[c]);
        if (last)
            fputc('\n', f);
        else
            fprintf(f, "%*s", TABLE_GAP, "");
    }
}

void table_print(const struct table *t, FILE *f)
{
    size_t *w = cli_xmalloc(t->ncols * sizeof(*w));
    const char **titles = cli_xmalloc(t->ncols * sizeof(*titles));

    for (unsigned c = 0; c < t->ncols; c++) {
        w[c] = width(t, c);
        titles[c] = t->cols[c].title;
    }
    print_line(t, w, titles, f);
    for (size_t r = 0; r < t->nrows; r++)
        print_line(t, w, (const char *const *)&t->cells[r * t->ncols], f);
    free(titles);
    free(w);
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
