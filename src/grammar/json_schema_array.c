/* json_schema_array.c - "array" schemas: prefixItems, items, minItems and
 * maxItems as a chain of rules, one per position. */
#include "json_schema_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "../common.h"

int js_gen_array(smoe_jsg *b, const json_t *s, int depth, gr_buf *o) {
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
        gr_buf a = {0};
        const char *sep = i == 0 ? "" : "\",\" j-sep ";
        if (i == P) {
            if (!more) gb_puts(&a, "\"\"");
            else {
                int64_t lo = mn - (int64_t)i > 0 ? mn - (int64_t)i : 0, hi = inf ? -1 : mx - (int64_t)i;
                if (i == 0) {
                    char q[64];
                    if (hi < 0) snprintf(q, sizeof q, "{%lld,}", (long long)(lo > 0 ? lo - 1 : 0));
                    else snprintf(q, sizeof q, "{%lld,%lld}", (long long)(lo > 0 ? lo - 1 : 0), (long long)(hi - 1));
                    if (lo > 0) gb_printf(&a, "%s (\",\" j-sep %s)%s", restn, restn, q);
                    else gb_printf(&a, "(%s (\",\" j-sep %s)%s)?", restn, restn, q);
                } else {
                    if (hi < 0) gb_printf(&a, "(\",\" j-sep %s){%lld,}", restn, (long long)lo);
                    else gb_printf(&a, "(\",\" j-sep %s){%lld,%lld}", restn, (long long)lo, (long long)hi);
                }
            }
        } else if ((int64_t)i < mn) {
            gb_printf(&a, "%s%s %s-a%zu", sep, en[i], base, i + 1);
        } else {
            gb_printf(&a, "(%s%s %s-a%zu)?", sep, en[i], base, i + 1);
        }
        char rn[NAME_LEN + 40];
        snprintf(rn, sizeof rn, "%s-a%zu", base, i);
        js_add_rule(b, rn, &a);
        gb_free(&a);
    }
    free(en);
    gb_printf(o, "\"[\" %s-a0 \"]\"", base);
    return 0;
}
