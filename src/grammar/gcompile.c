/* gcompile.c - syntax tree to automaton: one Thompson NFA per rule over
 * bytes, with call edges; checks (left recursion, rules that never finish,
 * size); the distance of every state to its rule's end; byte classes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/common.h"
#include "gint.h"

/* ---------------------------------------------------------------------------
 * UTF-8 byte sequences of a code point range
 * ------------------------------------------------------------------------- */

typedef struct useq {
    uint8_t lo[4], hi[4];
    uint8_t n;
} useq;

typedef struct useqs {
    useq *v;
    size_t n, cap;
    bool oom;
} useqs;

static void useq_push(useqs *s, const useq *q) {
    if (s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        useq *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) { s->oom = true; return; }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = *q;
}

/* Split [lo, hi] (no surrogates inside) into ranges whose UTF-8 encodings
 * are "rectangular": every byte position ranges independently. */
static void utf8_split(uint32_t lo, uint32_t hi, useqs *out) {
    if (lo > hi) return;
    static const uint32_t maxs[3] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++) {
        if (lo <= maxs[i] && hi > maxs[i]) {
            utf8_split(lo, maxs[i], out);
            utf8_split(maxs[i] + 1, hi, out);
            return;
        }
    }
    useq q;
    if (hi <= 0x7F) {
        q.n = 1;
        q.lo[0] = (uint8_t)lo;
        q.hi[0] = (uint8_t)hi;
        useq_push(out, &q);
        return;
    }
    for (int i = 1; i < 4; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                utf8_split(lo, lo | m, out);
                utf8_split((lo | m) + 1, hi, out);
                return;
            }
            if ((hi & m) != m) {
                utf8_split(lo, (hi & ~m) - 1, out);
                utf8_split(hi & ~m, hi, out);
                return;
            }
        }
    }
    uint8_t a[4], b[4];
    int n = smoe_utf8_encode(lo, a);
    smoe_utf8_encode(hi, b);
    q.n = (uint8_t)n;
    for (int i = 0; i < n; i++) { q.lo[i] = a[i]; q.hi[i] = b[i]; }
    useq_push(out, &q);
}

static int class_seqs(const gast *a, const gnode *nd, useqs *out) {
    out->n = 0;
    for (int32_t i = 0; i < nd->b; i++) {
        const uint32_t *r = &a->ranges[2 * (size_t)(nd->a + i)];
        utf8_split(r[0], r[1], out);
    }
    return out->oom ? -1 : 0;
}

/* ---------------------------------------------------------------------------
 * Size estimate (before building anything)
 * ------------------------------------------------------------------------- */

#define EST_CAP ((int64_t)1 << 40)

static int64_t sat_add(int64_t a, int64_t b) { return a + b > EST_CAP ? EST_CAP : a + b; }
static int64_t sat_mul(int64_t a, int64_t b) {
    if (a == 0 || b == 0) return 0;
    return a > EST_CAP / b ? EST_CAP : a * b;
}

