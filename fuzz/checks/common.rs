//! Helpers every check shares: cut points derived from the input itself
//! (so the fuzzer steers them and a corpus file always replays the same
//! way), and the switch for known refusal mismatches.

// Each target uses some of these functions; the others are unused there.
#![allow(dead_code)]

use std::sync::OnceLock;

/// Whether two refusals of the same bytes must be the same refusal. True
/// unless `SWITCHBOARD_FUZZ_ANY_REFUSAL` is set: with a known mismatch
/// reported (fuzz/README.md), set it to let a fuzzing run look past it.
pub fn strict_refusals() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("SWITCHBOARD_FUZZ_ANY_REFUSAL").is_none())
}

/// FNV-1a of `data`: a cheap, stable mix of every byte.
pub fn mix(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A split position in `0..=data.len()`.
pub fn point(data: &[u8]) -> usize {
    let n = u64::try_from(data.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    usize::try_from(mix(data) % n).unwrap_or(0)
}

/// `data` cut into chunks of 1 to 16 bytes whose sizes follow from the data.
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut state = mix(data);
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        // SplitMix64 step: successive sizes differ even for uniform data.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let size = usize::try_from(z % 16).unwrap_or(0) + 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
