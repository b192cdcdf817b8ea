/* tokenizer.c - SentencePiece BPE encoding and streaming decoding.
 *
 * Encoding follows the reference SentencePiece library (normalizer, BPE
 * model, byte fallback) for the "identity" normaliser that Llama, Mistral and
 * Mixtral tokenizers use:
 *
 *   1. Normalise: every byte that does not begin a well-formed UTF-8
 *      character becomes U+FFFD; every space becomes "▁" (U+2581); a "▁" is
 *      put in front when the dummy prefix is asked for (never for empty
 *      text).  There is no splitting into words: the whole text is one BPE
 *      problem.
 *   2. Split into symbols: at each position the longest USER_DEFINED piece
 *      that matches becomes one frozen symbol (never merged); otherwise one
 *      UTF-8 character is one symbol.
 *   3. Merge: repeatedly join the adjacent pair whose concatenation is a
 *      NORMAL, USER_DEFINED or UNUSED piece with the highest score (ties:
 *      the leftmost pair).  Candidate pairs sit in a binary max-heap and the
 *      symbols in a doubly linked list; a popped pair whose symbols changed
 *      since it was pushed is stale and skipped, so the whole run costs
 *      O(n log n).
 *   4. Emit: a symbol that is an UNUSED piece is split back into the two
 *      halves it was last built from (recursively), as SentencePiece does.
 *      A symbol that is no piece at all becomes one byte token <0xNN> per
 *      UTF-8 byte when the vocabulary has byte fallback, else <unk> (a run
 *      of unknown symbols gives a single <unk>).
 *
 * CONTROL, UNKNOWN and BYTE pieces never take part in merges, so text such
 * as "[INST]" or "<s>" is always encoded as ordinary characters. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/utf8.h"
#include "../base/common.h"

#define SPACE_SYMBOL "\xe2\x96\x81" /* U+2581, how SentencePiece spells a space */
#define REPLACEMENT "\xef\xbf\xbd"  /* U+FFFD */
#define UNK_SURFACE " \xe2\x81\x87 " /* " ⁇ ": SentencePiece's text for <unk> */

/* Longest text smoe_tokenize accepts: the normalised copy (up to three
 * bytes per input byte) and the symbol indices must fit in int32. */
#define MAX_TEXT_BYTES ((size_t)256 << 20)

/* ---------------------------------------------------------------------------
 * Piece lookup: an open-addressing hash table from piece bytes to token id
 * ------------------------------------------------------------------------- */

static uint32_t hash_bytes(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

typedef struct {
    int32_t id; /* -1: empty slot */
    uint32_t hash;
} piece_slot;

/* Word cuts are used when at most this many distinct characters precede a
 * "▁" inside pieces (for Llama and Mistral vocabularies only "▁" does). */
#define MAX_BEFORE_SPACE 16

/* A trie over the USER_DEFINED pieces, for longest-prefix matching. */
typedef struct {
    int32_t child;   /* first child node, -1 if none */
    int32_t sibling; /* next child of the same parent, -1 if none */
    int32_t id;      /* token id when a piece ends here, else -1 */
    uint8_t byte;
} trie_node;

struct smoe_tokenizer {
    const smoe_vocab *v;
    piece_slot *slots; /* mergeable pieces: NORMAL, USER_DEFINED, UNUSED */
    uint32_t mask;
    uint32_t max_piece_len; /* longest mergeable piece, in bytes */
    int32_t byte_id[256];   /* <0xNN> token per byte value, -1 if absent */
    /* USER_DEFINED pieces */
    trie_node *trie;
    int32_t n_trie, cap_trie;
    int32_t trie_root[256]; /* trie node for each first byte, -1 if none */
    /* UNUSED pieces: a dense index for the per-call resegmentation table */
    int32_t *unused_index; /* n_tokens entries, -1 for other tokens */
    int32_t n_unused;
    size_t max_text_bytes; /* longest text of one token as smoe_detok_push writes it */
    /* Word cuts (see split_symbols): the characters that occur right before
     * a "▁" inside some mergeable piece. */
    bool cut_words;
    int n_before_space;
    struct { uint8_t len, b[4]; } before_space[MAX_BEFORE_SPACE];
};

static size_t piece_text_len(const char *s, size_t n);

static bool mergeable(int32_t type) {
    return type == SMOE_TOKEN_NORMAL || type == SMOE_TOKEN_USER_DEFINED || type == SMOE_TOKEN_UNUSED;
}

static int32_t lookup(const smoe_tokenizer *t, const uint8_t *s, size_t n) {
    if (n == 0 || n > t->max_piece_len) return -1;
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const piece_slot *sl = &t->slots[i];
        if (sl->id < 0) return -1;
        if (sl->hash == h && t->v->token_len[sl->id] == n && memcmp(t->v->tokens[sl->id], s, n) == 0)
            return sl->id;
    }
}

