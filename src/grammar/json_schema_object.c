/* json_schema_object.c - "object" schemas: properties in the schema's
 * order, required ones always, then additional properties under a key
 * rule that matches every string except the named keys. */
#include "json_schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

typedef struct ktrie {
    uint32_t cp;
    int32_t child, sibling;
    bool terminal;
} ktrie;

/* Remove code point cp from the sorted ranges r[0..2n); r has room for
 * one more range.  Returns the new count. */
static size_t cut_point(uint32_t *r, size_t n, uint32_t cp) {
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1];
        if (cp < lo || cp > hi) continue;
        if (lo == hi) {
            memmove(r + 2 * i, r + 2 * i + 2, (n - i - 1) * 2 * sizeof *r);
            return n - 1;
        }
        if (cp == lo) { r[2 * i] = cp + 1; return n; }
        if (cp == hi) { r[2 * i + 1] = cp - 1; return n; }
        memmove(r + 2 * i + 2, r + 2 * i, (n - i) * 2 * sizeof *r);
        r[2 * i + 1] = cp - 1;
        r[2 * i + 2] = cp + 1;
        return n + 1;
    }
    return n;
}

/* "string that is none of names" for additional property keys */
static int gen_other_key(smoe_jsg *b, const char **names, int n, char *name) {
    ktrie *t = calloc(1, sizeof *t);
    int32_t nt = 1, cap = 1;
    if (!t) return smoe_errf(b->err, "out of memory");
    t[0] = (ktrie){0, -1, -1, false};
    for (int i = 0; i < n; i++) {
        const uint8_t *s = (const uint8_t *)names[i];
        size_t len = strlen(names[i]), pos = 0;
        int32_t cur = 0;
        while (pos < len) {
            uint32_t cp;
            int l = gr_utf8_decode(s + pos, len - pos, &cp);
            if (!l) { free(t); return js_where_err(b, "property name is not valid UTF-8"); }
            pos += (size_t)l;
            int32_t c = t[cur].child;
            while (c >= 0 && t[c].cp != cp) c = t[c].sibling;
            if (c < 0) {
                if (nt == cap) {
                    cap *= 2;
                    ktrie *ntr = realloc(t, (size_t)cap * sizeof *ntr);
                    if (!ntr) { free(t); return smoe_errf(b->err, "out of memory"); }
                    t = ntr;
                }
                t[nt] = (ktrie){cp, -1, t[cur].child, false};
                t[cur].child = nt;
                c = nt++;
            }
            cur = c;
        }
        t[cur].terminal = true;
    }
    js_need(b, P_KCHAR);
    int base = b->counter + 1;
    char nm[NAME_LEN];
    for (int32_t i = 0; i < nt; i++) js_new_name(b, nm); /* names s<base + i> */
    for (int32_t i = 0; i < nt; i++) {
        gr_buf body = {0};
        int alts = 0;
        if (!t[i].terminal) { gb_puts(&body, "\"\\\"\""); alts++; }
        /* any character other than the children's, then anything */
        uint32_t *r = malloc(((size_t)nt + 6) * 2 * sizeof *r);
        size_t nr = 0;
        if (!r) { free(t); gb_free(&body); return smoe_errf(b->err, "out of memory"); }
        /* children code points, sorted */
        uint32_t *cps = malloc(((size_t)nt + 1) * sizeof *cps);
        size_t nc = 0;
        if (!cps) { free(r); free(t); gb_free(&body); return smoe_errf(b->err, "out of memory"); }
        for (int32_t c = t[i].child; c >= 0; c = t[c].sibling) cps[nc++] = t[c].cp;
        for (size_t x = 1; x < nc; x++)
            for (size_t y = x; y > 0 && cps[y - 1] > cps[y]; y--) { uint32_t tmp = cps[y]; cps[y] = cps[y - 1]; cps[y - 1] = tmp; }
        /* other characters: the raw ones not among the children, and the
         * escaped ones (j-kesc) unless a child is one of them */
        bool special_child = false;
        for (size_t x = 0; x < nc; x++) special_child |= cps[x] < 0x20 || cps[x] == 0x22 || cps[x] == 0x5C;
        uint32_t next = 0;
        for (size_t x = 0; x <= nc; x++) {
            uint32_t stop = x < nc ? cps[x] : 0x110000;
            /* [next, stop) minus surrogates (and minus the specials unless
             * they are emitted here one by one) */
            if (stop > next) {
                uint32_t lo = next, hi = stop - 1;
                if (!special_child && lo < 0x20) lo = 0x20;
                if (lo <= hi) {
                    if (hi < 0xD800 || lo > 0xDFFF) { r[2 * nr] = lo; r[2 * nr + 1] = hi; nr++; }
                    else {
                        if (lo < 0xD800) { r[2 * nr] = lo; r[2 * nr + 1] = 0xD7FF; nr++; }
                        if (hi > 0xDFFF) { r[2 * nr] = 0xE000; r[2 * nr + 1] = hi; nr++; }
                    }
                }
            }
            next = stop + 1;
        }
        if (!special_child) { /* '"' and '\\' come from j-kesc */
            nr = cut_point(r, nr, 0x22);
            nr = cut_point(r, nr, 0x5C);
        }
        if (nr) {
            if (alts++) gb_puts(&body, " | ");
            gb_puts(&body, "(");
            gr_emit_json_charset(&body, r, nr);
            if (!special_child) gb_puts(&body, " | j-kesc");
            gb_puts(&body, ") j-kchar* \"\\\"\"");
        }
        for (int32_t c = t[i].child; c >= 0; c = t[c].sibling) {
            uint8_t u[4];
            int ul = gr_utf8_encode(t[c].cp, u);
            gr_buf enc = {0};
            js_encode_string(&enc, (const char *)u, (size_t)ul);
            if (alts++) gb_puts(&body, " | ");
            if (enc.oom) body.oom = true; /* enc.n - 2 would wrap around */
            else gb_lit(&body, enc.p + 1, enc.n - 2); /* without the quotes */
            gb_printf(&body, " s%d", base + c);
            gb_free(&enc);
        }
        free(r);
        free(cps);
        snprintf(nm, sizeof nm, "s%d", base + i);
        js_add_rule(b, nm, &body);
        gb_free(&body);
    }
    free(t);
    /* the key with its opening quote */
    gr_buf kb = {0};
    gb_printf(&kb, "\"\\\"\" s%d", base);
    js_new_name(b, name);
    js_add_rule(b, name, &kb);
    gb_free(&kb);
    return 0;
}

