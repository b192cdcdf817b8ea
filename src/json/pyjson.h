/* pyjson.h - JSON text exactly as Python writes it: json.dumps() with its
 * default separators and repr() of a float.
 *
 * mistral-common renders tools, tool calls and tool results with
 * json.dumps(..., ensure_ascii=False), so a chat prompt (src/chat) must hold
 * the very bytes Python writes, and a grammar (src/grammar) that spells a
 * float of a schema's enum/const must spell it as Python would.  Both use
 * this module; it depends on nothing of smoe but base/common.h.
 *
 * Python's rules: ", " and ": " separators, key order as stored, floats in
 * repr style; with ensure_ascii=False non-ASCII characters go out as
 * themselves (UTF-8), not as \uXXXX escapes.  Control characters, '"' and
 * '\' are escaped as Python does. */
#ifndef SMOE_PYJSON_H
#define SMOE_PYJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Python's json.dumps(v) with default separators, key order as stored,
 * floats as repr(), and the given ensure_ascii (True: every character above
 * U+007E and DEL as \uXXXX, astral ones as surrogate pairs, lowercase hex;
 * False: only '"', '\' and U+0000..U+001F are escaped).  Returns a malloc'd
 * NUL-terminated string (*len, when not NULL, gets its length; strings may
 * hold NUL characters, which come out escaped), or NULL with err. */
char *smoe_json_dumps_py(const json_t *v, bool ensure_ascii, size_t *len, char *err);

/* Python's repr() of a float: the shortest digits that read back as d,
 * positional when the decimal exponent is in [-4, 16), else d.ddde+XX;
 * "NaN", "Infinity", "-Infinity" as json.dumps writes them.  buf must hold
 * 32 bytes; returns the length written (NUL-terminated). */
size_t smoe_py_float_repr(double d, char *buf);

#endif