/* Insert id unless an equal piece is already there (the first one wins, as
 * in SentencePiece, which rejects duplicates outright). */
static void insert(smoe_tokenizer *t, int32_t id) {
    const uint8_t *s = (const uint8_t *)t->v->tokens[id];
    size_t n = t->v->token_len[id];
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        piece_slot *sl = &t->slots[i];
        if (sl->id < 0) {
            sl->id = id;
            sl->hash = h;
            return;
        }
        if (sl->hash == h && t->v->token_len[sl->id] == n && memcmp(t->v->tokens[sl->id], s, n) == 0) return;
    }
}

/* "<0xNN>" -> NN, or -1. */
static int byte_piece_value(const char *s, uint32_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int trie_add(smoe_tokenizer *t, int32_t id, char *err) {
    const uint8_t *s = (const uint8_t *)t->v->tokens[id];
    uint32_t n = t->v->token_len[id];
    int32_t parent = -1; /* -1: the root, whose children are trie_root[] */
    for (uint32_t i = 0; i < n; i++) {
        int32_t c = parent < 0 ? t->trie_root[s[i]] : t->trie[parent].child;
        if (parent >= 0) {
            while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        }
        if (c < 0) {
            if (t->n_trie == t->cap_trie) {
                int32_t cap = t->cap_trie ? t->cap_trie * 2 : 64;
                trie_node *nt = realloc(t->trie, (size_t)cap * sizeof *nt);
                if (!nt) return smoe_errf(err, "tokenizer: out of memory");
                t->trie = nt;
                t->cap_trie = cap;
            }
            c = t->n_trie++;
            if (parent < 0) {
                t->trie[c] = (trie_node){-1, -1, -1, s[i]};
                t->trie_root[s[i]] = c;
            } else {
                t->trie[c] = (trie_node){-1, t->trie[parent].child, -1, s[i]};
                t->trie[parent].child = c;
            }
        }
        parent = c;
    }
    if (parent >= 0 && t->trie[parent].id < 0) t->trie[parent].id = id;
    return 0;
}

/* Length of the longest USER_DEFINED piece at s[0..n), 0 if none. */
static size_t trie_match(const smoe_tokenizer *t, const uint8_t *s, size_t n) {
    int32_t node = t->trie_root[s[0]];
    size_t best = 0;
    for (size_t i = 1; node >= 0; i++) {
        if (t->trie[node].id >= 0) best = i;
        if (i >= n) break;
        int32_t c = t->trie[node].child;
        while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        node = c;
    }
    return best;
}

/* Record the character before every "▁" that is not at the start of piece
 * s[0..n); give up on word cuts when there are too many different ones. */
static void note_before_space(smoe_tokenizer *t, const uint8_t *s, size_t n) {
    for (size_t k = 1; t->cut_words && k + 3 <= n; k++) {
        if (memcmp(s + k, SPACE_SYMBOL, 3) != 0) continue;
        size_t c = k - 1; /* back to the lead byte of the character before */
        while (c > 0 && (s[c] & 0xC0) == 0x80 && k - c < 4) c--;
        size_t len = k - c;
        bool seen = false;
        for (int j = 0; j < t->n_before_space && !seen; j++)
            seen = t->before_space[j].len == len && memcmp(t->before_space[j].b, s + c, len) == 0;
        if (seen) continue;
        if (t->n_before_space == MAX_BEFORE_SPACE) {
            t->cut_words = false;
            return;
        }
        t->before_space[t->n_before_space].len = (uint8_t)len;
        memcpy(t->before_space[t->n_before_space].b, s + c, len);
        t->n_before_space++;
    }
}

/* May the text be cut before the "▁" at text[p] (p > 0), whose preceding
 * character starts at text[prev]? */
static bool cut_here(const smoe_tokenizer *t, const uint8_t *text, size_t prev, size_t p) {
    size_t len = p - prev;
    for (int j = 0; j < t->n_before_space; j++)
        if (t->before_space[j].len == len && memcmp(t->before_space[j].b, text + prev, len) == 0) return false;
    return true;
}

smoe_tokenizer *smoe_tokenizer_new(const smoe_vocab *v, char *err) {
    if (!v || v->n_tokens <= 0 || !v->tokens || !v->token_len || !v->scores || !v->types) {
        smoe_errf(err, "tokenizer: the vocabulary is empty");
        return NULL;
    }
    if (strcmp(v->model, "llama") != 0) {
        char shown[4 * sizeof v->model];
        smoe_errf(err, "tokenizer: model '%s' is not supported (only SentencePiece BPE, 'llama')",
                  smoe_err_bytes(shown, sizeof shown, v->model, strlen(v->model)));
        return NULL;
    }
    smoe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        smoe_errf(err, "tokenizer: out of memory");
        return NULL;
    }
    t->v = v;
    for (int i = 0; i < 256; i++) t->byte_id[i] = t->trie_root[i] = -1;
    uint32_t n_merge = 0;
    t->max_text_bytes = sizeof UNK_SURFACE - 1;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (!v->tokens[i]) {
            smoe_errf(err, "tokenizer: token %d has no text", (int)i);
            goto fail;
        }
        if (mergeable(v->types[i])) {
            size_t text = piece_text_len(v->tokens[i], v->token_len[i]);
            if (text > t->max_text_bytes) t->max_text_bytes = text;
        }
        if (mergeable(v->types[i]) && v->token_len[i] > 0) n_merge++;
        if (v->types[i] == SMOE_TOKEN_UNUSED) t->n_unused++;
        if (v->types[i] == SMOE_TOKEN_BYTE) {
            int b = byte_piece_value(v->tokens[i], v->token_len[i]);
            if (b >= 0 && t->byte_id[b] < 0) t->byte_id[b] = i;
        }
    }
    uint32_t cap = 16;
    while (cap < 2 * n_merge) cap *= 2;
    t->mask = cap - 1;
    t->slots = malloc((size_t)cap * sizeof *t->slots);
    t->unused_index = t->n_unused ? malloc((size_t)v->n_tokens * sizeof *t->unused_index) : NULL;
    if (!t->slots || (t->n_unused && !t->unused_index)) {
        smoe_errf(err, "tokenizer: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < cap; i++) t->slots[i].id = -1;
    t->cut_words = t->n_unused == 0;
    int32_t next_unused = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (t->unused_index) t->unused_index[i] = v->types[i] == SMOE_TOKEN_UNUSED ? next_unused++ : -1;
        if (!mergeable(v->types[i]) || v->token_len[i] == 0) continue;
        insert(t, i);
        if (v->token_len[i] > t->max_piece_len) t->max_piece_len = v->token_len[i];
        note_before_space(t, (const uint8_t *)v->tokens[i], v->token_len[i]);
        if (v->types[i] == SMOE_TOKEN_USER_DEFINED && trie_add(t, i, err) < 0) goto fail;
    }
    return t;
fail:
    smoe_tokenizer_free(t);
    return NULL;
}

