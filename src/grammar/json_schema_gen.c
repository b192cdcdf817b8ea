/* json_schema_gen.c - one subschema to one grammar rule: the dispatch by
 * keyword ($ref, allOf, anyOf/oneOf, enum/const) and by type, and the
 * object and array schemas, whose parts are schemas again.  Every subschema
 * becomes a rule "sN". */
#include "json_schema_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/common.h"

/* ---------------------------------------------------------------------------
 * $ref rules (recursion allowed: the rule is named before its body)
 * ------------------------------------------------------------------------- */

static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name);

static int ref_rule(smoe_jsg *b, const char *ref, int depth, char *name) {
    for (int i = 0; i < b->n_refs; i++) {
        if (b->refs[i].root == b->root && !strcmp(b->refs[i].ref, ref)) {
            strcpy(name, b->refs[i].name);
            return 0;
        }
    }
    const json_t *target = js_resolve_ref(b, ref);
    if (!target) return -1;
    if (b->n_refs == b->cap_refs) {
        int cap = b->cap_refs ? b->cap_refs * 2 : 16;
        jref *nr = realloc(b->refs, (size_t)cap * sizeof *nr);
        if (!nr) return smoe_errf(b->err, "out of memory");
        b->refs = nr;
        b->cap_refs = cap;
    }
    jref *r = &b->refs[b->n_refs];
    r->root = b->root;
    r->ref = strdup(ref);
    if (!r->ref) return smoe_errf(b->err, "out of memory");
    /* the rule exists (by name) before its body is compiled: recursion */
    char saved[sizeof b->path];
    strcpy(saved, b->path);
    snprintf(b->path, sizeof b->path, "%s", ref + 1);
    js_new_name(b, r->name);
    b->n_refs++;
    strcpy(name, r->name);
    char own[NAME_LEN];
    strcpy(own, name);
    int rc = gen_named(b, target, depth + 1, own);
    strcpy(b->path, saved);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Objects
 * ------------------------------------------------------------------------- */

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
            int l = smoe_utf8_decode(s + pos, len - pos, &cp);
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
        smoe_buf body = {0};
        int alts = 0;
        if (!t[i].terminal) { smoe_buf_adds(&body, "\"\\\"\""); alts++; }
        /* any character other than the children's, then anything */
        uint32_t *r = malloc(((size_t)nt + 6) * 2 * sizeof *r);
        size_t nr = 0;
        if (!r) { free(t); smoe_buf_free(&body); return smoe_errf(b->err, "out of memory"); }
        /* children code points, sorted */
        uint32_t *cps = malloc(((size_t)nt + 1) * sizeof *cps);
        size_t nc = 0;
        if (!cps) { free(r); free(t); smoe_buf_free(&body); return smoe_errf(b->err, "out of memory"); }
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
            if (alts++) smoe_buf_adds(&body, " | ");
            smoe_buf_adds(&body, "(");
            gr_emit_json_charset(&body, r, nr);
            if (!special_child) smoe_buf_adds(&body, " | j-kesc");
            smoe_buf_adds(&body, ") j-kchar* \"\\\"\"");
        }
        for (int32_t c = t[i].child; c >= 0; c = t[c].sibling) {
            uint8_t u[4];
            int ul = smoe_utf8_encode(t[c].cp, u);
            smoe_buf enc = {0};
            js_encode_string(&enc, (const char *)u, (size_t)ul);
            if (alts++) smoe_buf_adds(&body, " | ");
            if (enc.oom) body.oom = true; /* enc.n - 2 would wrap around */
            else gb_lit(&body, enc.p + 1, enc.n - 2); /* without the quotes */
            smoe_buf_addf(&body, " s%d", base + c);
            smoe_buf_free(&enc);
        }
        free(r);
        free(cps);
        snprintf(nm, sizeof nm, "s%d", base + i);
        js_add_rule(b, nm, &body);
        smoe_buf_free(&body);
    }
    free(t);
    /* the key with its opening quote */
    smoe_buf kb = {0};
    smoe_buf_addf(&kb, "\"\\\"\" s%d", base);
    js_new_name(b, name);
    js_add_rule(b, name, &kb);
    smoe_buf_free(&kb);
    return 0;
}

