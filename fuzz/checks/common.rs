//! Helpers every check shares: cut points derived from the input itself
//! (so the fuzzer steers them and a corpus file always replays the same
//! way), the switch for known refusal mismatches, client WebSocket frames,
//! tiny XML limits, and a backend TLS configuration.

// Each target uses some of these functions; the others are unused there.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use switchboard_core::backend::tls::{self, Clock, Trust};
use switchboard_core::{http, xml};

/// Frame opcodes and the FIN bit (RFC 6455 §5.2).
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_PING: u8 = 0x9;
pub const FIN: u8 = 0x80;

/// XML limits small enough for short inputs to reach every refusal.
pub const TINY_XML: xml::Limits = xml::Limits {
    max_depth: 3,
    max_attributes: 3,
    max_element_bytes: 128,
};

/// Whether two refusals of the same bytes must be the same refusal. True
/// unless `SWITCHBOARD_FUZZ_ANY_REFUSAL` is set: with a known mismatch
/// reported (fuzz/README.md), set it to let a fuzzing run look past it.
pub fn strict_refusals() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("SWITCHBOARD_FUZZ_ANY_REFUSAL").is_none())
}

/// HTTP limits from a selector byte: even, the defaults; odd, small ones
/// derived from it.
pub fn http_limits(selector: u8) -> http::Limits {
    if selector.is_multiple_of(2) {
        http::Limits::default()
    } else {
        http::Limits {
            max_head_bytes: 32 + usize::from(selector),
            max_headers: usize::from(selector >> 5),
            max_body_bytes: usize::from(selector >> 1),
        }
    }
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

/// A client frame (RFC 6455 §5.2): `first` is FIN, RSV and opcode; the
/// payload is masked with `mask` (§5.3).
pub fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len => match u16::try_from(len) {
            Ok(len) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        },
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// A masking key that follows from the data.
pub fn mask(data: &[u8]) -> [u8; 4] {
    let [a, b, c, d, ..] = mix(data).to_le_bytes();
    [a, b, c, d]
}

/// A client configuration from the core's builder that trusts no root at
/// all, so no handshake can succeed (none can with fuzzed bytes anyway).
pub fn tls() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            tls::client_config(Trust::Roots(RootCertStore::empty()), &Clock::default())
                .expect("ring supports the default versions")
        })
        .clone()
}

/// Bytes of the input, read front to back; zeros once it is used up.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One of `items`, chosen by `byte`.
pub fn pick<T>(items: &[T], byte: u8) -> Option<&T> {
    items.get(usize::from(byte) % items.len().max(1))
}