void smoe_tokenizer_free(smoe_tokenizer *t) {
    if (!t) return;
    free(t->slots);
    free(t->trie);
    free(t->unused_index);
    free(t);
}

const smoe_vocab *smoe_tokenizer_vocab(const smoe_tokenizer *t) { return t->v; }

/* ---------------------------------------------------------------------------
 * Token lists
 * ------------------------------------------------------------------------- */

int smoe_tokens_push(smoe_tokens *l, int32_t id) {
    if (l->n == l->cap) {
        if (l->cap > INT32_MAX / 2) return -1;
        int32_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *ids = realloc(l->ids, (size_t)cap * sizeof *ids);
        if (!ids) return -1;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

void smoe_tokens_free(smoe_tokens *l) {
    if (!l) return;
    free(l->ids);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------- */

typedef struct {
    int32_t start, len; /* bytes of the normalised text; len 0: merged away */
    int32_t prev, next; /* neighbours in the list, -1 at the ends */
    bool freeze;        /* a USER_DEFINED match: never merged */
} symbol;

typedef struct {
    float score;        /* score of the merged piece */
    int32_t left, right; /* the two symbols */
    int32_t size;       /* byte length of the merged piece when pushed */
} pair;

/* Everything one smoe_tokenize call works with. */
typedef struct {
    const smoe_tokenizer *t;
    uint8_t *text; /* normalised */
    size_t n_text;
    symbol *sym;
    int32_t n_sym;
    pair *heap;
    size_t n_heap, cap_heap;
    int32_t *split; /* per UNUSED piece: 1 + length of the left half it was last built from */
    int32_t *stack; /* resegmentation work list: (start, len) pairs */
    size_t cap_stack;
    bool prev_unk;  /* the last emitted token was a merged run of <unk> */
} bpe_run;

/* a ranks above b: higher score, then the pair further left. */
static bool pair_above(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(bpe_run *r, pair p) {
    if (r->n_heap == r->cap_heap) {
        size_t cap = r->cap_heap ? r->cap_heap * 2 : 256;
        pair *h = realloc(r->heap, cap * sizeof *h);
        if (!h) return -1;
        r->heap = h;
        r->cap_heap = cap;
    }
    size_t i = r->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_above(&p, &r->heap[parent])) break;
        r->heap[i] = r->heap[parent];
        i = parent;
    }
    r->heap[i] = p;
    return 0;
}

static pair heap_pop(bpe_run *r) {
    pair top = r->heap[0];
    pair last = r->heap[--r->n_heap];
    size_t n = r->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_above(&r->heap[c + 1], &r->heap[c])) c++;
        if (!pair_above(&r->heap[c], &last)) break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (n > 0) r->heap[i] = last;
    return top;
}

/* Push the pair (left, right) when their concatenation is a mergeable piece.
 * For an UNUSED piece remember how it was split: SentencePiece keeps, per
 * piece text, the split of the most recent candidate and uses it to undo
 * the merge at the end. */
static int maybe_push(bpe_run *r, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    const symbol *a = &r->sym[left], *b = &r->sym[right];
    if (a->freeze || b->freeze) return 0;
    const smoe_tokenizer *t = r->t;
    int32_t size = a->len + b->len;
    int32_t id = lookup(t, r->text + a->start, (size_t)size);
    if (id < 0) return 0;
    if (t->v->types[id] == SMOE_TOKEN_UNUSED) {
        if (!r->split && !(r->split = calloc((size_t)t->n_unused, sizeof *r->split))) return -1;
        r->split[t->unused_index[id]] = a->len + 1;
    }
    return heap_push(r, (pair){t->v->scores[id], left, right, size});
}

static int emit(int32_t id, smoe_tokens *out, char *err) {
    if (smoe_tokens_push(out, id) < 0) return smoe_errf(err, "tokenizer: out of memory");
    return 0;
}

/* A symbol that is no piece: byte tokens, or one <unk> per run. */
static int emit_unknown(bpe_run *r, const uint8_t *s, int32_t len, smoe_tokens *out, char *err) {
    const smoe_vocab *v = r->t->v;
    if (v->byte_fallback) {
        for (int32_t i = 0; i < len; i++) {
            int32_t id = r->t->byte_id[s[i]];
            if (id < 0) id = v->unk_id; /* what SentencePiece's lookup of a missing byte piece gives */
            if (id < 0)
                return smoe_errf(err, "tokenizer: byte 0x%02X has no <0x%02X> token and there is no <unk> token",
                                 s[i], s[i]);
            if (emit(id, out, err) < 0) return -1;
        }
        r->prev_unk = false;
        return 0;
    }
    if (v->unk_id < 0) {
        /* the symbol may be a newline or any other character */
        char shown[8 * 4 + 1];
        smoe_err_bytes(shown, sizeof shown, s, (size_t)(len < 8 ? len : 8));
        return smoe_errf(err, "tokenizer: '%s' is not in the vocabulary, which has neither byte "
                         "fallback nor an <unk> token", shown);
    }
    if (r->prev_unk) return 0;
    r->prev_unk = true;
    return emit(v->unk_id, out, err);
}

/* Emit the tokens of the final symbol text[start..start+len). */
static int emit_symbol(bpe_run *r, int32_t start, int32_t len, smoe_tokens *out, char *err) {
    const smoe_tokenizer *t = r->t;
    size_t n = 0;
    for (;;) {
        int32_t id = lookup(t, r->text + start, (size_t)len);
        int32_t split = 0;
        if (id >= 0 && t->v->types[id] == SMOE_TOKEN_UNUSED && r->split) split = r->split[t->unused_index[id]] - 1;
        if (split > 0 && split < len) {
            /* undo the merge: the left half now, the right half later */
            if (n + 2 > r->cap_stack) {
                size_t cap = r->cap_stack ? r->cap_stack * 2 : 64;
                int32_t *s = realloc(r->stack, cap * sizeof *s);
                if (!s) return smoe_errf(err, "tokenizer: out of memory");
                r->stack = s;
                r->cap_stack = cap;
            }
            r->stack[n++] = start + split;
            r->stack[n++] = len - split;
            len = split;
            continue;
        }
        if (id >= 0) {
            r->prev_unk = false;
            if (emit(id, out, err) < 0) return -1;
        } else if (emit_unknown(r, r->text + start, len, out, err) < 0) {
            return -1;
        }
        if (n == 0) return 0;
        len = r->stack[--n];
        start = r->stack[--n];
    }
}

/* Step 1: the normalised text. */
static int normalize(bpe_run *r, const uint8_t *in, size_t len, bool add_space_prefix, char *err) {
    uint8_t *o = malloc(3 * len + 3);
    if (!o) return smoe_errf(err, "tokenizer: out of memory for %zu bytes of text", len);
    size_t n = 0;
    if (add_space_prefix) {
        memcpy(o, SPACE_SYMBOL, 3);
        n = 3;
    }
    for (size_t i = 0; i < len;) {
        int c = smoe_utf8_class(in + i, len - i);
        if (c <= 0) { /* invalid or cut short: one U+FFFD for this byte */
            memcpy(o + n, REPLACEMENT, 3);
            n += 3;
            i++;
        } else if (in[i] == ' ') {
            memcpy(o + n, SPACE_SYMBOL, 3);
            n += 3;
            i++;
        } else {
            memcpy(o + n, in + i, (size_t)c);
            n += (size_t)c;
            i += (size_t)c;
        }
    }
    r->text = o;
    r->n_text = n;
    return 0;
}

/* Step 2: one symbol per character or USER_DEFINED match.
 *
 * Word cuts: no merge can ever join a symbol ending in character c to one
 * starting with "▁" unless some mergeable piece contains c directly before a
 * "▁".  Where that cannot happen the symbol list is cut in two (prev/next
 * links end there), and each part runs through steps 3 and 4 on its own.
 * The result is the same as one BPE run over the whole text: no candidate
 * pair ever spans a cut, and within a part the pairs keep their order.
 * Only the bookkeeping for UNUSED pieces (which split of a piece text was
 * seen last, anywhere in the text) depends on the order across parts, so
 * vocabularies with UNUSED pieces are never cut.  For Llama and Mistral
 * vocabularies this cuts before every space that follows a non-space, so
 * the heap stays small and in cache however long the text is. */
static int split_symbols(bpe_run *r, char *err) {
    r->sym = malloc(r->n_text * sizeof *r->sym);
    if (!r->sym) return smoe_errf(err, "tokenizer: out of memory");
    const smoe_tokenizer *t = r->t;
    int32_t n = 0;
    for (size_t p = 0; p < r->n_text;) {
        size_t len = t->n_trie ? trie_match(t, r->text + p, r->n_text - p) : 0;
        bool freeze = len > 0;
        if (!len) len = (size_t)smoe_utf8_class(r->text + p, r->n_text - p); /* valid after step 1 */
        bool cut = n == 0 || (t->cut_words && len == 3 && memcmp(r->text + p, SPACE_SYMBOL, 3) == 0 &&
                              cut_here(t, r->text, (size_t)r->sym[n - 1].start, p));
        r->sym[n] = (symbol){(int32_t)p, (int32_t)len, cut ? -1 : n - 1, -1, freeze};
        if (!cut) r->sym[n - 1].next = n;
        n++;
        p += len;
    }
    r->n_sym = n;
    return 0;
}

/* Step 3 for the part sym[first..end): merge the best pair until none is
 * left. */
static int merge(bpe_run *r, int32_t first, int32_t end, char *err) {
    r->n_heap = 0;
    for (int32_t i = first + 1; i < end; i++)
        if (maybe_push(r, i - 1, i) < 0) return smoe_errf(err, "tokenizer: out of memory");
    while (r->n_heap > 0) {
        pair p = heap_pop(r);
        symbol *a = &r->sym[p.left], *b = &r->sym[p.right];
        if (a->len == 0 || b->len == 0 || a->len + b->len != p.size) continue; /* stale */
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) r->sym[b->next].prev = p.left;
        if (maybe_push(r, a->prev, p.left) < 0 || maybe_push(r, p.left, a->next) < 0)
            return smoe_errf(err, "tokenizer: out of memory");
    }
    return 0;
}

