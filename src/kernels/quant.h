/* quant.h - the GGUF (ggml) quantized block formats: scalar reference code.
 *
 * For every type there is a dequantizer (blocks -> float32) and a quantizer
 * (float32 -> blocks).  n counts elements and must be a multiple of the
 * type's block size: 32 for the Q*_0 / Q*_1 types, 256 for the K types.
 * Blocks are read and written byte by byte, little-endian, so they may sit
 * at any address (GGUF rows of 18-byte Q4_0 blocks are only 2-byte aligned).
 * Quantizers expect finite input; weights so large that a block's scale
 * overflows half precision give non-finite blocks (callers check).
 *
 * The byte layouts are ggml's, bit for bit.  "f16" is IEEE half, "d" a
 * scale, "q" the stored integer, element k of a block is x[k]:
 *
 *   Q4_0  18 B / 32   f16 d, u8 qs[16]: x[j] = d*(lo4(qs[j]) - 8),
 *                     x[j+16] = d*(hi4(qs[j]) - 8)
 *   Q4_1  20 B / 32   f16 d, f16 m, u8 qs[16]: as Q4_0 but x = d*q + m
 *   Q5_0  22 B / 32   f16 d, u32 qh, u8 qs[16]: q[j] = lo4(qs[j]) | bit j of
 *                     qh << 4, q[j+16] = hi4(qs[j]) | bit j+16 of qh << 4,
 *                     x = d*(q - 16)
 *   Q5_1  24 B / 32   f16 d, f16 m, u32 qh, u8 qs[16]: x = d*q + m
 *   Q8_0  34 B / 32   f16 d, i8 qs[32]: x = d*q
 *   Q8_1  36 B / 32   f16 d, f16 s (= d * sum of qs), i8 qs[32]: x = d*q
 *
 *   K types: a super-block of 256 in sub-blocks of 16 or 32, each with its
 *   own small integer scale (and min) under f16 super-block scales.  For
 *   the 2-bit planes of Q2_K/Q3_K, element k = 128h + 32g + l (h < 2,
 *   g < 4, l < 32) sits in qs[32h + l] at bits 2g..2g+1.
 *
 *   Q2_K  84 B   u8 scales[16] (low nibble scale, high nibble min of
 *                sub-block k/16), u8 qs[64], f16 d, f16 dmin:
 *                x = d*sc*q - dmin*mn, q in 0..3
 *   Q3_K 110 B   u8 hmask[32], u8 qs[64], u8 scales[12], f16 d: the 3rd
 *                bit of element k is bit 4h+g of hmask[l]; q = low2 - 4 when
 *                that bit is clear, low2 when set; 6-bit scale of sub-block
 *                s (16 elements): low 4 bits in scales[s] (s < 8, low nibble)
 *                or scales[s-8] (high nibble), high 2 bits at bits 2*(s/4)
 *                of scales[8 + s%4]; x = d*(scale - 32)*q
 *   Q4_K 144 B   f16 d, f16 dmin, u8 scales[12], u8 qs[128]: sub-block s
 *                (32 elements) in qs[32*(s/2) ..], low nibbles for even s,
 *                high for odd; 6-bit scale/min: s < 4: scales[s] & 63,
 *                scales[s+4] & 63; s >= 4: low 4 bits in the low/high
 *                nibble of scales[s+4], high 2 bits in bits 6-7 of
 *                scales[s-4] (scale) / scales[s] (min); x = d*sc*q - dmin*mn
 *   Q5_K 176 B   f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]: as
 *                Q4_K plus bit s of qh[l] as the 5th bit of element 32s + l
 *   Q6_K 210 B   u8 ql[128], u8 qh[64], i8 scales[16], f16 d: element
 *                k = 128h + 32g + l: low 4 bits in ql[64h + 32(g%2) + l]
 *                (low nibble for g < 2), high 2 bits at bits 2g of
 *                qh[32h + l]; x = d*scales[k/16]*(q - 32)
 *   Q8_K 292 B   f32 d, i8 qs[256], i16 bsums[16] (sums of 16 qs): x = d*q;
 *                the activation format for K-type dot products
 */
#ifndef SMOE_QUANT_H
#define SMOE_QUANT_H

#include <stdint.h>

#define SMOE_QK 32   /* elements per block of the Q*_0 / Q*_1 types */
#define SMOE_QK_K 256 /* elements per super-block of the K types */

void smoe_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q8_1(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q2_k(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q3_k(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q4_k(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q5_k(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q6_k(const void *src, float *dst, int64_t n);
void smoe_dequantize_row_q8_k(const void *src, float *dst, int64_t n);

/* Q4_0 .. Q8_1 and Q8_K round each block with its max-magnitude scale,
 * exactly as ggml's reference quantizers do, so their bytes match files
 * made by llama.cpp.  Q2_K .. Q6_K search each sub-block's scale (and min)
 * for the least squared error and then pick the integer sub-block codes
 * under the rounded super-block scales by trying neighbouring codes. */
void smoe_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q4_1(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q5_0(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q5_1(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q8_0(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q8_1(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q2_k(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q3_k(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q4_k(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q5_k(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q6_k(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q8_k(const float *src, void *dst, int64_t n);

#endif
