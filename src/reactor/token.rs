//! Typed handles for the reactor's slabs and the mio tokens derived from
//! them. A generation travels with every handle so that a timer or event
//! that outlived its entry cannot reach the one reusing the slot.

use mio::Token;

// The reserved tokens all have kind 3, which no socket token has.
/// The listening socket.
pub const LISTENER: Token = Token(usize::MAX);
/// The UDP socket for DNS queries.
pub const DNS: Token = Token(usize::MAX - (1 << KIND_BITS));
/// Wakes the loop from another thread (shutdown).
pub const WAKER: Token = Token(usize::MAX - (2 << KIND_BITS));
/// SIGTERM and SIGINT, when the process asked for them.
pub const SIGNALS: Token = Token(usize::MAX - (3 << KIND_BITS));

/// Token layout, low bits first: kind (2), stream (8), index (24),
/// generation (30).
const KIND_BITS: u32 = 2;
const STREAM_BITS: u32 = 8;
const INDEX_BITS: u32 = 24;
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// A slab slot plus the generation of what lives there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub index: u32,
    pub generation: u32,
}

impl Key {
    pub fn new(index: usize, generation: u32) -> Self {
        Key {
            index: index as u32 & ((1 << INDEX_BITS) - 1),
            generation: generation & GENERATION_MASK,
        }
    }

    /// For a BOSH request handle: the connection holding the request.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub fn from_u64(value: u64) -> Self {
        Key {
            index: value as u32,
            generation: (value >> 32) as u32,
        }
    }
}

/// Who a socket event or a DNS answer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A client connection (HTTP, WebSocket).
    Client(Key),
    /// The backend of a WebSocket connection.
    WsBackend(Key),
    /// One stream's backend of a BOSH session (XEP-0124 §19).
    BoshBackend(Key, u8),
}

impl Owner {
    pub fn token(self) -> Token {
        let (kind, key, stream) = match self {
            Owner::Client(key) => (0, key, 0),
            Owner::WsBackend(key) => (1, key, 0),
            Owner::BoshBackend(key, stream) => (2, key, stream),
        };
        Token(
            ((key.generation as usize) << (KIND_BITS + STREAM_BITS + INDEX_BITS))
                | ((key.index as usize) << (KIND_BITS + STREAM_BITS))
                | ((stream as usize) << KIND_BITS)
                | kind,
        )
    }

    /// What a socket token stands for; `None` for the reserved tokens.
    pub fn from_token(token: Token) -> Option<Owner> {
        let t = token.0;
        let stream = ((t >> KIND_BITS) & ((1 << STREAM_BITS) - 1)) as u8;
        let key = Key {
            index: ((t >> (KIND_BITS + STREAM_BITS)) & ((1 << INDEX_BITS) - 1)) as u32,
            generation: (t >> (KIND_BITS + STREAM_BITS + INDEX_BITS)) as u32,
        };
        match t & ((1 << KIND_BITS) - 1) {
            0 => Some(Owner::Client(key)),
            1 => Some(Owner::WsBackend(key)),
            2 => Some(Owner::BoshBackend(key, stream)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_owners() {
        for (index, generation) in [(0, 0), (7, 3), ((1 << INDEX_BITS) - 1, GENERATION_MASK)] {
            let key = Key::new(index, generation);
            for owner in [
                Owner::Client(key),
                Owner::WsBackend(key),
                Owner::BoshBackend(key, 0),
                Owner::BoshBackend(key, 255),
            ] {
                assert_eq!(Owner::from_token(owner.token()), Some(owner));
            }
            assert_eq!(Key::from_u64(key.to_u64()), key);
        }
    }

    #[test]
    fn socket_tokens_never_hit_reserved_ones() {
        let key = Key::new(usize::MAX, u32::MAX);
        for owner in [
            Owner::Client(key),
            Owner::WsBackend(key),
            Owner::BoshBackend(key, 255),
        ] {
            let token = owner.token();
            assert!(![LISTENER, DNS, WAKER, SIGNALS].contains(&token));
        }
        for reserved in [LISTENER, DNS, WAKER, SIGNALS] {
            assert_eq!(Owner::from_token(reserved), None);
        }
    }
}