int smoe_tokenize(const smoe_tokenizer *t, const char *text, size_t len, bool add_space_prefix,
                  smoe_tokens *out, char *err) {
    if (!t || !out || (!text && len)) return smoe_errf(err, "tokenizer: invalid arguments");
    if (len == 0) return 0; /* SentencePiece: empty text, no dummy prefix */
    if (len > MAX_TEXT_BYTES)
        return smoe_errf(err, "tokenizer: text of %zu bytes is longer than the limit of %zu", len, MAX_TEXT_BYTES);
    bpe_run r;
    memset(&r, 0, sizeof r);
    r.t = t;
    int32_t n_before = out->n;
    int rc = -1;
    if (normalize(&r, (const uint8_t *)text, len, add_space_prefix, err) < 0) goto done;
    if (split_symbols(&r, err) < 0) goto done;
    for (int32_t first = 0, end; first < r.n_sym; first = end) {
        /* the part starting at first ends where the next one starts: the
         * first symbol of a part is the only one with prev -1, before and
         * after merging (it is never merged away) */
        for (end = first + 1; end < r.n_sym && r.sym[end].prev != -1;) end++;
        if (merge(&r, first, end, err) < 0) goto done;
        for (int32_t i = first; i >= 0; i = r.sym[i].next)
            if (emit_symbol(&r, r.sym[i].start, r.sym[i].len, out, err) < 0) goto done;
    }
    rc = 0;
done:
    if (rc < 0) out->n = n_before;
    free(r.text);
    free(r.sym);
    free(r.heap);
    free(r.split);
    free(r.stack);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

/* Bounded output: keeps at most cap-1 bytes and a NUL after them.  With
 * p == NULL it only counts (the sizing pass in smoe_tokenizer_new). */
typedef struct {
    char *p;
    size_t cap, n;
} outbuf;

static void put(outbuf *o, const void *s, size_t n) {
    if (!o->p) {
        o->n += n;
        return;
    }
    if (o->cap == 0) return;
    size_t room = o->cap - 1 - o->n;
    if (n > room) n = room;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

/* A piece's text with "▁" as a space.  Pieces from a GGUF file are not
 * checked to be UTF-8 when loaded, so any byte that does not begin a
 * well-formed character becomes U+FFFD here, keeping the output valid. */
static void put_piece(outbuf *o, const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, run = 0; /* s[i..i+run) is valid text not yet written */
    while (i + run < n) {
        size_t j = i + run;
        int c = smoe_utf8_class(u + j, n - j);
        if (c == 3 && memcmp(u + j, SPACE_SYMBOL, 3) == 0) {
            put(o, s + i, run);
            put(o, " ", 1);
        } else if (c <= 0) {
            put(o, s + i, run);
            put(o, REPLACEMENT, 3);
        } else {
            run += (size_t)c;
            continue;
        }
        i = j + (c == 3 ? 3 : 1);
        run = 0;
    }
    put(o, s + i, run);
}

size_t smoe_token_bytes(const smoe_tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->v->n_tokens) return 0;
    const smoe_vocab *v = t->v;
    const char *s = v->tokens[id];
    size_t n = v->token_len[id], w = 0;
    switch (v->types[id]) {
    case SMOE_TOKEN_CONTROL:
        return 0;
    case SMOE_TOKEN_BYTE: {
        int b = byte_piece_value(s, (uint32_t)n);
        if (b < 0 || cap == 0) return 0;
        buf[0] = (char)b;
        return 1;
    }
    case SMOE_TOKEN_UNKNOWN:
        s = UNK_SURFACE;
        n = sizeof UNK_SURFACE - 1;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n && w < cap;) {
        if (n - i >= 3 && memcmp(s + i, SPACE_SYMBOL, 3) == 0) {
            buf[w++] = ' ';
            i += 3;
        } else {
            buf[w++] = s[i++];
        }
    }
    return w;
}

static size_t piece_text_len(const char *s, size_t n) {
    outbuf o = {NULL, 0, 0};
    put_piece(&o, s, n);
    return o.n;
}

size_t smoe_detok_cap(const smoe_tokenizer *t) {
    /* three held-back bytes flushed as U+FFFD, then the longest text of one
     * token (a byte token completing a character: 4), then the NUL */
    size_t piece = t->max_text_bytes < 4 ? 4 : t->max_text_bytes;
    return 9 + piece + 1;
}

void smoe_detok_init(smoe_detok *d, const smoe_tokenizer *t, bool strip_leading_space) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->strip_leading_space = strip_leading_space;
    d->at_start = true;
}