static int gen_object(smoe_jsg *b, const json_t *s, int depth, smoe_buf *o) {
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
        smoe_buf r = {0}, f = {0};
        smoe_buf key = {0}, lit = {0};
        if (j == n) {
            if (allow_extra) {
                smoe_buf_addf(&r, "(\",\" j-sep %s \":\" j-sep %s)*", addk, addv);
                smoe_buf_addf(&f, "(%s \":\" j-sep %s %s-r%zu)?", addk, addv, base, n);
            } else {
                smoe_buf_adds(&r, "\"\"");
                smoe_buf_adds(&f, "\"\"");
            }
        } else {
            js_encode_string(&key, keys[j], strlen(keys[j]));
            gb_lit(&lit, key.p, key.n);
            smoe_buf kvb = {0};
            smoe_buf_add(&kvb, lit.p, lit.n);
            smoe_buf_addf(&kvb, " \":\" j-sep %s", vnames[j]);
            if (key.oom || lit.oom || kvb.oom) { /* add_rule passes r's out-of-memory on */
                r.oom = true;
            } else if (required[j]) {
                smoe_buf_addf(&r, "\",\" j-sep %s %s-r%zu", kvb.p, base, j + 1);
                smoe_buf_addf(&f, "%s %s-r%zu", kvb.p, base, j + 1);
            } else {
                smoe_buf_addf(&r, "(\",\" j-sep %s)? %s-r%zu", kvb.p, base, j + 1);
                smoe_buf_addf(&f, "%s %s-r%zu | %s-f%zu", kvb.p, base, j + 1, base, j + 1);
            }
            smoe_buf_free(&kvb);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-r%zu", base, j);
        js_add_rule(b, rn, &r);
        snprintf(rn, sizeof rn, "%s-f%zu", base, j);
        js_add_rule(b, rn, &f);
        smoe_buf_free(&r);
        smoe_buf_free(&f);
        smoe_buf_free(&key);
        smoe_buf_free(&lit);
    }
    smoe_buf_addf(o, "\"{\" %s-f0 \"}\"", base);
    rc = 0;
out:
    free(keys);
    free(schemas);
    free(required);
    free(vnames);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Arrays
 * ------------------------------------------------------------------------- */

static int gen_array(smoe_jsg *b, const json_t *s, int depth, smoe_buf *o) {
    const json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    if (items && json_is_array(items)) return js_where_err(b, "'items' as an array (draft 7 tuples) is not supported: use prefixItems");
    if (items && !json_is_boolean(items) && !json_is_object(items)) return js_where_err(b, "'items' must be a schema");
    if (prefix && !json_is_array(prefix)) return js_where_err(b, "'prefixItems' must be an array of schemas");
    int64_t mn, mx;
    if (js_count_kw(b, s, "minItems", &mn) || js_count_kw(b, s, "maxItems", &mx)) return -1;
    if (mn < 0) mn = 0;
    bool inf = mx < 0;
    size_t k = prefix ? json_array_size(prefix) : 0;
    bool rest = !(items && json_is_false(items));
    /* a prefix item that is false caps the length */
    for (size_t j = 0; j < k; j++)
        if (json_is_false(json_array_get(prefix, j))) {
            if (inf || mx > (int64_t)j) { mx = (int64_t)j; inf = false; }
            k = j;
            break;
        }
    if (!rest && (inf || mx > (int64_t)k)) { mx = (int64_t)k; inf = false; }
    if (!inf && mn > mx) return js_where_err(b, "unsatisfiable: minItems %lld is above maxItems %lld (or what items/prefixItems allow)",
                                         (long long)mn, (long long)mx);
    size_t P = inf || (int64_t)k < mx ? k : (size_t)mx;
    char (*en)[NAME_LEN] = malloc((P + 1) * sizeof *en);
    char restn[NAME_LEN] = "";
    if (!en) return smoe_errf(b->err, "out of memory");
    for (size_t j = 0; j < P; j++) {
        size_t mark = js_path_push_i(b, "prefixItems", j);
        int r = js_gen(b, json_array_get(prefix, j), depth + 1, en[j]);
        js_path_pop(b, mark);
        if (r) { free(en); return -1; }
    }
    bool more = rest && (inf || mx > (int64_t)P);
    if (more) {
        size_t mark = js_path_push(b, "items");
        int r = js_gen(b, items ? items : json_true(), depth + 1, restn);
        js_path_pop(b, mark);
        if (r) { free(en); return -1; }
    }
    js_need(b, P_SEP);
    char base[NAME_LEN];
    js_new_name(b, base);
    /* A_i: elements i+1.. once i are written */
    for (size_t i = P + 1; i-- > 0;) {
        smoe_buf a = {0};
        const char *sep = i == 0 ? "" : "\",\" j-sep ";
        if (i == P) {
            if (!more) smoe_buf_adds(&a, "\"\"");
            else {
                int64_t lo = mn - (int64_t)i > 0 ? mn - (int64_t)i : 0, hi = inf ? -1 : mx - (int64_t)i;
                if (i == 0) {
                    char q[64];
                    if (hi < 0) snprintf(q, sizeof q, "{%lld,}", (long long)(lo > 0 ? lo - 1 : 0));
                    else snprintf(q, sizeof q, "{%lld,%lld}", (long long)(lo > 0 ? lo - 1 : 0), (long long)(hi - 1));
                    if (lo > 0) smoe_buf_addf(&a, "%s (\",\" j-sep %s)%s", restn, restn, q);
                    else smoe_buf_addf(&a, "(%s (\",\" j-sep %s)%s)?", restn, restn, q);
                } else {
                    if (hi < 0) smoe_buf_addf(&a, "(\",\" j-sep %s){%lld,}", restn, (long long)lo);
                    else smoe_buf_addf(&a, "(\",\" j-sep %s){%lld,%lld}", restn, (long long)lo, (long long)hi);
                }
            }
        } else if ((int64_t)i < mn) {
            smoe_buf_addf(&a, "%s%s %s-a%zu", sep, en[i], base, i + 1);
        } else {
            smoe_buf_addf(&a, "(%s%s %s-a%zu)?", sep, en[i], base, i + 1);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-a%zu", base, i);
        js_add_rule(b, rn, &a);
        smoe_buf_free(&a);
    }
    free(en);
    smoe_buf_addf(o, "\"[\" %s-a0 \"]\"", base);
    return 0;
}

/* ---------------------------------------------------------------------------
 * One schema
 * ------------------------------------------------------------------------- */

static bool value_has_type(const json_t *v, int mask) {
    switch (json_typeof(v)) {
    case JSON_NULL: return mask & T_NULL;
    case JSON_TRUE: case JSON_FALSE: return mask & T_BOOL;
    case JSON_OBJECT: return mask & T_OBJECT;
    case JSON_ARRAY: return mask & T_ARRAY;
    case JSON_STRING: return mask & T_STRING;
    case JSON_INTEGER: return mask & (T_NUMBER | T_INTEGER);
    case JSON_REAL: {
        double d = json_real_value(v);
        return (mask & T_NUMBER) || ((mask & T_INTEGER) && d == floor(d) && isfinite(d));
    }
    }
    return false;
}

static int gen_types(smoe_jsg *b, const json_t *s, int depth, smoe_buf *o) {
    int mask = js_type_mask(b, s);
    if (mask < 0) return -1;
    if (!json_object_get(s, "type")) {
        /* infer from the keywords present */
        static const char *const kobj[] = {"properties", "required", "additionalProperties", NULL};
        static const char *const karr[] = {"items", "prefixItems", "minItems", "maxItems", NULL};
        static const char *const kstr[] = {"minLength", "maxLength", "pattern", "format", NULL};
        static const char *const knum[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
        int inferred = 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)s, k, v) {
            (void)v;
            if (js_in_list(k, kobj)) inferred |= T_OBJECT;
            if (js_in_list(k, karr)) inferred |= T_ARRAY;
            if (js_in_list(k, kstr)) inferred |= T_STRING;
            if (js_in_list(k, knum)) inferred |= T_NUMBER;
        }
        if (!inferred) {
            js_need(b, P_VALUE);
            smoe_buf_adds(o, "j-value");
            return 0;
        }
        mask = inferred;
    }
    if (mask & T_NUMBER) mask &= ~T_INTEGER;
    int alts = 0;
    smoe_buf_adds(o, "(");
    for (int bit = 1; bit <= T_INTEGER; bit <<= 1) {
        if (!(mask & bit)) continue;
        if (alts++) smoe_buf_adds(o, " | ");
        int rc = 0;
        switch (bit) {
        case T_NULL: smoe_buf_adds(o, "\"null\""); break;
        case T_BOOL: smoe_buf_adds(o, "\"true\" | \"false\""); break;
        case T_OBJECT: rc = gen_object(b, s, depth, o); break;
        case T_ARRAY: rc = gen_array(b, s, depth, o); break;
        case T_STRING: rc = js_gen_string(b, s, o); break;
        case T_NUMBER: rc = js_gen_number(b, s, o); break;
        case T_INTEGER: rc = js_gen_integer(b, s, o); break;
        }
        if (rc) return -1;
    }
    smoe_buf_adds(o, ")");
    return 0;
}

static int gen_body(smoe_jsg *b, const json_t *s, int depth, smoe_buf *o) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s)) { js_need(b, P_VALUE); smoe_buf_adds(o, "j-value"); return 0; }
    if (json_is_false(s)) return js_where_err(b, "unsatisfiable: the schema is false");
    if (!json_is_object(s)) return js_where_err(b, "a schema must be an object or a boolean");
    if (js_check_keywords(b, s)) return -1;
    const json_t *ref = json_object_get(s, "$ref"), *all = json_object_get(s, "allOf");
    const json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    char nm[NAME_LEN];
    if (ref && !json_is_string(ref)) return js_where_err(b, "'$ref' must be a string");
    if (ref && !js_other_validation(s, (const char *const[]){"$ref", NULL})) {
        if (ref_rule(b, json_string_value(ref), depth, nm)) return -1;
        smoe_buf_adds(o, nm);
        return 0;
    }
    if (ref || all) {
        json_t *merged;
        if (js_merge_list(b, &s, 1, depth, &merged)) return -1;
        return gen_body(b, merged, depth + 1, o);
    }
    if (any && one) return js_where_err(b, "anyOf together with oneOf is not supported");
    if (any || one) {
        const json_t *list = any ? any : one;
        const char *kw = any ? "anyOf" : "oneOf";
        if (!json_is_array(list) || json_array_size(list) == 0) return js_where_err(b, "'%s' must be a non-empty array", kw);
        static const char *const drop[] = {"anyOf", "oneOf", NULL};
        json_t *siblings = js_keep(b, js_without(s, drop));
        bool has_siblings = js_other_validation(siblings, (const char *const[]){NULL}) != NULL;
        smoe_buf_adds(o, "(");
        size_t i;
        json_t *e;
        int alts = 0;
        json_array_foreach(list, i, e) {
            size_t mark = js_path_push_i(b, kw, i);
            const json_t *branch = e;
            int rc = 0;
            if (json_is_false(e)) { js_path_pop(b, mark); continue; } /* never matches */
            if (has_siblings) {
                const json_t *pair[2] = {siblings, e};
                json_t *merged;
                rc = js_merge_list(b, pair, 2, depth, &merged);
                branch = merged;
            }
            if (!rc) rc = js_gen(b, branch, depth + 1, nm);
            js_path_pop(b, mark);
            if (rc) return -1;
            if (alts++) smoe_buf_adds(o, " | ");
            smoe_buf_adds(o, nm);
        }
        smoe_buf_adds(o, ")");
        if (!alts) return js_where_err(b, "unsatisfiable: every %s branch is false", kw);
        return 0;
    }
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        const char *other = js_other_validation(s, (const char *const[]){"enum", "const", "type", NULL});
        if (other) return js_where_err(b, "%s together with '%s' is not supported", en ? "enum" : "const", other);
        if (en && (!json_is_array(en))) return js_where_err(b, "'enum' must be an array");
        int mask = js_type_mask(b, s);
        if (mask < 0) return -1;
        int alts = 0;
        smoe_buf_adds(o, "(");
        size_t n = en ? json_array_size(en) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *v = en ? json_array_get(en, i) : cn;
            if (!value_has_type(v, mask)) continue;
            if (cn && en && !json_equal((json_t *)v, (json_t *)cn)) continue;
            if (alts++) smoe_buf_adds(o, " | ");
            if (js_emit_value(b, o, v, 0)) return -1;
        }
        smoe_buf_adds(o, ")");
        if (!alts) return js_where_err(b, "unsatisfiable: %s", en && json_array_size(en) == 0 ? "enum is empty"
                                                               : "no enum/const value has an allowed type");
        return 0;
    }
    return gen_types(b, s, depth, o);
}

static int gen_named(smoe_jsg *b, const json_t *s, int depth, const char *name) {
    smoe_buf body = {0};
    int rc = gen_body(b, s, depth, &body);
    if (rc == 0) js_add_rule(b, name, &body);
    smoe_buf_free(&body);
    return rc;
}

/* A rule for s; name gets its name. */
int js_gen(smoe_jsg *b, const json_t *s, int depth, char *name) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "the schema nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) {
        js_need(b, P_VALUE);
        strcpy(name, "j-value");
        return 0;
    }
    js_new_name(b, name);
    return gen_named(b, s, depth, name);
}
