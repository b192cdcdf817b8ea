/* gmatch.c - the grammar runtime: parser configurations, the lazily built
 * DFA over them, the vocabulary trie and token masks.
 *
 * A configuration is the set of live parser stacks.  A stack is a pair
 * (q, P): q is an NFA state that reads a byte next (GS_BYTES), P a node of
 * a hash-consed return stack (P = 0: empty; node = (return state, parent)),
 * packed into one uint64 (q << 32 | P).  The epsilon closure follows
 * epsilon edges, pushes return states on calls and pops them at a rule's
 * final state; reaching the root rule's end on the empty stack makes the
 * configuration accepting.  Configurations are sorted and interned as DFA
 * states; transitions are filled in per (state, byte class) on first use.
 *
 * All of it lives in the grammar (struct grt), shared by its matchers
 * under one mutex.  When the DFA grows past its memory limit it is
 * flushed (the stack nodes stay); each matcher keeps its configuration
 * and re-interns it after a flush. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"
#include "gint.h"

#define DS_MAX_TRANS  ((size_t)32 << 20)   /* transition entries before a flush (128 MiB) */
#define DS_MAX_CFG    ((size_t)16 << 20)   /* configuration entries before a flush */
#define MASK_MAX_BYTES ((size_t)64 << 20)  /* mask cache */

enum { T_UNKNOWN = -2, T_DEAD = -1, T_ERROR = -3 };

typedef struct gssn {
    int32_t ret, parent;
    uint32_t cumd;     /* dist[ret] + cumd[parent]: bytes to empty the stack */
} gssn;

typedef struct dst {
    uint32_t cfg_off, cfg_len;
    uint32_t dist;     /* fewest bytes that complete the document */
    uint32_t hash;
    int32_t mask;      /* mask cache slot, -1 when none */
    uint32_t maxdist;  /* of the cached mask: largest dist after an allowed token */
    int32_t count;     /* tokens allowed by the cached mask */
    uint8_t accept;
} dst;

typedef struct gtnode {
    uint8_t byte, depth;
    uint16_t ntok;
    int32_t end;       /* index after the subtree */
    int32_t tok0;      /* first of ntok entries in toks[] */
} gtnode;

struct smoe_gvocab {
    int32_t n_tokens, eos;
    gtnode *nodes;
    int32_t n_nodes;
    int32_t *toks;
    uint32_t *tb_off;
    uint8_t *tb_len;   /* 0: the token has no text (never matches) */
    uint8_t *tbytes;
    size_t words;
};

typedef struct grt {
    pthread_mutex_t lock;
    /* return-stack nodes */
    gssn *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *nslots;
    size_t n_nslots;
    /* DFA */
    dst *ds;
    int32_t n_ds, cap_ds;
    uint64_t *cfg;
    size_t n_cfg, cap_cfg;
    int32_t *trans;
    size_t cap_trans;
    int32_t *dslots;
    size_t n_dslots;
    uint32_t epoch;
    /* mask cache */
    const smoe_gvocab *mvocab;
    uint64_t *masks;
    int32_t n_masks, cap_masks;
    size_t masks_alloc;
    int64_t masks_made;
    /* closure scratch */
    uint64_t *work;
    size_t n_work, cap_work;
    uint64_t *out;
    size_t n_out, cap_out;
    uint64_t *vkeys;
    uint32_t *vstamp;
    size_t n_vslots, n_visited;
    uint32_t vgen;
    int accept;
    int32_t walk[258];
    char errmsg[160];
} grt;

struct smoe_gmatch {
    smoe_grammar *g;
    const smoe_gvocab *v;
    int32_t ds;
    uint32_t epoch;
    uint64_t *cfg;     /* the configuration of ds, to re-intern after a flush */
    uint32_t n_cfg, cap_cfg;
    uint8_t accept;
    uint64_t *scratch; /* a mask */
};

/* ---------------------------------------------------------------------------
 * Hashing and growth helpers
 * ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

static int rt_fail(grt *rt, const char *msg) {
    if (!rt->errmsg[0]) snprintf(rt->errmsg, sizeof rt->errmsg, "%s", msg);
    return -1;
}

/* ---------------------------------------------------------------------------
 * Return-stack nodes
 * ------------------------------------------------------------------------- */

