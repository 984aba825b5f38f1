// x86 vector intrinsics Swift cannot spell: the int8 dot product (AVX-512 VNNI), int<->float lane conversions, and
// the CPU feature check that decides at run time whether the kernels using them may run. Everything is
// `static inline`: a Swift module importing this header compiles only what it calls, for its own target CPU.
#pragma once
#include <stdint.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

typedef int32_t sw_i32x16 __attribute__((ext_vector_type(16)));
typedef uint8_t sw_u8x64 __attribute__((ext_vector_type(64)));
typedef int8_t sw_i8x64 __attribute__((ext_vector_type(64)));
typedef int8_t sw_i8x16 __attribute__((ext_vector_type(16)));
typedef float sw_f32x16 __attribute__((ext_vector_type(16)));
typedef float sw_f32x4 __attribute__((ext_vector_type(4)));
typedef float sw_f32x2 __attribute__((ext_vector_type(2)));

/// 1 when the CPU has AVX-512 F, DQ, CD, BW, VL and VNNI and the OS saves the AVX-512 registers (XCR0 bits
/// 1, 2, 5, 6, 7), i.e. when code compiled for `-target-cpu cascadelake` may run here.
static inline int sw_cpu_has_avx512_vnni(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned ebx = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);  // F DQ CD BW VL
    return (b & ebx) == ebx && (c & (1u << 11)) != 0;                                    // VNNI
#else
    return 0;
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/// acc[i] + Σ_{k<4} a[4i+k]·b[4i+k], unsigned × signed bytes, exact in int32.
static inline __attribute__((always_inline)) sw_i32x16 sw_dpbusd(sw_i32x16 acc, sw_u8x64 a, sw_i8x64 b) {
    return (sw_i32x16)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)a, (__m512i)b);
}

static inline __attribute__((always_inline)) sw_f32x16 sw_i32_to_f32(sw_i32x16 v) {
    return (sw_f32x16)_mm512_cvtepi32_ps((__m512i)v);
}

/// Low and high nibbles of 64 bytes (Swift's generic SIMD byte ops compile to per-lane loops).
static inline __attribute__((always_inline)) sw_u8x64 sw_low_nibbles(sw_u8x64 v) { return v & (uint8_t)0x0F; }
static inline __attribute__((always_inline)) sw_u8x64 sw_high_nibbles(sw_u8x64 v) { return (sw_u8x64)_mm512_and_si512(_mm512_srli_epi16((__m512i)v, 4), _mm512_set1_epi8(0x0F)); }

/// max |v[i]| over two vectors.
static inline __attribute__((always_inline)) float sw_abs_max(sw_f32x16 a, sw_f32x16 b) {
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps((__m512)a), _mm512_abs_ps((__m512)b)));
}

/// Σ (a[i] + b[i]).
static inline __attribute__((always_inline)) int32_t sw_sum_i32(sw_i32x16 a, sw_i32x16 b) {
    return _mm512_reduce_add_epi32(_mm512_add_epi32((__m512i)a, (__m512i)b));
}

/// Each of 4 floats repeated over 4 lanes.
static inline __attribute__((always_inline)) sw_f32x16 sw_spread4(sw_f32x4 v) {
    return __builtin_shufflevector(v, v, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
}

/// Each of 2 floats repeated over 8 lanes.
static inline __attribute__((always_inline)) sw_f32x16 sw_spread2(sw_f32x2 v) {
    return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/// Round to nearest (even), as int32.
static inline __attribute__((always_inline)) sw_i32x16 sw_f32_round_i32(sw_f32x16 v) {
    return (sw_i32x16)_mm512_cvtps_epi32((__m512)v);
}

/// Saturate int32 lanes to int8.
static inline __attribute__((always_inline)) sw_i8x16 sw_i32_to_i8(sw_i32x16 v) {
    return (sw_i8x16)_mm512_cvtsepi32_epi8((__m512i)v);
}
#endif