static int64_t estimate(const gast *a, int32_t n, useqs *tmp) {
    const gnode *nd = &a->nodes[n];
    switch (nd->kind) {
    case GN_LIT: return nd->b;
    case GN_REF: return 1;
    case GN_CLASS: {
        if (class_seqs(a, nd, tmp)) return EST_CAP;
        int64_t s = 1;
        for (size_t i = 0; i < tmp->n; i++) s += tmp->v[i].n;
        return s;
    }
    case GN_SEQ: case GN_ALT: {
        int64_t s = 1;
        for (int32_t c = nd->first; c >= 0; c = a->nodes[c].next) s = sat_add(s, estimate(a, c, tmp) + 1);
        return s;
    }
    case GN_REP: {
        int64_t copies = nd->b < 0 ? (int64_t)nd->a + 1 : nd->b;
        return sat_add(sat_mul(estimate(a, nd->first, tmp) + 1, copies), 2);
    }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Thompson construction
 * ------------------------------------------------------------------------- */

typedef struct bedge {
    int32_t from;
    gedge e;
} bedge;

typedef struct builder {
    const gast *ast;
    int32_t n_states, cap_states;
    uint8_t *flags;
    int32_t *srule;
    bedge *edges;
    size_t n_edges, cap_edges;
    int32_t cur_rule;
    useqs seqs;
    char *err;
} builder;

static int32_t new_state(builder *b) {
    if (b->n_states >= GR_MAX_STATES) return smoe_errf(b->err, "grammar too large: more than %d automaton states", GR_MAX_STATES), -1;
    if (b->n_states == b->cap_states) {
        int32_t cap = b->cap_states ? b->cap_states * 2 : 1024;
        uint8_t *nf = realloc(b->flags, (size_t)cap);
        if (nf) b->flags = nf;
        int32_t *nr = realloc(b->srule, (size_t)cap * sizeof *nr);
        if (nr) b->srule = nr;
        if (!nf || !nr) return smoe_errf(b->err, "out of memory"), -1;
        b->cap_states = cap;
    }
    b->flags[b->n_states] = 0;
    b->srule[b->n_states] = b->cur_rule;
    return b->n_states++;
}

static int add_edge(builder *b, int32_t from, int kind, int lo, int hi, int32_t target, int32_t rule) {
    if (b->n_edges == b->cap_edges) {
        size_t cap = b->cap_edges ? b->cap_edges * 2 : 2048;
        bedge *ne = realloc(b->edges, cap * sizeof *ne);
        if (!ne) return smoe_errf(b->err, "out of memory");
        b->edges = ne;
        b->cap_edges = cap;
    }
    bedge *e = &b->edges[b->n_edges++];
    e->from = from;
    e->e.kind = (uint8_t)kind;
    e->e.lo = (uint8_t)lo;
    e->e.hi = (uint8_t)hi;
    e->e.target = target;
    e->e.rule = rule;
    if (kind == GE_BYTE) b->flags[from] |= GS_BYTES;
    return 0;
}

/* Build node n starting at state in; returns the end state (-1 on error).
 * No construction adds edges into its `in` state, so alternatives may share
 * it; loops get a fresh hub state. */
static int32_t build(builder *b, int32_t n, int32_t in) {
    const gast *a = b->ast;
    const gnode *nd = &a->nodes[n];
    switch (nd->kind) {
    case GN_LIT: {
        int32_t cur = in;
        for (int32_t i = 0; i < nd->b; i++) {
            int32_t s = new_state(b);
            if (s < 0) return -1;
            uint8_t byte = a->bytes[nd->a + i];
            if (add_edge(b, cur, GE_BYTE, byte, byte, s, -1)) return -1;
            cur = s;
        }
        return cur;
    }
    case GN_CLASS: {
        if (class_seqs(a, nd, &b->seqs)) return smoe_errf(b->err, "out of memory"), -1;
        int32_t out = new_state(b);
        if (out < 0) return -1;
        for (size_t i = 0; i < b->seqs.n; i++) {
            const useq q = b->seqs.v[i];
            int32_t cur = in;
            for (int k = 0; k < q.n; k++) {
                int32_t s = k + 1 == q.n ? out : new_state(b);
                if (s < 0 || add_edge(b, cur, GE_BYTE, q.lo[k], q.hi[k], s, -1)) return -1;
                cur = s;
            }
        }
        return out;
    }
    case GN_REF: {
        int32_t out = new_state(b);
        if (out < 0 || add_edge(b, in, GE_CALL, 0, 0, out, nd->a)) return -1;
        return out;
    }
    case GN_SEQ: {
        int32_t cur = in;
        for (int32_t c = nd->first; c >= 0; c = a->nodes[c].next)
            if ((cur = build(b, c, cur)) < 0) return -1;
        return cur;
    }
    case GN_ALT: {
        int32_t out = new_state(b);
        if (out < 0) return -1;
        for (int32_t c = nd->first; c >= 0; c = a->nodes[c].next) {
            int32_t e = build(b, c, in);
            if (e < 0 || add_edge(b, e, GE_EPS, 0, 0, out, -1)) return -1;
        }
        return out;
    }
    case GN_REP: {
        int32_t cur = in;
        for (int32_t i = 0; i < nd->a; i++)
            if ((cur = build(b, nd->first, cur)) < 0) return -1;
        if (nd->b < 0) {
            int32_t hub = new_state(b);
            if (hub < 0 || add_edge(b, cur, GE_EPS, 0, 0, hub, -1)) return -1;
            int32_t e = build(b, nd->first, hub);
            if (e < 0 || add_edge(b, e, GE_EPS, 0, 0, hub, -1)) return -1;
            return hub;
        }
        if (nd->b == nd->a) return cur;
        /* x{0,k} as (x (x ...)?)?: stopping after any copy, never ambiguous */
        int32_t out = new_state(b);
        if (out < 0) return -1;
        for (int32_t i = nd->a; i < nd->b; i++) {
            if (add_edge(b, cur, GE_EPS, 0, 0, out, -1)) return -1;
            if ((cur = build(b, nd->first, cur)) < 0) return -1;
        }
        if (add_edge(b, cur, GE_EPS, 0, 0, out, -1)) return -1;
        return out;
    }
    }
    return -1;
}

static int cmp_bedge(const void *x, const void *y) {
    const bedge *a = x, *b = y;
    if (a->from != b->from) return a->from < b->from ? -1 : 1;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Distances: fewest bytes from each state to its rule's final state
 * ------------------------------------------------------------------------- */

static uint32_t add_sat(uint32_t a, uint32_t b) {
    return (a == GR_INF || b == GR_INF || a + b < a || a + b == GR_INF) ? GR_INF : a + b;
}

static uint32_t state_dist(const smoe_grammar *g, int32_t q) {
    if (g->sflags[q] & GS_FINAL) return 0;
    uint32_t best = GR_INF;
    for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++) {
        const gedge *e = &g->edges[i];
        uint32_t d;
        if (e->kind == GE_BYTE) d = add_sat(1, g->dist[e->target]);
        else if (e->kind == GE_EPS) d = g->dist[e->target];
        else d = add_sat(g->dist[g->rules[e->rule].start], g->dist[e->target]);
        if (d < best) best = d;
    }
    return best;
}

static int compute_dist(smoe_grammar *g, char *err) {
    int32_t N = g->n_states;
    /* reverse dependencies: the states whose distance depends on state t */
    int32_t *cnt = calloc((size_t)N + 1, sizeof *cnt);
    int32_t *queue = malloc((size_t)N * sizeof *queue);
    uint8_t *inq = calloc((size_t)N, 1);
    int32_t *rev = NULL;
    int rc = -1;
    if (!cnt || !queue || !inq) goto oom;
    size_t n_dep = 0;
    for (int32_t q = 0; q < N; q++)
        for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++) {
            cnt[g->edges[i].target]++;
            n_dep++;
            if (g->edges[i].kind == GE_CALL) { cnt[g->rules[g->edges[i].rule].start]++; n_dep++; }
        }
    rev = malloc((n_dep + 1) * sizeof *rev);
    if (!rev) goto oom;
    /* prefix sums: cnt[t] becomes the end of t's slice, filled backwards */
    int32_t acc = 0;
    for (int32_t t = 0; t < N; t++) { acc += cnt[t]; cnt[t] = acc; }
    cnt[N] = acc;
    for (int32_t q = 0; q < N; q++)
        for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++) {
            rev[--cnt[g->edges[i].target]] = q;
            if (g->edges[i].kind == GE_CALL) rev[--cnt[g->rules[g->edges[i].rule].start]] = q;
        }
    /* now t's dependents are rev[cnt[t] .. cnt[t+1]) */
    int32_t head = 0, tail = 0, len = 0;
    for (int32_t q = 0; q < N; q++) {
        g->dist[q] = GR_INF;
        if (g->sflags[q] & GS_FINAL) {
            g->dist[q] = 0;
            queue[tail] = q;
            tail = (tail + 1) % N;
            len++;
            inq[q] = 1;
        }
    }
    while (len > 0) {
        int32_t t = queue[head];
        head = (head + 1) % N;
        len--;
        inq[t] = 0;
        for (int32_t k = cnt[t]; k < cnt[t + 1]; k++) {
            int32_t q = rev[k];
            uint32_t d = state_dist(g, q);
            if (d < g->dist[q]) {
                g->dist[q] = d;
                if (!inq[q]) {
                    queue[tail] = q;
                    tail = (tail + 1) % N;
                    len++;
                    inq[q] = 1;
                }
            }
        }
    }
    rc = 0;
    goto done;
oom:
    smoe_errf(err, "out of memory");
done:
    free(cnt);
    free(queue);
    free(inq);
    free(rev);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Checks: every rule reachable from root can finish; no left recursion
 * ------------------------------------------------------------------------- */

static int check_rules(smoe_grammar *g, const int32_t *srule, char *err) {
    int32_t R = g->n_rules, N = g->n_states;
    int rc = -1;
    /* call graph (all calls) and left-call graph (calls reachable before any byte) */
    uint8_t *reach = calloc((size_t)R, 1);
    int32_t *stack = malloc(((size_t)N + (size_t)R + 1) * sizeof *stack);
    uint32_t *stamp = calloc((size_t)N, sizeof *stamp);
    int32_t *lc_off = calloc((size_t)R + 1, sizeof *lc_off);
    int32_t *lc = NULL;
    size_t n_lc = 0, cap_lc = 0;
    uint8_t *color = calloc((size_t)R, 1);
    int32_t *it = calloc((size_t)R, sizeof *it);
    if (!reach || !stack || !stamp || !lc_off || !color || !it) goto oom;

    /* reachability over calls, by rule */
    int32_t sp = 0;
    reach[g->root] = 1;
    stack[sp++] = g->root;
    /* states of each rule are contiguous? Not necessarily: scan call edges by state. */
    {
        /* rule -> list of callees via a pass over all states */
        int32_t *cc = calloc((size_t)R + 1, sizeof *cc);
        if (!cc) goto oom;
        for (int32_t q = 0; q < N; q++)
            for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++)
                if (g->edges[i].kind == GE_CALL) cc[srule[q] + 1]++;
        for (int32_t r = 0; r < R; r++) cc[r + 1] += cc[r];
        int32_t *callees = malloc(((size_t)cc[R] + 1) * sizeof *callees);
        int32_t *fill = malloc(((size_t)R + 1) * sizeof *fill);
        if (!callees || !fill) { free(cc); free(callees); free(fill); goto oom; }
        memcpy(fill, cc, (size_t)R * sizeof *fill);
        for (int32_t q = 0; q < N; q++)
            for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++)
                if (g->edges[i].kind == GE_CALL) callees[fill[srule[q]]++] = g->edges[i].rule;
        while (sp > 0) {
            int32_t r = stack[--sp];
            for (int32_t k = cc[r]; k < cc[r + 1]; k++)
                if (!reach[callees[k]]) { reach[callees[k]] = 1; stack[sp++] = callees[k]; }
        }
        free(cc);
        free(callees);
        free(fill);
    }
    for (int32_t r = 0; r < R; r++) {
        if (reach[r] && g->dist[g->rules[r].start] == GR_INF) {
            smoe_errf(err, r == g->root ? "the grammar accepts no finite document (rule '%s' can never finish)"
                                        : "rule '%s' can never finish (every alternative needs more of itself)",
                      g->rules[r].name);
            goto done;
        }
    }

    /* left calls: from each rule's start, follow epsilon edges and calls of
     * rules that can match nothing (their return state is reached too) */
    for (int32_t r = 0; r < R; r++) {
        lc_off[r] = (int32_t)n_lc;
        if (!reach[r]) continue;
        sp = 0;
        stack[sp++] = g->rules[r].start;
        stamp[g->rules[r].start] = (uint32_t)r + 1;
        while (sp > 0) {
            int32_t q = stack[--sp];
            for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++) {
                const gedge *e = &g->edges[i];
                int32_t next = -1;
                if (e->kind == GE_EPS) next = e->target;
                else if (e->kind == GE_CALL) {
                    if (n_lc == cap_lc) {
                        cap_lc = cap_lc ? cap_lc * 2 : 256;
                        int32_t *nl = realloc(lc, cap_lc * sizeof *nl);
                        if (!nl) goto oom;
                        lc = nl;
                    }
                    lc[n_lc++] = e->rule;
                    if (g->dist[g->rules[e->rule].start] == 0) next = e->target;
                }
                if (next >= 0 && stamp[next] != (uint32_t)r + 1) {
                    stamp[next] = (uint32_t)r + 1;
                    stack[sp++] = next;
                }
            }
        }
    }
    lc_off[R] = (int32_t)n_lc;
    /* cycle search, iterative DFS: color 1 = on the path, 2 = done */
    for (int32_t r0 = 0; r0 < R; r0++) {
        if (color[r0] || !reach[r0]) continue;
        sp = 0;
        stack[sp++] = r0;
        color[r0] = 1;
        it[r0] = lc_off[r0];
        while (sp > 0) {
            int32_t r = stack[sp - 1];
            if (it[r] < lc_off[r + 1]) {
                int32_t c = lc[it[r]++];
                if (color[c] == 1) {
                    smoe_errf(err, "rule '%s' is left-recursive (it can reach itself before reading any text)",
                              g->rules[c].name);
                    goto done;
                }
                if (!color[c]) {
                    color[c] = 1;
                    it[c] = lc_off[c];
                    stack[sp++] = c;
                }
            } else {
                color[r] = 2;
                sp--;
            }
        }
    }
    rc = 0;
    goto done;