static int nodes_rehash(grt *rt, size_t ns) {
    int32_t *sl = malloc(ns * sizeof *sl);
    if (!sl) return -1;
    for (size_t i = 0; i < ns; i++) sl[i] = -1;
    for (int32_t id = 1; id < rt->n_nodes; id++) {
        size_t h = (size_t)mix64(((uint64_t)(uint32_t)rt->nodes[id].ret << 32) | (uint32_t)rt->nodes[id].parent) & (ns - 1);
        while (sl[h] >= 0) h = (h + 1) & (ns - 1);
        sl[h] = id;
    }
    free(rt->nslots);
    rt->nslots = sl;
    rt->n_nslots = ns;
    return 0;
}

static int32_t node_get(grt *rt, const smoe_grammar *g, int32_t ret, int32_t parent) {
    if ((size_t)rt->n_nodes * 2 >= rt->n_nslots && nodes_rehash(rt, rt->n_nslots * 2)) return rt_fail(rt, "out of memory");
    uint64_t key = ((uint64_t)(uint32_t)ret << 32) | (uint32_t)parent;
    size_t h = (size_t)mix64(key) & (rt->n_nslots - 1);
    while (rt->nslots[h] >= 0) {
        const gssn *n = &rt->nodes[rt->nslots[h]];
        if (n->ret == ret && n->parent == parent) return rt->nslots[h];
        h = (h + 1) & (rt->n_nslots - 1);
    }
    if (rt->n_nodes >= GR_MAX_GSS) return rt_fail(rt, "grammar state space exhausted (too many nested rules)");
    if (rt->n_nodes == rt->cap_nodes) {
        size_t cap = (size_t)rt->cap_nodes;
        if (grow((void **)&rt->nodes, &cap, (size_t)rt->n_nodes + 1, sizeof *rt->nodes)) return rt_fail(rt, "out of memory");
        rt->cap_nodes = (int32_t)cap;
    }
    gssn *n = &rt->nodes[rt->n_nodes];
    n->ret = ret;
    n->parent = parent;
    uint32_t a = g->dist[ret], b = rt->nodes[parent].cumd;
    n->cumd = (a == GR_INF || b == GR_INF || a + b < a) ? GR_INF : a + b;
    rt->nslots[h] = rt->n_nodes;
    return rt->n_nodes++;
}

/* ---------------------------------------------------------------------------
 * Closure
 * ------------------------------------------------------------------------- */

static int vis_rehash(grt *rt, size_t ns) {
    uint64_t *k = malloc(ns * sizeof *k);
    uint32_t *st = calloc(ns, sizeof *st);
    if (!k || !st) { free(k); free(st); return -1; }
    /* carry over the keys visited by the closure in progress */
    for (size_t i = 0; i < rt->n_vslots; i++) {
        if (rt->vstamp[i] != rt->vgen) continue;
        size_t h = (size_t)mix64(rt->vkeys[i]) & (ns - 1);
        while (st[h]) h = (h + 1) & (ns - 1);
        st[h] = 1;
        k[h] = rt->vkeys[i];
    }
    free(rt->vkeys);
    free(rt->vstamp);
    rt->vkeys = k;
    rt->vstamp = st;
    rt->n_vslots = ns;
    rt->vgen = 1;
    return 0;
}

static void closure_begin(grt *rt) {
    rt->n_work = rt->n_out = rt->n_visited = 0;
    rt->accept = 0;
    if (++rt->vgen == 0) { memset(rt->vstamp, 0, rt->n_vslots * sizeof *rt->vstamp); rt->vgen = 1; }
}

/* true when newly inserted */
static bool visit(grt *rt, uint64_t key) {
    size_t m = rt->n_vslots - 1, h = (size_t)mix64(key) & m;
    while (rt->vstamp[h] == rt->vgen) {
        if (rt->vkeys[h] == key) return false;
        h = (h + 1) & m;
    }
    rt->vstamp[h] = rt->vgen;
    rt->vkeys[h] = key;
    rt->n_visited++;
    return true;
}

static int push_work(grt *rt, int32_t q, int32_t P) {
    if (rt->n_work == rt->cap_work && grow((void **)&rt->work, &rt->cap_work, rt->n_work + 1, sizeof *rt->work))
        return rt_fail(rt, "out of memory");
    rt->work[rt->n_work++] = ((uint64_t)(uint32_t)q << 32) | (uint32_t)P;
    return 0;
}