int js_gen_object(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const json_t *ap = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return js_where_err(b, "'properties' must be an object");
    if (req && !json_is_array(req)) return js_where_err(b, "'required' must be an array of strings");
    if (ap && !json_is_boolean(ap) && !json_is_object(ap)) return js_where_err(b, "'additionalProperties' must be a boolean or a schema");
    bool allow_extra = ap ? !json_is_false(ap) : !b->o.strict;
    size_t n_props = props ? json_object_size(props) : 0, n_req = req ? json_array_size(req) : 0;
    /* entries: properties in order, then required names that are not properties */
    size_t cap = n_props + n_req + 1, n = 0;
    const char **keys = malloc(cap * sizeof *keys);
    const json_t **schemas = malloc(cap * sizeof *schemas);
    bool *required = calloc(cap, sizeof *required);
    char (*vnames)[NAME_LEN] = malloc(cap * sizeof *vnames);
    int rc = -1;
    if (!keys || !schemas || !required || !vnames) { smoe_errf(b->err, "out of memory"); goto out; }
    const char *k;
    json_t *v;
    if (props) json_object_foreach((json_t *)props, k, v) { keys[n] = k; schemas[n] = v; n++; }
    size_t i;
    json_array_foreach(req, i, v) {
        if (!json_is_string(v)) { js_where_err(b, "'required' must be an array of strings"); goto out; }
        const char *name = json_string_value(v);
        size_t j;
        for (j = 0; j < n && strcmp(keys[j], name); j++) {}
        if (j < n) {
            if (required[j]) { js_where_err(b, "'required' lists '%s' twice", name); goto out; }
            required[j] = true;
            continue;
        }
        if (!allow_extra) {
            js_where_err(b, "unsatisfiable: required property '%s' is not in properties and additional properties are not allowed%s",
                      name, ap ? "" : " (strict mode)");
            goto out;
        }
        keys[n] = name;
        schemas[n] = ap ? ap : json_true();
        required[n] = true;
        n++;
    }
    /* value rules (false: the property may not appear) */
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        if (json_is_false(schemas[j])) {
            if (required[j]) { js_where_err(b, "unsatisfiable: required property '%s' has the schema false", keys[j]); goto out; }
            continue;
        }
        size_t mark = js_path_push(b, j < n_props ? "properties" : "additionalProperties");
        if (j < n_props) js_path_push(b, keys[j]);
        int r = js_gen(b, schemas[j], depth + 1, vnames[m]);
        js_path_pop(b, mark);
        if (r) goto out;
        keys[m] = keys[j];
        required[m] = required[j];
        m++;
    }
    n = m;
    js_need(b, P_SEP);
    /* additional properties: key rule and value rule */
    char addk[NAME_LEN] = "", addv[NAME_LEN] = "";
    if (allow_extra) {
        if (gen_other_key(b, keys, (int)n, addk)) goto out;
        size_t mark = js_path_push(b, "additionalProperties");
        int r = js_gen(b, ap ? ap : json_true(), depth + 1, addv);
        js_path_pop(b, mark);
        if (r) goto out;
    }
    /* R_i: what follows once something was written (each entry with a
     * leading comma); F_i: nothing written yet.  Rule names base-r<i>, base-f<i>. */
    char base[NAME_LEN];
    js_new_name(b, base);
    for (size_t j = n + 1; j-- > 0;) {
        gr_buf r = {0}, f = {0};
        gr_buf key = {0}, lit = {0};
        if (j == n) {
            if (allow_extra) {
                gb_printf(&r, "(\",\" j-sep %s \":\" j-sep %s)*", addk, addv);
                gb_printf(&f, "(%s \":\" j-sep %s %s-r%zu)?", addk, addv, base, n);
            } else {
                gb_puts(&r, "\"\"");
                gb_puts(&f, "\"\"");
            }
        } else {
            js_encode_string(&key, keys[j], strlen(keys[j]));
            gb_lit(&lit, key.p, key.n);
            gr_buf kvb = {0};
            gb_put(&kvb, lit.p, lit.n);
            gb_printf(&kvb, " \":\" j-sep %s", vnames[j]);
            if (key.oom || lit.oom || kvb.oom) { /* add_rule passes r's out-of-memory on */
                r.oom = true;
            } else if (required[j]) {
                gb_printf(&r, "\",\" j-sep %s %s-r%zu", kvb.p, base, j + 1);
                gb_printf(&f, "%s %s-r%zu", kvb.p, base, j + 1);
            } else {
                gb_printf(&r, "(\",\" j-sep %s)? %s-r%zu", kvb.p, base, j + 1);
                gb_printf(&f, "%s %s-r%zu | %s-f%zu", kvb.p, base, j + 1, base, j + 1);
            }
            gb_free(&kvb);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-r%zu", base, j);
        js_add_rule(b, rn, &r);
        snprintf(rn, sizeof rn, "%s-f%zu", base, j);
        js_add_rule(b, rn, &f);
        gb_free(&r);
        gb_free(&f);
        gb_free(&key);
        gb_free(&lit);
    }
    gb_printf(o, "\"{\" %s-f0 \"}\"", base);
    rc = 0;
out:
    free(keys);
    free(schemas);
    free(required);
    free(vnames);
    return rc;
}
