/* json_schema_allof.c - allOf (and $ref with sibling keywords) merged
 * into one plain schema: properties, required, additionalProperties,
 * bounds, enum/const, type and the rest. */
#include "json_schema_int.h"

#include <stdlib.h>
#include <string.h>

#include "../base/common.h"

typedef struct mlist {
    const json_t **v;
    int n, cap;
} mlist;

static int ml_push(mlist *l, const json_t *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        const json_t **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

/* s minus some keys (a new object) */
json_t *js_without(const json_t *s, const char *const *keys) {
    json_t *c = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) if (!js_in_list(k, keys)) json_object_set(c, k, v);
    return c;
}

json_t *js_keep(smoe_jsg *b, json_t *v) {
    json_array_append_new(b->owned, v);
    return v;
}

/* Flatten s into plain schemas (no allOf, no $ref with siblings). */
static int flatten(smoe_jsg *b, const json_t *s, mlist *out, int depth) {
    if (depth > JS_MAX_DEPTH) return js_where_err(b, "allOf/$ref nests more than %d levels", JS_MAX_DEPTH);
    if (json_is_true(s)) return 0;
    if (json_is_false(s)) return js_where_err(b, "unsatisfiable: allOf contains false");
    if (!json_is_object(s)) return js_where_err(b, "a schema must be an object or a boolean");
    if (js_check_keywords(b, s)) return -1;
    const json_t *ref = json_object_get(s, "$ref"), *all = json_object_get(s, "allOf");
    if (ref) {
        if (!json_is_string(ref)) return js_where_err(b, "'$ref' must be a string");
        const json_t *t = js_resolve_ref(b, json_string_value(ref));
        if (!t || flatten(b, t, out, depth + 1)) return -1;
    }
    if (all) {
        if (!json_is_array(all) || json_array_size(all) == 0) return js_where_err(b, "'allOf' must be a non-empty array");
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e) {
            size_t mark = js_path_push_i(b, "allOf", i);
            int rc = flatten(b, e, out, depth + 1);
            js_path_pop(b, mark);
            if (rc) return -1;
        }
    }
    if (ref || all) {
        static const char *const drop[] = {"$ref", "allOf", NULL};
        json_t *rest = js_keep(b, js_without(s, drop));
        if (js_other_validation(rest, (const char *const[]){NULL}) && ml_push(out, rest)) return smoe_errf(b->err, "out of memory");
        return 0;
    }
    if (ml_push(out, s)) return smoe_errf(b->err, "out of memory");
    return 0;
}

static json_t *all_of(json_t *list) {
    if (json_array_size(list) == 1) {
        json_t *one = json_incref(json_array_get(list, 0));
        json_decref(list);
        return one;
    }
    return json_pack("{s:o}", "allOf", list);
}