static int run_closure(grt *rt, const smoe_grammar *g) {
    while (rt->n_work > 0) {
        uint64_t key = rt->work[--rt->n_work];
        if (rt->n_visited * 2 >= rt->n_vslots) {
            if (rt->n_visited >= (size_t)GR_MAX_CONFIG * 64)
                return rt_fail(rt, "the grammar is too ambiguous (too many parses alive at once)");
            if (vis_rehash(rt, rt->n_vslots * 2)) return rt_fail(rt, "out of memory");
        }
        if (!visit(rt, key)) continue;
        int32_t q = (int32_t)(key >> 32), P = (int32_t)(uint32_t)key;
        if (g->dist[q] == GR_INF) continue; /* can never finish */
        uint8_t fl = g->sflags[q];
        if (fl & GS_BYTES) {
            if (rt->n_out >= GR_MAX_CONFIG) return rt_fail(rt, "the grammar is too ambiguous (too many parses alive at once)");
            if (rt->n_out == rt->cap_out && grow((void **)&rt->out, &rt->cap_out, rt->n_out + 1, sizeof *rt->out))
                return rt_fail(rt, "out of memory");
            rt->out[rt->n_out++] = key;
        }
        for (int32_t i = g->edge_off[q]; i < g->edge_off[q + 1]; i++) {
            const gedge *e = &g->edges[i];
            if (e->kind == GE_EPS) {
                if (push_work(rt, e->target, P)) return -1;
            } else if (e->kind == GE_CALL) {
                int32_t n = node_get(rt, g, e->target, P);
                if (n < 0 || push_work(rt, g->rules[e->rule].start, n)) return -1;
            }
        }
        if (fl & GS_FINAL) {
            if (P == 0) rt->accept = 1;
            else if (push_work(rt, rt->nodes[P].ret, rt->nodes[P].parent)) return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * DFA states
 * ------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t cfg_hash(const uint64_t *k, size_t n, int accept) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)accept ^ ((uint64_t)n << 1);
    for (size_t i = 0; i < n; i++) h = mix64(h ^ k[i]) + i;
    return (uint32_t)(h ^ (h >> 32));
}

static int ds_rehash(grt *rt, size_t ns) {
    int32_t *sl = malloc(ns * sizeof *sl);
    if (!sl) return -1;
    for (size_t i = 0; i < ns; i++) sl[i] = -1;
    for (int32_t id = 0; id < rt->n_ds; id++) {
        size_t h = rt->ds[id].hash & (ns - 1);
        while (sl[h] >= 0) h = (h + 1) & (ns - 1);
        sl[h] = id;
    }
    free(rt->dslots);
    rt->dslots = sl;
    rt->n_dslots = ns;
    return 0;
}

/* Intern keys[0..n) (sorted here) with accept; T_DEAD when empty. */
static int32_t intern(grt *rt, const smoe_grammar *g, uint64_t *keys, size_t n, int accept) {
    if (n == 0 && !accept) return T_DEAD;
    if (n > 1) qsort(keys, n, sizeof *keys, cmp_u64); /* keys may be NULL when n == 0 */
    uint32_t h = cfg_hash(keys, n, accept);
    if ((size_t)(rt->n_ds + 1) * 2 > rt->n_dslots && ds_rehash(rt, rt->n_dslots * 2)) return rt_fail(rt, "out of memory"), T_ERROR;
    size_t m = rt->n_dslots - 1, s = h & m;
    while (rt->dslots[s] >= 0) {
        const dst *d = &rt->ds[rt->dslots[s]];
        if (d->hash == h && d->accept == accept && d->cfg_len == n &&
            (n == 0 || !memcmp(rt->cfg + d->cfg_off, keys, n * sizeof *keys)))
            return rt->dslots[s];
        s = (s + 1) & m;
    }
    size_t nc = (size_t)g->n_classes;
    size_t cap_ds = (size_t)rt->cap_ds;
    if (grow((void **)&rt->ds, &cap_ds, (size_t)rt->n_ds + 1, sizeof *rt->ds) ||
        grow((void **)&rt->cfg, &rt->cap_cfg, rt->n_cfg + n, sizeof *rt->cfg) ||
        grow((void **)&rt->trans, &rt->cap_trans, ((size_t)rt->n_ds + 1) * nc, sizeof *rt->trans))
        return rt_fail(rt, "out of memory"), T_ERROR;
    rt->cap_ds = (int32_t)cap_ds;
    int32_t id = rt->n_ds++;
    dst *d = &rt->ds[id];
    d->cfg_off = (uint32_t)rt->n_cfg;
    d->cfg_len = (uint32_t)n;
    if (n) memcpy(rt->cfg + rt->n_cfg, keys, n * sizeof *keys); /* cfg and keys may be NULL when n == 0 */
    rt->n_cfg += n;
    d->hash = h;
    d->accept = (uint8_t)accept;
    d->mask = -1;
    d->maxdist = 0;
    d->count = 0;
    uint32_t best = accept ? 0 : GR_INF;
    for (size_t i = 0; i < n && best; i++) {
        int32_t q = (int32_t)(keys[i] >> 32), P = (int32_t)(uint32_t)keys[i];
        uint32_t a = g->dist[q], b = rt->nodes[P].cumd;
        uint32_t dd = (a == GR_INF || b == GR_INF || a + b < a) ? GR_INF : a + b;
        if (dd < best) best = dd;
    }
    d->dist = best;
    int32_t *t = rt->trans + (size_t)id * nc;
    for (size_t c = 0; c < nc; c++) t[c] = T_UNKNOWN;
    rt->dslots[s] = id;
    return id;
}

/* The transition of state s on byte (computed and stored on first use). */
static int32_t step(grt *rt, const smoe_grammar *g, int32_t s, uint8_t byte) {
    size_t slot = (size_t)s * (size_t)g->n_classes + g->byte_class[byte];
    int32_t t = rt->trans[slot];
    if (t != T_UNKNOWN) return t;
    closure_begin(rt);
    uint32_t off = rt->ds[s].cfg_off, len = rt->ds[s].cfg_len;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t key = rt->cfg[off + i];
        int32_t q = (int32_t)(key >> 32), P = (int32_t)(uint32_t)key;
        for (int32_t k = g->edge_off[q]; k < g->edge_off[q + 1]; k++) {
            const gedge *e = &g->edges[k];
            if (e->kind == GE_BYTE && byte >= e->lo && byte <= e->hi && push_work(rt, e->target, P)) return T_ERROR;
        }
    }
    if (run_closure(rt, g)) return T_ERROR;
    t = intern(rt, g, rt->out, rt->n_out, rt->accept);
    if (t == T_ERROR) return T_ERROR;
    rt->trans[slot] = t;
    return t;
}

