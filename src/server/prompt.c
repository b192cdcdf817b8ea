/* prompt.c - chat messages to prompt tokens for `smoe serve` (see
 * prompt.h), through the chat renderer of src/chat/. */
#include "prompt.h"

#include "../chat/chat.h"
#include "../common.h"
#include "state.h"

int srv_render_chat(srv *s, const json_t *messages, const json_t *body, smoe_tokens *out, char *err) {
    json_t *req = json_object(), *msgs = json_deep_copy(messages);
    if (!req || !msgs) {
        json_decref(req);
        json_decref(msgs);
        return smoe_errf(err, "out of memory");
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
        if (json_is_object(m)) json_object_del(m, SMOE_CHAT_GENERATED_IDS); /* clients may not place raw ids */
    json_object_set_new(req, "messages", msgs);
    static const char *const keys[] = {"tools", "tool_choice", "parallel_tool_calls"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        json_t *v = json_object_get(body, keys[k]);
        if (v) json_object_set(req, keys[k], v);
    }
    int rc = smoe_chat_render(s->tok, (smoe_chat_format)s->chat_format, req, out, err);
    json_decref(req);
    return rc;
}
