// Dropout's Bernoulli mask, drawn as torch draws it on CPUs other than Intel's, faster
// (built and loaded by `native.py`; `dropout.py` calls it and checks it against torch).
//
// Why: on such CPUs torch's `bernoulli_(p)` (ATen's bernoulli_scalar_kernel, the default
// kernel; Intel CPUs take MKL instead) runs a serial loop that spends about 15 ns per entry:
// 0.8-1.0 ms for one (50, 1024) activation, more than the layer's ReLU and its share of the
// matrix product. The draws themselves are cheap: per entry one `random64()` of the CPU
// generator's Mersenne Twister (two 32-bit outputs, the first the high word), its low 53 bits
// scaled by 2^-53 and compared with p. This file runs that same generator on the same state
// (the bytes `torch.get_rng_state()` returns) and leaves it where torch's loop would.

#include <cstdint>
#include <cstring>

namespace {

constexpr int kN = 624;  // MT19937's state words
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu;

// The layout of torch's CPU generator state (CPUGeneratorImplState, legacy part): the seed,
// `left` and `seeded` as int32, `next`, then the 624 state words, each widened to 64 bits.
constexpr size_t kLeftAt = 8, kNextAt = 16, kStateAt = 24;

inline uint32_t twist(uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? kMatrixA : 0u);
}

// ATen's mt19937::next_state, in the same order (its in-place loop reads words it has just
// written, so the order matters).
void next_state(uint32_t* s) {
    int j = 0;
    for (; j < kN - kM; ++j) s[j] = s[j + kM] ^ twist(s[j], s[j + 1]);
    for (; j < kN - 1; ++j) s[j] = s[j + kM - kN] ^ twist(s[j], s[j + 1]);
    s[kN - 1] = s[kM - 1] ^ twist(s[kN - 1], s[0]);
}

inline uint32_t temper(uint32_t y) {
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

}  // namespace

extern "C" {

// Fill `out` with n entries 1.0f (kept) or 0.0f, each kept where the low 53 bits of its
// random64() are below `threshold` (the caller passes ceil(p * 2^53): the integer form of
// torch's `u < p` with u = those bits * 2^-53, exact). `state` (5056 bytes, torch's layout) is
// advanced in place. Returns 0, or -1 where the state does not look like one (nothing drawn).
int32_t asym_bernoulli_f32(uint8_t* state, float* out, int64_t n, uint64_t threshold) {
    int32_t left;
    uint64_t next;
    std::memcpy(&left, state + kLeftAt, sizeof left);
    std::memcpy(&next, state + kNextAt, sizeof next);
    if (left < 1 || left > kN || next > static_cast<uint64_t>(kN)) return -1;
    uint32_t s[kN];
    for (int j = 0; j < kN; ++j) {
        uint64_t word;
        std::memcpy(&word, state + kStateAt + 8 * static_cast<size_t>(j), sizeof word);
        s[j] = static_cast<uint32_t>(word);
    }
    // ATen's operator() is `if (--left == 0) next_state();` then the word at `next++`: with
    // `left` > 1 the next left - 1 draws are words next, next + 1, ... as they stand. So the
    // draws come in runs of consecutive words, tempered in one loop the compiler vectorises
    // (one draw at a time, branch and all, cost 4.4 ns a draw), into a buffer of pairs.
    constexpr int64_t kChunk = 2048;  // draws per pass: 1024 entries, in L1
    uint32_t buf[kChunk];
    constexpr uint64_t kLow53 = (uint64_t{1} << 53) - 1;
    for (int64_t done = 0; done < n;) {
        const int64_t entries = n - done < kChunk / 2 ? n - done : kChunk / 2;
        const int64_t draws = 2 * entries;
        for (int64_t pos = 0; pos < draws;) {
            if (left == 1) {  // the next draw regenerates, then takes word 0
                next_state(s);
                left = kN + 1;
                next = 0;
            }
            const int64_t run = draws - pos < left - 1 ? draws - pos : left - 1;
            const uint32_t* from = s + next;
            for (int64_t i = 0; i < run; ++i) buf[pos + i] = temper(from[i]);
            pos += run;
            next += static_cast<uint64_t>(run);
            left -= static_cast<int32_t>(run);
        }
        // 1.0f or 0.0f as bits and a mask: kept or not is a coin flip, and a branch on it
        // mispredicted about as often as p allows.
        for (int64_t i = 0; i < entries; ++i) {
            const uint64_t bits = (static_cast<uint64_t>(buf[2 * i]) << 32) | buf[2 * i + 1];
            const uint32_t one = 0x3f800000u & (0u - static_cast<uint32_t>((bits & kLow53) < threshold));
            std::memcpy(out + done + i, &one, sizeof one);
        }
        done += entries;
    }
    std::memcpy(state + kLeftAt, &left, sizeof left);
    std::memcpy(state + kNextAt, &next, sizeof next);
    for (int j = 0; j < kN; ++j) {
        const uint64_t word = s[j];
        std::memcpy(state + kStateAt + 8 * static_cast<size_t>(j), &word, sizeof word);
    }
    return 0;
}

}  // extern "C"