static int32_t initial_state(grt *rt, const smoe_grammar *g) {
    closure_begin(rt);
    if (push_work(rt, g->rules[g->root].start, 0) || run_closure(rt, g)) return T_ERROR;
    return intern(rt, g, rt->out, rt->n_out, rt->accept);
}

static void rt_flush(grt *rt) {
    rt->n_ds = 0;
    rt->n_cfg = 0;
    for (size_t i = 0; i < rt->n_dslots; i++) rt->dslots[i] = -1;
    rt->n_masks = 0;
    rt->epoch++;
}

grt *gr_rt_new(const smoe_grammar *g, char *err) {
    (void)g;
    grt *rt = calloc(1, sizeof *rt);
    if (!rt) return smoe_errf(err, "out of memory"), NULL;
    pthread_mutex_init(&rt->lock, NULL);
    rt->cap_nodes = 1024;
    rt->nodes = malloc((size_t)rt->cap_nodes * sizeof *rt->nodes);
    if (!rt->nodes || nodes_rehash(rt, 2048) || ds_rehash(rt, 1024) || vis_rehash(rt, 1u << 16)) {
        gr_rt_free(rt);
        return smoe_errf(err, "out of memory"), NULL;
    }
    rt->nodes[0] = (gssn){-1, -1, 0}; /* the empty stack */
    rt->n_nodes = 1;
    return rt;
}

void gr_rt_free(grt *rt) {
    if (!rt) return;
    pthread_mutex_destroy(&rt->lock);
    free(rt->nodes);
    free(rt->nslots);
    free(rt->ds);
    free(rt->cfg);
    free(rt->trans);
    free(rt->dslots);
    free(rt->masks);
    free(rt->work);
    free(rt->out);
    free(rt->vkeys);
    free(rt->vstamp);
    free(rt);
}

