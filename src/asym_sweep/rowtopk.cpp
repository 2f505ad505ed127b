// Row-wise top-k by magnitude for float32 rows: the selection `selection.topk_rows` makes,
// compiled (built and loaded by `native.py`; without a compiler the torch path runs instead).
//
// Why: per-example selection (thesis eq. 6.3 applied to every example's row, the `sample`
// scope of docs/methods.md) is a top-k in each of the 50 rows of a layer's input, and torch's
// CPU top-k costs about 7 us per 1024-wide row (it builds (value, index) pairs and runs
// std::nth_element on them). A radix select on the rows' bit patterns needs three or four
// short passes over each row instead.
//
// Same selection as torch: the keys are those `selection.magnitude_keys` hands to
// torch.topk (the float's bits read as an int32, sign bit cleared unless the caller knows the
// row is non-negative), mapped to unsigned integers of the same order. Where the k-th largest
// key is unique, the kept set is determined and any exact method finds it. Where it ties with
// other entries, which of the tied entries torch keeps depends on its algorithm, so such a
// row is either resolved by the very algorithm torch runs on it (`resolve_ties`: the same
// std::nth_element / std::partial_sort call on the same pairs, checked against torch when
// the library loads) or handed back to the caller, who runs torch.topk on it. A tie among
// zeros needs neither: every candidate's value is zero, so the output is the same.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

inline uint32_t key_of(float value, bool nonnegative) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    // Signed int32 order (flip the sign bit) or |value|'s (clear it): torch's int32 keys.
    return nonnegative ? (bits ^ 0x80000000u) : (bits & 0x7fffffffu);
}

inline bool is_zero_key(uint32_t key, bool nonnegative) {
    // +0.0 and -0.0 as keys: 0x80000000 and 0 (signed order), or 0 (magnitude).
    return nonnegative ? (key == 0x80000000u || key == 0u) : key == 0u;
}

// torch's own selection (ATen TopKImpl.h, topk_impl_loop, largest=true, sorted=false) on the
// int32 keys, which it widens to int64: the same pairs, comparator and algorithm choice.
void torch_order_select(const uint32_t* keys, int64_t n, int64_t k, std::vector<std::pair<int64_t, int64_t>>& queue,
                        bool nonnegative, uint8_t* keep) {
    queue.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
        // Back to the int32 torch saw, then widened.
        const int32_t as_int32 = nonnegative ? static_cast<int32_t>(keys[j] ^ 0x80000000u) : static_cast<int32_t>(keys[j]);
        queue[static_cast<size_t>(j)] = {static_cast<int64_t>(as_int32), j};
    }
    auto greater = [](const std::pair<int64_t, int64_t>& a, const std::pair<int64_t, int64_t>& b) { return a.first > b.first; };
    if (k * 64 <= n) {
        std::partial_sort(queue.begin(), queue.begin() + k, queue.end(), greater);
    } else {
        std::nth_element(queue.begin(), queue.begin() + k - 1, queue.end(), greater);
    }
    std::memset(keep, 0, static_cast<size_t>(n));
    for (int64_t j = 0; j < k; ++j) keep[queue[static_cast<size_t>(j)].second] = 1;
}

// dst[j] = kept(j) ? row[j] : +0.0, as bits and a mask: a branch here mispredicts about as
// often as the kept set is irregular, and was the costliest line of the select.
template <typename Kept>
inline void keep_where(const float* row, float* dst, int64_t n, Kept kept) {
    for (int64_t j = 0; j < n; ++j) {
        uint32_t bits;
        std::memcpy(&bits, row + j, sizeof bits);
        bits &= 0u - static_cast<uint32_t>(kept(j));
        std::memcpy(dst + j, &bits, sizeof bits);
    }
}

// The k-th largest key of one row by most-significant-digit radix select (8-bit digits),
// finished by a sort once 64 or fewer candidates are left. Returns it; *above is how many
// keys are strictly larger, *equal how many equal it.
uint32_t kth_largest(const uint32_t* keys, int64_t n, int64_t k, uint32_t* scratch, uint32_t guess, int64_t* above,
                     int64_t* equal) {
    const uint32_t* cand = keys;
    int64_t m = n;
    int64_t need = k;  // still to take from the candidates
    int64_t larger = 0;
    for (int shift = 24; shift >= 0 && m > 64; shift -= 8) {
        // Four histograms, summed after: consecutive equal digits (a row's values share a few
        // exponents) would otherwise serialise on one counter. On the first digit the same
        // pass also keeps the keys of the bucket the previous row chose (`guess`): rows of one
        // batch mostly choose the same one, and then the separate pass below is saved.
        uint32_t part[4][256] = {{0}};
        int64_t j4 = 0;
        int64_t guessed = 0;
        if (shift == 24) {
            for (; j4 + 4 <= m; j4 += 4) {
                for (int lane = 0; lane < 4; ++lane) {
                    const uint32_t key = cand[j4 + lane];
                    ++part[lane][key >> 24];
                    scratch[guessed] = key;
                    guessed += (key >> 24) == guess;
                }
            }
            for (; j4 < m; ++j4) {
                ++part[0][cand[j4] >> 24];
                scratch[guessed] = cand[j4];
                guessed += (cand[j4] >> 24) == guess;
            }
        } else {
            for (; j4 + 4 <= m; j4 += 4) {
                ++part[0][(cand[j4] >> shift) & 0xffu];
                ++part[1][(cand[j4 + 1] >> shift) & 0xffu];
                ++part[2][(cand[j4 + 2] >> shift) & 0xffu];
                ++part[3][(cand[j4 + 3] >> shift) & 0xffu];
            }
            for (; j4 < m; ++j4) ++part[0][(cand[j4] >> shift) & 0xffu];
        }
        uint32_t digit = 255;
        int64_t cum = 0;
        int64_t in_bucket = 0;
        while (true) {
            in_bucket = part[0][digit] + part[1][digit] + part[2][digit] + part[3][digit];
            if (cum + in_bucket >= need) break;
            cum += in_bucket;
            --digit;
        }
        larger += cum;
        need -= cum;
        // Keep the candidates in the chosen bucket (they share every digit so far), without a
        // branch: which entries are in it is close to random, and a mispredicted branch per
        // entry cost more than the rest of the select.
        int64_t kept = 0;
        if (shift == 24 && digit == guess) {
            kept = guessed;
        } else {
            for (int64_t j = 0; j < m; ++j) {
                scratch[kept] = cand[j];
                kept += ((cand[j] >> shift) & 0xffu) == digit;
            }
        }
        cand = scratch;
        m = kept;
        if (std::all_of(scratch + 1, scratch + m, [&](uint32_t key) { return key == scratch[0]; })) {
            // One key fills the bucket (a ReLU row's zeros, mostly): it is the k-th largest.
            *above = larger;
            *equal = m;
            return scratch[0];
        }
    }
    // The rest by sorting: the k-th largest key is the need-th largest candidate.
    if (cand != scratch) std::copy(cand, cand + m, scratch);
    std::sort(scratch, scratch + m, [](uint32_t a, uint32_t b) { return a > b; });
    const uint32_t kth = scratch[need - 1];
    int64_t eq = 0, gt = 0;
    for (int64_t j = 0; j < m; ++j) {
        eq += scratch[j] == kth;
        gt += scratch[j] > kth;
    }
    *above = larger + gt;
    *equal = eq;
    return kth;
}

