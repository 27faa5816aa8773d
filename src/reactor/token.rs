//! Typed handles for the connection slab and the mio tokens derived from
//! them. A generation travels with every handle so that a timer or event
//! that outlived its connection cannot reach the one reusing the slot.

use mio::Token;

/// The listening socket.
pub const LISTENER: Token = Token(usize::MAX);
/// The UDP socket for DNS queries.
pub const DNS: Token = Token(usize::MAX - 1);
/// Wakes the loop from another thread (shutdown).
pub const WAKER: Token = Token(usize::MAX - 2);

/// Generations are kept to 30 bits so a token never reaches the reserved
/// values above, whatever the slot index.
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// One client connection and its backend: a slab slot plus a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub index: u32,
    pub generation: u32,
}

/// Which of a connection's two sockets an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

impl ConnKey {
    pub fn new(index: usize, generation: u32) -> Self {
        ConnKey {
            index: index as u32,
            generation: generation & GENERATION_MASK,
        }
    }

    pub fn token(self, side: Side) -> Token {
        let side_bit = match side {
            Side::Client => 0,
            Side::Backend => 1,
        };
        Token(((self.generation as usize) << 33) | ((self.index as usize) << 1) | side_bit)
    }

    /// The key and side a connection token stands for; `None` for the
    /// reserved tokens.
    pub fn from_token(token: Token) -> Option<(ConnKey, Side)> {
        if token == LISTENER || token == DNS || token == WAKER {
            return None;
        }
        let side = if token.0 & 1 == 0 {
            Side::Client
        } else {
            Side::Backend
        };
        let key = ConnKey {
            index: ((token.0 >> 1) & 0xffff_ffff) as u32,
            generation: (token.0 >> 33) as u32,
        };
        Some((key, side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_key_and_side() {
        for (index, generation) in [(0, 0), (7, 3), (u32::MAX as usize, GENERATION_MASK)] {
            let key = ConnKey::new(index, generation);
            for side in [Side::Client, Side::Backend] {
                assert_eq!(ConnKey::from_token(key.token(side)), Some((key, side)));
            }
        }
    }

    #[test]
    fn connection_tokens_never_hit_reserved_ones() {
        let key = ConnKey::new(u32::MAX as usize, u32::MAX);
        for side in [Side::Client, Side::Backend] {
            let token = key.token(side);
            assert!(token != LISTENER && token != DNS && token != WAKER);
        }
        assert_eq!(ConnKey::from_token(LISTENER), None);
    }
}