void smoe_grammar_get_info(smoe_grammar *g, smoe_grammar_info *out) {
    memset(out, 0, sizeof *out);
    out->n_rules = g->n_rules;
    out->n_states = g->n_states;
    out->n_classes = g->n_classes;
    out->compile_ms = g->compile_ms;
    pthread_mutex_lock(&g->rt->lock);
    out->n_dfa_states = g->rt->n_ds;
    out->n_masks_cached = g->rt->masks_made;
    pthread_mutex_unlock(&g->rt->lock);
}

/* ---------------------------------------------------------------------------
 * Vocabulary trie
 * ------------------------------------------------------------------------- */

typedef struct tent {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
} tent;

static int cmp_tent(const void *a, const void *b) {
    const tent *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void smoe_gvocab_free(smoe_gvocab *v) {
    if (!v) return;
    free(v->nodes);
    free(v->toks);
    free(v->tb_off);
    free(v->tb_len);
    free(v->tbytes);
    free(v);
}

int32_t smoe_gvocab_n_tokens(const smoe_gvocab *v) { return v->n_tokens; }
size_t smoe_gvocab_mask_words(const smoe_gvocab *v) { return v->words; }

smoe_gvocab *smoe_gvocab_new(const smoe_tokenizer *t, char *err) {
    const smoe_vocab *voc = smoe_tokenizer_vocab(t);
    int32_t n = voc->n_tokens;
    smoe_gvocab *v = calloc(1, sizeof *v);
    tent *ents = NULL;
    if (!v) goto oom;
    v->n_tokens = n;
    v->eos = voc->eos_id;
    v->words = ((size_t)n + 63) / 64;
    v->tb_off = calloc((size_t)n + 1, sizeof *v->tb_off);
    v->tb_len = calloc((size_t)n + 1, 1);
    ents = malloc(((size_t)n + 1) * sizeof *ents);
    if (!v->tb_off || !v->tb_len || !ents) goto oom;
    size_t cap = (size_t)n * 8 + 256, used = 0;
    v->tbytes = malloc(cap);
    if (!v->tbytes) goto oom;
    int32_t n_ent = 0;
    for (int32_t id = 0; id < n; id++) {
        int32_t ty = voc->types ? voc->types[id] : SMOE_TOKEN_NORMAL;
        if (ty == SMOE_TOKEN_CONTROL || ty == SMOE_TOKEN_UNKNOWN || ty == SMOE_TOKEN_UNUSED || id == voc->eos_id) continue;
        char buf[256];
        size_t len = smoe_token_bytes(t, id, buf, sizeof buf);
        if (len == 0 || len >= 255) continue; /* no text, or longer than the trie depth */
        if (used + len > cap) {
            while (used + len > cap) cap *= 2;
            uint8_t *nb = realloc(v->tbytes, cap);
            if (!nb) goto oom;
            v->tbytes = nb;
        }
        memcpy(v->tbytes + used, buf, len);
        v->tb_off[id] = (uint32_t)used;
        v->tb_len[id] = (uint8_t)len;
        used += len;
        n_ent++;
    }
    /* pointers only after tbytes stopped moving */
    n_ent = 0;
    for (int32_t id = 0; id < n; id++)
        if (v->tb_len[id]) ents[n_ent++] = (tent){v->tbytes + v->tb_off[id], v->tb_len[id], id};
    qsort(ents, (size_t)n_ent, sizeof *ents, cmp_tent);
    /* nodes: at most the total length of all entries */
    v->nodes = malloc((used + 1) * sizeof *v->nodes);
    v->toks = malloc(((size_t)n_ent + 1) * sizeof *v->toks);
    if (!v->nodes || !v->toks) goto oom;
    int32_t path[256], open = 0, n_toks = 0;
    const tent *prev = NULL;
    for (int32_t i = 0; i < n_ent; i++) {
        const tent *e = &ents[i];
        uint32_t l = 0;
        if (prev) while (l < prev->len && l < e->len && prev->p[l] == e->p[l]) l++;
        while ((uint32_t)open > l) v->nodes[path[--open]].end = v->n_nodes;
        for (uint32_t d = l; d < e->len; d++) {
            gtnode *nd = &v->nodes[v->n_nodes];
            nd->byte = e->p[d];
            nd->depth = (uint8_t)(d + 1);
            nd->ntok = 0;
            nd->tok0 = 0;
            nd->end = 0;
            path[open++] = v->n_nodes++;
        }
        gtnode *at = &v->nodes[path[e->len - 1]];
        if (at->ntok == 0) at->tok0 = n_toks;
        if (at->ntok < UINT16_MAX) {
            at->ntok++;
            v->toks[n_toks++] = e->id;
        }
        prev = e;
    }
    while (open > 0) v->nodes[path[--open]].end = v->n_nodes;
    free(ents);
    return v;
oom:
    free(ents);
    smoe_gvocab_free(v);
    smoe_errf(err, "out of memory");
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Matchers
 * ------------------------------------------------------------------------- */

static int save_cfg(smoe_gmatch *m, grt *rt) {
    const dst *d = &rt->ds[m->ds];
    if (d->cfg_len > m->cap_cfg) {
        uint64_t *nc = realloc(m->cfg, d->cfg_len * sizeof *nc);
        if (!nc) return -1;
        m->cfg = nc;
        m->cap_cfg = d->cfg_len;
    }
    if (d->cfg_len) memcpy(m->cfg, rt->cfg + d->cfg_off, d->cfg_len * sizeof *m->cfg);
    m->n_cfg = d->cfg_len;
    m->accept = d->accept;
    m->epoch = rt->epoch;
    return 0;
}

/* Under the lock: flush when the DFA is too big, and make m->ds valid. */
static int ensure(smoe_gmatch *m, grt *rt, char *err) {
    const smoe_grammar *g = m->g;
    if ((size_t)rt->n_ds * (size_t)g->n_classes > DS_MAX_TRANS || rt->n_cfg > DS_MAX_CFG) rt_flush(rt);
    if (m->epoch == rt->epoch) return 0;
    uint64_t *keys = malloc(((size_t)m->n_cfg + 1) * sizeof *keys);
    if (!keys) return smoe_errf(err, "out of memory");
    if (m->n_cfg) memcpy(keys, m->cfg, m->n_cfg * sizeof *keys);
    int32_t s = intern(rt, g, keys, m->n_cfg, m->accept);
    free(keys);
    if (s < 0) return smoe_errf(err, "%s", rt->errmsg[0] ? rt->errmsg : "grammar state lost");
    m->ds = s;
    m->epoch = rt->epoch;
    return 0;
}

void smoe_gmatch_reset(smoe_gmatch *m) {
    grt *rt = m->g->rt;
    pthread_mutex_lock(&rt->lock);
    int32_t s = initial_state(rt, m->g);
    if (s >= 0) {
        m->ds = s;
        save_cfg(m, rt);
    }
    pthread_mutex_unlock(&rt->lock);
}

smoe_gmatch *smoe_gmatch_new(smoe_grammar *g, const smoe_gvocab *v, char *err) {
    smoe_gmatch *m = calloc(1, sizeof *m);
    if (!m) return smoe_errf(err, "out of memory"), NULL;
    m->g = smoe_grammar_ref(g);
    m->v = v;
    if (v && !(m->scratch = malloc(v->words * sizeof *m->scratch))) {
        smoe_gmatch_free(m);
        return smoe_errf(err, "out of memory"), NULL;
    }
    grt *rt = g->rt;
    pthread_mutex_lock(&rt->lock);
    int32_t s = initial_state(rt, g);
    int rc = s >= 0 ? 0 : -1;
    if (rc == 0) {
        m->ds = s;
        rc = save_cfg(m, rt);
    }
    if (rc) smoe_errf(err, "%s", rt->errmsg[0] ? rt->errmsg : "out of memory");
    pthread_mutex_unlock(&rt->lock);
    if (rc) {
        smoe_gmatch_free(m);
        return NULL;
    }
    return m;
}

void smoe_gmatch_free(smoe_gmatch *m) {
    if (!m) return;
    smoe_grammar_free(m->g);
    free(m->cfg);
    free(m->scratch);
    free(m);
}

int smoe_gmatch_accept_bytes(smoe_gmatch *m, const void *bytes, size_t n, size_t *n_ok, char *err) {
    grt *rt = m->g->rt;
    const uint8_t *b = bytes;
    pthread_mutex_lock(&rt->lock);
    int rc = ensure(m, rt, err);
    int32_t s = m->ds;
    size_t i = 0;
    for (; rc == 0 && i < n; i++) {
        int32_t t = step(rt, m->g, s, b[i]);
        if (t == T_ERROR) { rc = smoe_errf(err, "%s", rt->errmsg); rt->errmsg[0] = 0; break; }
        if (t == T_DEAD) { rc = -1; break; }
        s = t;
    }
    if (n_ok) *n_ok = i;
    if (rc == 0 && n > 0) {
        m->ds = s;
        if (save_cfg(m, rt)) rc = smoe_errf(err, "out of memory");
    }
    pthread_mutex_unlock(&rt->lock);
    return rc;
}

int smoe_gmatch_accept_token(smoe_gmatch *m, int32_t token, char *err) {
    const smoe_gvocab *v = m->v;
    if (!v || token < 0 || token >= v->n_tokens || token == v->eos || v->tb_len[token] == 0) {
        if (smoe_gmatch_complete(m)) return 0;
        return smoe_errf(err, "token %d ends or has no text, but the document is not complete", token);
    }
    size_t ok;
    if (smoe_gmatch_accept_bytes(m, v->tbytes + v->tb_off[token], v->tb_len[token], &ok, err) == 0) return 0;
    if (err && !err[0]) smoe_errf(err, "token %d does not continue the document", token);
    return -1;
}

bool smoe_gmatch_complete(smoe_gmatch *m) { return m->accept != 0; }
bool smoe_gmatch_can_continue(smoe_gmatch *m) { return m->n_cfg > 0; }

uint32_t smoe_gmatch_min_remaining(smoe_gmatch *m) {
    grt *rt = m->g->rt;
    pthread_mutex_lock(&rt->lock);
    uint32_t d = GR_INF;
    char err[SMOE_ERR_SIZE];
    if (ensure(m, rt, err) == 0) d = rt->ds[m->ds].dist;
    pthread_mutex_unlock(&rt->lock);
    return d;
}

/* ---------------------------------------------------------------------------
 * Masks
 * ------------------------------------------------------------------------- */

/* Walk the vocabulary trie from state s.  full (may be NULL) gets every
 * token that continues the document, lim (may be NULL) those after which
 * at most `budget` bytes complete it; *maxd gets the largest distance
 * after a token of full. */
static int walk(grt *rt, const smoe_grammar *g, const smoe_gvocab *v, int32_t s, uint64_t *full, uint64_t *lim,
                uint32_t budget, uint32_t *maxd, uint32_t *mind) {
    size_t words = v->words;
    if (full) memset(full, 0, words * sizeof *full);
    if (lim) memset(lim, 0, words * sizeof *lim);
    uint32_t md = 0, mn = GR_INF;
    const gtnode *nodes = v->nodes;
    const int32_t n = v->n_nodes, nc = g->n_classes;
    const uint8_t *cls = g->byte_class;
    int32_t *st = rt->walk;
    st[0] = s;
    const int32_t *trans = rt->trans;
    for (int32_t i = 0; i < n;) {
        const gtnode *nd = &nodes[i];
        int32_t p = st[nd->depth - 1];
        int32_t t = trans[(size_t)p * (size_t)nc + cls[nd->byte]];
        if (t == T_UNKNOWN) {
            t = step(rt, g, p, nd->byte);
            if (t == T_ERROR) return -1;
            trans = rt->trans; /* may have moved */
        }
        if (t < 0) { i = nd->end; continue; }
        st[nd->depth] = t;
        if (nd->ntok) {
            uint32_t d = rt->ds[t].dist;
            if (d > md) md = d;
            if (d < mn) mn = d;
            for (int32_t k = 0; k < nd->ntok; k++) {
                int32_t id = v->toks[nd->tok0 + k];
                if (full) full[id >> 6] |= 1ull << (id & 63);
                if (lim && d <= budget) lim[id >> 6] |= 1ull << (id & 63);
            }
        }
        i++;
    }
    if (rt->ds[s].accept && v->eos >= 0 && v->eos < v->n_tokens) {
        if (full) full[v->eos >> 6] |= 1ull << (v->eos & 63);
        if (lim) lim[v->eos >> 6] |= 1ull << (v->eos & 63);
    }
    if (rt->ds[s].accept) mn = 0;
    *maxd = md;
    if (mind) *mind = mn;
    return 0;
}

static int32_t popcount_words(const uint64_t *b, size_t n) {
    int32_t c = 0;
    for (size_t i = 0; i < n; i++) c += __builtin_popcountll(b[i]);
    return c;
}

int32_t smoe_gmatch_mask(smoe_gmatch *m, int32_t budget, uint64_t *bits, char *err) {
    const smoe_gvocab *v = m->v;
    if (!v) return smoe_errf(err, "this matcher has no vocabulary");
    const smoe_grammar *g = m->g;
    grt *rt = g->rt;
    size_t words = v->words;
    int32_t count = -1;
    pthread_mutex_lock(&rt->lock);
    if (ensure(m, rt, err)) goto out;
    if (rt->mvocab != v) {
        /* a new vocabulary: masks of the old one are useless */
        for (int32_t i = 0; i < rt->n_ds; i++) rt->ds[i].mask = -1;
        free(rt->masks);
        rt->masks = NULL;
        rt->masks_alloc = 0;
        rt->n_masks = 0;
        rt->cap_masks = (int32_t)(MASK_MAX_BYTES / (words * sizeof(uint64_t)));
        if (rt->cap_masks < 1) rt->cap_masks = 1;
        rt->mvocab = v;
    }
    int32_t s = m->ds;
    uint32_t bud = budget < 0 ? GR_INF : (uint32_t)budget;
    uint32_t maxd;
    if (rt->ds[s].mask >= 0) {
        const uint64_t *cached = rt->masks + (size_t)rt->ds[s].mask * words;
        if (rt->ds[s].maxdist <= bud) {
            memcpy(bits, cached, words * sizeof *bits);
            count = rt->ds[s].count;
        } else {
            uint32_t mind;
            if (walk(rt, g, v, s, NULL, bits, bud, &maxd, &mind)) { smoe_errf(err, "%s", rt->errmsg); rt->errmsg[0] = 0; goto out; }
            count = popcount_words(bits, words);
            if (count == 0 && mind != GR_INF) {
                /* the budget cannot be met: come as close as possible */
                if (walk(rt, g, v, s, NULL, bits, mind, &maxd, NULL)) { smoe_errf(err, "%s", rt->errmsg); rt->errmsg[0] = 0; goto out; }
                count = popcount_words(bits, words);
            }
        }
        goto out;
    }
    /* not cached: make a slot (the whole cache is dropped when full) */
    if (rt->n_masks == rt->cap_masks) {
        for (int32_t i = 0; i < rt->n_ds; i++) rt->ds[i].mask = -1;
        rt->n_masks = 0;
    }
    if ((size_t)rt->n_masks == rt->masks_alloc) {
        size_t na = rt->masks_alloc ? rt->masks_alloc * 2 : 64;
        if (na > (size_t)rt->cap_masks) na = (size_t)rt->cap_masks;
        uint64_t *nm = realloc(rt->masks, na * words * sizeof *nm);
        if (!nm) { smoe_errf(err, "out of memory"); goto out; }
        rt->masks = nm;
        rt->masks_alloc = na;
    }
    int32_t slot = rt->n_masks;
    uint64_t *full = rt->masks + (size_t)slot * words;
    uint32_t mind;
    if (walk(rt, g, v, s, full, budget >= 0 ? bits : NULL, bud, &maxd, &mind)) {
        smoe_errf(err, "%s", rt->errmsg);
        rt->errmsg[0] = 0;
        goto out;
    }
    rt->n_masks++;
    rt->masks_made++;
    dst *d = &rt->ds[s]; /* after the walk: ds may have moved */
    d->mask = slot;
    d->maxdist = maxd;
    d->count = popcount_words(full, words);
    if (budget < 0) {
        memcpy(bits, full, words * sizeof *bits);
        count = d->count;
    } else {
        count = popcount_words(bits, words);
        if (count == 0 && mind != GR_INF) {
            /* the budget cannot be met: come as close as possible */
            uint32_t unused;
            if (walk(rt, g, v, s, NULL, bits, mind, &unused, NULL)) { smoe_errf(err, "%s", rt->errmsg); rt->errmsg[0] = 0; goto out; }
            count = popcount_words(bits, words);
        }
    }
out:
    pthread_mutex_unlock(&rt->lock);
    return count;
}