// One contiguous range of rows, [r0, r1), as the entry point describes; its own buffers.
int64_t select_rows(const float* v, float* out, int64_t r0, int64_t r1, int64_t n, int64_t k, bool nonneg,
                    bool resolve_ties, int64_t* left) {
    std::vector<uint32_t> keys(static_cast<size_t>(n)), scratch(static_cast<size_t>(n));
    std::vector<uint8_t> keep(static_cast<size_t>(n));
    std::vector<std::pair<int64_t, int64_t>> queue;
    // Once a row ties, the rest of the range is taken to tie too (quantised pixels all do)
    // and goes straight to torch's algorithm, here or the caller's, without the select.
    bool ties_seen = false;
    uint32_t guess = 256;  // the first digit of the previous row's k-th key (none yet)
    int64_t n_left = 0;
    for (int64_t r = r0; r < r1; ++r) {
        if (ties_seen && !resolve_ties) {
            left[n_left++] = r;
            continue;
        }
        const float* row = v + r * n;
        float* dst = out + r * n;
        for (int64_t j = 0; j < n; ++j) keys[j] = key_of(row[j], nonneg);
        if (!ties_seen) {
            int64_t above = 0, equal = 0;
            const uint32_t kth = kth_largest(keys.data(), n, k, scratch.data(), guess, &above, &equal);
            guess = kth >> 24;
            if (above + equal == k || is_zero_key(kth, nonneg)) {
                // Keys >= kth are exactly the k kept (unique k-th), or the kept beyond those
                // above kth are zeros whichever they are (a tie among zeros).
                const uint32_t lowest = above + equal == k ? kth : kth + 1;
                keep_where(row, dst, n, [&](int64_t j) { return keys[j] >= lowest; });
                continue;
            }
            ties_seen = true;
            if (!resolve_ties) {
                left[n_left++] = r;
                continue;
            }
        }
        torch_order_select(keys.data(), n, k, queue, nonneg, keep.data());
        keep_where(row, dst, n, [&](int64_t j) { return keep[j] != 0; });
    }
    return n_left;
}

}  // namespace

extern "C" {

// For each of `rows` contiguous rows of `n` floats in `v`, write into `out` the row with all
// but its k largest-key entries set to zero (1 <= k < n). Returns how many rows it left for
// the caller, their indices in `left` (ascending); those rows of `out` are unspecified.
// Without `resolve_ties` it leaves the first row whose k-th key ties and every row after it.
// With `resolve_ties` and `threads` > 1 the rows are split over that many threads of the
// OpenMP runtime torch runs on (the caller checks it is the same one, `asym_openmp_threads`):
// its idle worker otherwise spins beside the helper (a pool of our own gained nothing).
int64_t asym_topk_rows_f32(const float* v, float* out, int64_t rows, int64_t n, int64_t k, int32_t nonnegative,
                           int32_t resolve_ties, int32_t threads, int64_t* left) {
    const bool nonneg = nonnegative != 0;
    // A small block is not worth waking a second thread for.
    if (!resolve_ties || threads <= 1 || rows < 2 || rows * n < 8192) {
        return select_rows(v, out, 0, rows, n, k, nonneg, resolve_ties != 0, left);
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        select_rows(v, out, rows * t / nt, rows * (t + 1) / nt, n, k, nonneg, true, left);
    }
#else
    select_rows(v, out, 0, rows, n, k, nonneg, true, left);
#endif
    return 0;
}

// The threads an OpenMP parallel region opened here would get (omp_get_max_threads), or 0
// where the helper was built without OpenMP. It follows torch.set_num_threads exactly when
// the helper shares torch's OpenMP runtime, which is how the caller tells.
int32_t asym_openmp_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 0;
#endif
}

}  // extern "C"
