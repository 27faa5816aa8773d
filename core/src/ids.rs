//! Every id a peer could profit from guessing comes from here, and from
//! the OS CSPRNG (getrandom(2)) alone: BOSH sids (XEP-0124 §7.1, §16), the
//! names of BOSH streams (§19), WebSocket stream ids (RFC 6120 §4.7.3) and
//! DNS message ids (RFC 5452 §9.2). A sid or stream name is 128 bits: it
//! is the only credential a BOSH request carries.
//!
//! Nothing is cached or derived: each id is a fresh draw, so no id tells
//! anything about another. The generator can fail only on a system whose
//! entropy pool never initialised; callers then refuse the session rather
//! than fall back to something guessable.

use std::fmt;

/// The OS generator gave no bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random number generator is unavailable")
    }
}

impl std::error::Error for Unavailable {}

fn draw<const N: usize>() -> Result<[u8; N], Unavailable> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| Unavailable)?;
    Ok(bytes)
}

/// 128 bits as 32 lower-case hex digits.
fn token() -> Result<String, Unavailable> {
    Ok(format!("{:032x}", u128::from_be_bytes(draw()?)))
}

/// A BOSH session id (XEP-0124 §7.1).
pub fn sid() -> Result<String, Unavailable> {
    token()
}

/// The name of one stream of a BOSH session (XEP-0124 §19.1).
pub fn stream_name() -> Result<String, Unavailable> {
    token()
}

/// The `id` of the stream a WebSocket `<open/>` answers (RFC 6120 §4.7.3).
pub fn stream_id() -> Result<String, Unavailable> {
    token()
}

/// A DNS message id (RFC 1035 §4.1.1): unpredictable, so an off-path
/// attacker cannot forge an answer (RFC 5452 §9.2).
pub fn dns_message_id() -> Result<u16, Unavailable> {
    Ok(u16::from_be_bytes(draw()?))
}

/// A seed for a fast generator whose output guards nothing (SRV weight
/// draws, RFC 2782).
pub fn seed() -> Result<u64, Unavailable> {
    Ok(u64::from_be_bytes(draw()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_128_bit_hex_and_never_repeat() {
        let mut seen = HashSet::new();
        for make in [sid, stream_name, stream_id] {
            for _ in 0..1000 {
                let id = make().unwrap();
                assert_eq!(id.len(), 32, "{id}");
                assert!(id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                assert!(seen.insert(id), "an id repeated");
            }
        }
    }

    /// A sid is no function of the one before: consecutive ids share no
    /// more bits than independent draws would (about half of 128).
    #[test]
    fn consecutive_sids_are_independent() {
        let pairs = 2000;
        let mut differing = 0u64;
        for _ in 0..pairs {
            let a = u128::from_str_radix(&sid().unwrap(), 16).unwrap();
            let b = u128::from_str_radix(&sid().unwrap(), 16).unwrap();
            differing += u64::from((a ^ b).count_ones());
        }
        let mean = differing as f64 / pairs as f64;
        assert!((60.0..68.0).contains(&mean), "mean differing bits {mean}");
    }

    #[test]
    fn dns_message_ids_spread_over_the_whole_range() {
        let ids: HashSet<u16> = (0..4000).map(|_| dns_message_id().unwrap()).collect();
        // 4,000 draws from 65,536 values: about 3,880 distinct.
        assert!(ids.len() > 3700, "{}", ids.len());
    }
}