oom:
    smoe_errf(err, "out of memory");
done:
    free(reach);
    free(stack);
    free(stamp);
    free(lc_off);
    free(lc);
    free(color);
    free(it);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------- */

int gr_compile(const gast *a, smoe_grammar *g, char *err) {
    int32_t root = -1;
    for (int32_t r = 0; r < a->n_rules; r++)
        if (!strcmp(a->names[r], "root")) root = r;
    if (root < 0) return smoe_errf(err, "the grammar has no rule named 'root'");
    builder b = {.ast = a, .err = err};
    int rc = -1;
    int64_t est = 0;
    for (int32_t r = 0; r < a->n_rules; r++) est = sat_add(est, estimate(a, a->body[r], &b.seqs) + 2);
    if (est > GR_MAX_STATES)
        { smoe_errf(err, "grammar too large: its repetitions expand to more than %d automaton states", GR_MAX_STATES); goto out; }
    g->n_rules = a->n_rules;
    g->root = root;
    g->rules = calloc((size_t)a->n_rules, sizeof *g->rules);
    if (!g->rules) { smoe_errf(err, "out of memory"); goto out; }
    for (int32_t r = 0; r < a->n_rules; r++) {
        g->rules[r].name = strdup(a->names[r]);
        if (!g->rules[r].name) { smoe_errf(err, "out of memory"); goto out; }
        b.cur_rule = r;
        int32_t start = new_state(&b);
        if (start < 0) goto out;
        int32_t fin = build(&b, a->body[r], start);
        if (fin < 0) goto out;
        b.flags[fin] |= GS_FINAL;
        g->rules[r].start = start;
        g->rules[r].final = fin;
    }
    /* CSR */
    int32_t N = b.n_states;
    if (b.n_edges > 1) qsort(b.edges, b.n_edges, sizeof *b.edges, cmp_bedge); /* edges is NULL when there are none */
    g->n_states = N;
    g->edge_off = calloc((size_t)N + 1, sizeof *g->edge_off);
    g->edges = malloc((b.n_edges + 1) * sizeof *g->edges);
    g->sflags = malloc((size_t)N);
    g->dist = malloc((size_t)N * sizeof *g->dist);
    if (!g->edge_off || !g->edges || !g->sflags || !g->dist) { smoe_errf(err, "out of memory"); goto out; }
    for (size_t i = 0; i < b.n_edges; i++) {
        g->edges[i] = b.edges[i].e;
        g->edge_off[b.edges[i].from + 1]++;
    }
    for (int32_t q = 0; q < N; q++) g->edge_off[q + 1] += g->edge_off[q];
    memcpy(g->sflags, b.flags, (size_t)N);
    /* byte classes: bytes that no edge tells apart share a class */
    uint8_t cut[257] = {0};
    for (size_t i = 0; i < b.n_edges; i++) {
        if (b.edges[i].e.kind != GE_BYTE) continue;
        cut[b.edges[i].e.lo] = 1;
        cut[b.edges[i].e.hi + 1] = 1;
    }
    int32_t c = -1;
    for (int x = 0; x < 256; x++) {
        if (x == 0 || cut[x]) { c++; g->class_rep[c] = (uint8_t)x; }
        g->byte_class[x] = (uint8_t)c;
    }
    g->n_classes = c + 1;
    if (compute_dist(g, err)) goto out;
    if (check_rules(g, b.srule, err)) goto out;
    rc = 0;
out:
    free(b.flags);
    free(b.srule);
    free(b.edges);
    free(b.seqs.v);
    return rc;
}

static void grammar_release(smoe_grammar *g) {
    if (!g) return;
    gr_rt_free(g->rt);
    for (int32_t r = 0; r < g->n_rules && g->rules; r++) free(g->rules[r].name);
    free(g->rules);
    free(g->edge_off);
    free(g->edges);
    free(g->sflags);
    free(g->dist);
    free(g);
}

smoe_grammar *smoe_grammar_new(const char *text, size_t len, char *err) {
    double t0 = smoe_now_ms();
    gast ast;
    if (gr_parse(text, len, &ast, err)) return NULL;
    smoe_grammar *g = calloc(1, sizeof *g);
    if (!g) { gr_ast_free(&ast); smoe_errf(err, "out of memory"); return NULL; }
    atomic_init(&g->refs, 1);
    int rc = gr_compile(&ast, g, err);
    gr_ast_free(&ast);
    if (rc || !(g->rt = gr_rt_new(g, err))) { grammar_release(g); return NULL; }
    g->compile_ms = smoe_now_ms() - t0;
    return g;
}

smoe_grammar *smoe_grammar_ref(smoe_grammar *g) {
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void smoe_grammar_free(smoe_grammar *g) {
    if (g && atomic_fetch_sub(&g->refs, 1) == 1) grammar_release(g);
}