/* Emit every complete character held back; bytes that cannot begin a
 * character become U+FFFD, one per byte as SentencePiece decodes them.  With
 * final, an incomplete tail is given up on as well. */
static void drain(smoe_detok *d, outbuf *o, bool final) {
    while (d->n_pending > 0) {
        int c = smoe_utf8_class((const uint8_t *)d->pending, (size_t)d->n_pending);
        if (c == 0 && !final) return;
        int used = c > 0 ? c : 1;
        if (c > 0) put(o, d->pending, (size_t)c);
        else put(o, REPLACEMENT, 3);
        d->n_pending -= used;
        memmove(d->pending, d->pending + used, (size_t)d->n_pending);
    }
}

size_t smoe_detok_push(smoe_detok *d, int32_t id, char *out, size_t cap) {
    outbuf o = {out, cap, 0};
    if (cap) out[0] = '\0';
    const smoe_tokenizer *t = d->t;
    const smoe_vocab *v = t ? t->v : NULL;
    int32_t type = v && id >= 0 && id < v->n_tokens ? v->types[id] : SMOE_TOKEN_CONTROL;
    int b = type == SMOE_TOKEN_BYTE ? byte_piece_value(v->tokens[id], v->token_len[id]) : -1;
    if (b >= 0) {
        d->at_start = false;
        d->pending[d->n_pending++] = (char)b;
        drain(d, &o, false);
        return o.n;
    }
    /* Any other token ends a run of byte tokens, as in SentencePiece's
     * decoder: what is held back can no longer complete. */
    drain(d, &o, true);
    if (type == SMOE_TOKEN_CONTROL || type == SMOE_TOKEN_BYTE) return o.n; /* invisible */
    if (type == SMOE_TOKEN_UNKNOWN) {
        put(&o, UNK_SURFACE, sizeof UNK_SURFACE - 1);
        d->at_start = false;
        return o.n;
    }
    const char *s = v->tokens[id];
    size_t n = v->token_len[id];
    if (d->at_start && d->strip_leading_space && n >= 3 && memcmp(s, SPACE_SYMBOL, 3) == 0) {
        s += 3;
        n -= 3;
    }
    d->at_start = false;
    put_piece(&o, s, n);
    return o.n;
}

size_t smoe_detok_flush(smoe_detok *d, char *out, size_t cap) {
    outbuf o = {out, cap, 0};
    if (cap) out[0] = '\0';
    drain(d, &o, true);
    return o.n;
}
