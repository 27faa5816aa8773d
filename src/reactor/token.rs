//! mio tokens: a socket's token is its endpoint handle, and the reserved
//! tokens have the top bit set, which no socket token has.

use mio::Token;
use switchboard_core::endpoint::SocketId;

// A token holds a 32-bit slot index and a generation: 64-bit targets only.
const _: () = assert!(usize::BITS == 64);
const RESERVED: usize = 1 << (usize::BITS - 1);
/// The listening socket.
pub const LISTENER: Token = Token(RESERVED);
/// The UDP socket for DNS queries.
pub const DNS: Token = Token(RESERVED | 1);
/// Wakes the loop from another thread (shutdown).
pub const WAKER: Token = Token(RESERVED | 2);
/// SIGTERM and SIGINT, when the process asked for them.
pub const SIGNALS: Token = Token(RESERVED | 3);

/// Bits of the generation a token carries (below the reserved bit).
const GENERATION_BITS: u32 = usize::BITS - 1 - 32;
const GENERATION_MASK: u32 = ((1u64 << GENERATION_BITS) - 1) as u32;

/// Token layout, low bits first: slot index (32), generation (31).
pub fn token(id: SocketId) -> Token {
    Token(((id.generation() & GENERATION_MASK) as usize) << 32 | (id.index() & 0xffff_ffff))
}

/// The slot index and the generation bits a socket token carries;
/// `None` for the reserved tokens.
pub fn parts(token: Token) -> Option<(usize, u32)> {
    if token.0 & RESERVED != 0 {
        return None;
    }
    Some((token.0 & 0xffff_ffff, (token.0 >> 32) as u32))
}

/// Whether a socket's generation matches the bits a token carries.
pub fn same_generation(generation: u32, carried: u32) -> bool {
    generation & GENERATION_MASK == carried
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_index_and_generation_and_never_hit_reserved_ones() {
        for (index, generation) in [(0, 0), (7, 3), (0xffff_fff0, u32::MAX)] {
            let id = SocketId::from_parts(index, generation);
            let (i, g) = parts(token(id)).unwrap();
            assert_eq!(i, index);
            assert!(same_generation(generation, g));
            assert!(![LISTENER, DNS, WAKER, SIGNALS].contains(&token(id)));
        }
        for reserved in [LISTENER, DNS, WAKER, SIGNALS] {
            assert_eq!(parts(reserved), None);
        }
    }
}