int js_merge_list(smoe_jsg *b, const json_t *const *items, int n_items, int depth, json_t **out) {
    mlist l = {0};
    json_t *m = json_object(), *props = json_object(); /* props: key -> array of schemas */
    json_t *required = json_array(), *ap_list = json_array(), *items_list = json_array();
    json_t *enums = NULL;
    bool ap_false = false, have_type = false, have_enum = false;
    int types = T_ALL;
    const json_t *prefix = NULL, *anyof = NULL, *pattern = NULL, *format = NULL;
    int rc = -1;
    json_object_set(m, "required", required);
    for (int i = 0; i < n_items; i++)
        if (flatten(b, items[i], &l, depth + 1)) goto done;
    /* every key any branch knows: properties and required */
    for (int i = 0; i < l.n; i++) {
        const json_t *s = l.v[i];
        const json_t *pr = json_object_get(s, "properties"), *rq = json_object_get(s, "required");
        const char *k;
        json_t *v;
        if (pr && !json_is_object(pr)) { js_where_err(b, "'properties' must be an object"); goto done; }
        if (pr) json_object_foreach((json_t *)pr, k, v) if (!json_object_get(props, k)) json_object_set_new(props, k, json_array());
        if (rq && !json_is_array(rq)) { js_where_err(b, "'required' must be an array of strings"); goto done; }
        size_t j;
        json_array_foreach(rq, j, v) {
            if (!json_is_string(v)) { js_where_err(b, "'required' must be an array of strings"); goto done; }
            if (!json_object_get(props, json_string_value(v))) json_object_set_new(props, json_string_value(v), json_array());
        }
    }
    for (int i = 0; i < l.n; i++) {
        const json_t *s = l.v[i];
        const char *k;
        json_t *v;
        const json_t *pr = json_object_get(s, "properties"), *ap = json_object_get(s, "additionalProperties");
        /* properties, and the other branches' keys under this one's additionalProperties */
        json_object_foreach(props, k, v) {
            const json_t *ps = pr ? json_object_get(pr, k) : NULL;
            if (ps) json_array_append(v, (json_t *)ps);
            else if (ap && !json_is_true(ap)) json_array_append(v, (json_t *)ap);
        }
        if (ap) {
            if (json_is_false(ap)) ap_false = true;
            else if (!json_is_true(ap)) json_array_append(ap_list, (json_t *)ap);
        }
        json_object_foreach((json_t *)s, k, v) {
            if (js_in_list(k, js_k_annotation) || js_in_list(k, js_k_container) || !strcmp(k, "properties") ||
                !strcmp(k, "additionalProperties"))
                continue;
            if (!strcmp(k, "required")) {
                size_t j;
                json_t *e;
                json_array_foreach(v, j, e) {
                    bool dup = false;
                    size_t x;
                    json_t *f;
                    json_array_foreach(required, x, f) dup |= json_equal(e, f);
                    if (!dup) json_array_append(required, e);
                }
            } else if (!strcmp(k, "type")) {
                int t = js_type_mask(b, s);
                if (t < 0) goto done;
                types &= t | ((t & T_NUMBER) ? T_INTEGER : 0);
                have_type = true;
            } else if (!strcmp(k, "enum") || !strcmp(k, "const")) {
                json_t *vals = !strcmp(k, "const") ? json_pack("[O]", v) : json_incref(v);
                if (!json_is_array(vals)) { json_decref(vals); js_where_err(b, "'enum' must be an array"); goto done; }
                if (!have_enum) enums = vals;
                else {
                    json_t *keepv = json_array();
                    size_t x, y;
                    json_t *e, *f;
                    json_array_foreach(enums, x, e) {
                        bool found = false;
                        json_array_foreach(vals, y, f) found |= json_equal(e, f);
                        if (found) json_array_append(keepv, e);
                    }
                    json_decref(enums);
                    json_decref(vals);
                    enums = keepv;
                }
                have_enum = true;
            } else if (!strcmp(k, "items")) {
                json_array_append(items_list, v);
            } else if (!strcmp(k, "prefixItems")) {
                if (prefix) { js_where_err(b, "allOf: two prefixItems cannot be merged"); goto done; }
                prefix = v;
            } else if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf")) {
                if (anyof) { js_where_err(b, "allOf: more than one anyOf/oneOf cannot be merged"); goto done; }
                anyof = v;
            } else if (!strcmp(k, "pattern") || !strcmp(k, "format")) {
                const json_t **slot = !strcmp(k, "pattern") ? &pattern : &format;
                if (*slot && !json_equal((json_t *)*slot, v)) { js_where_err(b, "allOf: two different '%s' values cannot be merged", k); goto done; }
                *slot = v;
            } else if (!strncmp(k, "min", 3) || !strncmp(k, "exclusiveMin", 12) || !strncmp(k, "max", 3) ||
                       !strncmp(k, "exclusiveMax", 12)) {
                if (!json_is_number(v)) { js_where_err(b, "'%s' must be a number", k); goto done; }
                bool lower = !strncmp(k, "min", 3) || !strncmp(k, "exclusiveMin", 12);
                const json_t *cur = json_object_get(m, k);
                if (!cur || (lower ? json_number_value(v) > json_number_value(cur) : json_number_value(v) < json_number_value(cur)))
                    json_object_set(m, k, v);
            } else {
                js_where_err(b, "allOf: keyword '%s' cannot be merged", k);
                goto done;
            }
        }
    }
    /* properties */
    json_t *mp = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
        if (json_array_size(v) == 0) json_object_set_new(mp, k, json_true());
        else {
            bool is_false = false;
            size_t j;
            json_t *e;
            json_array_foreach(v, j, e) is_false |= json_is_false(e);
            json_object_set_new(mp, k, is_false ? json_false() : all_of(json_incref(v)));
        }
    }
    if (json_object_size(mp)) json_object_set_new(m, "properties", mp);
    else json_decref(mp);
    if (json_array_size(required) == 0) json_object_del(m, "required");
    if (ap_false) json_object_set_new(m, "additionalProperties", json_false());
    else if (json_array_size(ap_list)) json_object_set_new(m, "additionalProperties", all_of(json_incref(ap_list)));
    if (json_array_size(items_list)) {
        bool is_false = false;
        size_t j;
        json_t *e;
        json_array_foreach(items_list, j, e) is_false |= json_is_false(e);
        json_object_set_new(m, "items", is_false ? json_false() : all_of(json_incref(items_list)));
    }
    if (prefix) json_object_set(m, "prefixItems", (json_t *)prefix);
    if (anyof) json_object_set(m, "anyOf", (json_t *)anyof);
    if (pattern) json_object_set(m, "pattern", (json_t *)pattern);
    if (format) json_object_set(m, "format", (json_t *)format);
    if (have_type) {
        if (!types) { js_where_err(b, "unsatisfiable: allOf requires types that no value has at once"); goto done; }
        static const char *const names[] = {"null", "boolean", "object", "array", "string", "number", "integer"};
        json_t *ta = json_array();
        if (types & T_NUMBER) types &= ~T_INTEGER;
        for (int i = 0; i < 7; i++) if (types & (1 << i)) json_array_append_new(ta, json_string(names[i]));
        json_object_set_new(m, "type", ta);
    }
    if (have_enum) {
        if (json_array_size(enums) == 0) { js_where_err(b, "unsatisfiable: the enum/const values of allOf have nothing in common"); goto done; }
        json_object_set(m, "enum", enums);
    }
    *out = js_keep(b, m);
    m = NULL;
    rc = 0;
done:
    json_decref(enums);
    json_decref(m);
    json_decref(props);
    json_decref(required);
    json_decref(ap_list);
    json_decref(items_list);
    free(l.v);
    return rc;
}
