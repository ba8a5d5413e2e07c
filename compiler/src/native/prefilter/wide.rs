//! The fingerprint filters asked at eight positions at once, with AVX2
//! where the processor has it. One position at a time, the two probes
//! cost some thirty instructions per byte of a body; eight at a time, the
//! same hashes ([`super::search`]'s 32-bit products) and the bits they
//! ask for are taken in vector lanes, and only the filter words are read
//! one by one: a gather instruction is no faster on the processors
//! measured, and much slower on those patched against Downfall. Only the
//! positions some filter lets through leave the vector code. Exact: a
//! position is reported here if and only if the one-at-a-time probes
//! would let it through.

use super::search::{Filter, HI_K, LO_K, MID_K, MIX, WORDS_BITS};

/// Bytes read for one step of eight positions: the eight bytes of the
/// last position's window start seven bytes in.
const STEP_BYTES: usize = 16;

/// Positions per step.
const STEP: usize = 8;

/// Whether this processor runs [`filtered`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Calls `candidate(at, long, mid)` for each position `at` from 0, eight
/// at a time while sixteen bytes remain, where the `long` filter lets the
/// eight bytes there through or the `mid` one (when given) their first
/// four; returns the first position not asked. Asks none, and returns 0,
/// where [`available`] is false.
pub(super) fn filtered(
    long: &Filter,
    mid: Option<&Filter>,
    bytes: &[u8],
    candidate: &mut dyn FnMut(usize, bool, bool),
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX2 is present, just checked.
        return unsafe { avx2::filtered(long, mid, bytes, candidate) };
    }
    let _ = (long, mid, bytes, candidate);
    0
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    /// Byte indices, within the sixteen bytes at a step's start, of the
    /// four-byte words at its eight positions (`LOW`) and four bytes
    /// further on (`HIGH`): a long fingerprint's two halves. Both 128-bit
    /// lanes hold the same sixteen bytes; the upper lane's positions are
    /// 4 to 7.
    const LOW: [u8; 32] = [
        0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6, //
        4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10,
    ];
    const HIGH: [u8; 32] = [
        4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10, //
        8, 9, 10, 11, 9, 10, 11, 12, 10, 11, 12, 13, 11, 12, 13, 14,
    ];

    /// [`super::filtered`] on a processor with AVX2.
    ///
    /// # Safety
    /// The processor must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn filtered(
        long: &Filter,
        mid: Option<&Filter>,
        bytes: &[u8],
        candidate: &mut dyn FnMut(usize, bool, bool),
    ) -> usize {
        // SAFETY: both tables are 32 bytes.
        let (low, high) = unsafe {
            (
                _mm256_loadu_si256(LOW.as_ptr().cast()),
                _mm256_loadu_si256(HIGH.as_ptr().cast()),
            )
        };
        let mut at = 0;
        while at + STEP_BYTES <= bytes.len() {
            // SAFETY: sixteen bytes remain from `at`.
            let chunk = unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast()) };
            let both = _mm256_broadcastsi128_si256(chunk);
            let lo = _mm256_shuffle_epi8(both, low);
            let hash = _mm256_xor_si256(
                _mm256_mullo_epi32(lo, _mm256_set1_epi32(LO_K as i32)),
                _mm256_mullo_epi32(
                    _mm256_shuffle_epi8(both, high),
                    _mm256_set1_epi32(HI_K as i32),
                ),
            );
            let long_passed = passes(long, hash);
            let mid_passed = match mid {
                Some(mid) => passes(mid, _mm256_mullo_epi32(lo, _mm256_set1_epi32(MID_K as i32))),
                None => 0,
            };
            let mut either = long_passed | mid_passed;
            while either != 0 {
                let lane = either.trailing_zeros();
                either &= either - 1;
                let bit = 1 << lane;
                candidate(
                    at + lane as usize,
                    long_passed & bit != 0,
                    mid_passed & bit != 0,
                );
            }
            at += STEP;
        }
        at
    }

    /// The lanes (as bits) whose hash the filter lets through: the word
    /// at the hash's top bits has both of its bits ([`super::super::search`]'s
    /// `probe`).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn passes(filter: &Filter, hash: __m256i) -> u32 {
        let word = _mm256_srli_epi32::<{ 32 - WORDS_BITS as i32 }>(hash);
        let g = _mm256_xor_si256(hash, _mm256_srli_epi32::<{ MIX as i32 }>(hash));
        let low_five = _mm256_set1_epi32(31);
        let one = _mm256_set1_epi32(1);
        let bits = _mm256_or_si256(
            _mm256_sllv_epi32(one, _mm256_and_si256(g, low_five)),
            _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32::<5>(g), low_five)),
        );
        let mut at = [0u32; STEP];
        // SAFETY: the array is 32 bytes.
        unsafe { _mm256_storeu_si256(at.as_mut_ptr().cast(), word) };
        // The index is below the length already; the mask says so to the
        // compiler, which then checks no bounds.
        let read = |lane: usize| filter[at[lane] as usize & (filter.len() - 1)] as i32;
        // Eight loads into one vector, tested together: fewer instructions
        // than eight tests (1.22 against 1.41 ns a byte over `synth`).
        let words = _mm256_setr_epi32(
            read(0),
            read(1),
            read(2),
            read(3),
            read(4),
            read(5),
            read(6),
            read(7),
        );
        let hit = _mm256_cmpeq_epi32(_mm256_and_si256(words, bits), bits);
        _mm256_movemask_ps(_mm256_castsi256_ps(hit)) as u32
    }
}
