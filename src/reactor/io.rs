//! Socket results classified once, so that every caller treats an
//! interruption, a would-block and a reset the same way: the rest of the
//! reactor sees progress, would-block, closed or failed, never raw
//! `io::Error`s.

use std::io::{self, Read, Write};

#[derive(Debug, PartialEq, Eq)]
pub enum Io {
    Progress(usize),
    WouldBlock,
    /// Orderly end of file, or a reset: both end the peer's side.
    Closed,
    Failed(io::ErrorKind),
}

/// One read into `buf`, retrying `Interrupted`.
pub fn read(source: &mut impl Read, buf: &mut [u8]) -> Io {
    loop {
        return match source.read(buf) {
            Ok(0) => Io::Closed,
            Ok(n) => Io::Progress(n),
            Err(e) => match classify(e) {
                None => continue,
                Some(io) => io,
            },
        };
    }
}

/// Write as much of `data` as the socket takes now; returns the count
/// written before it would block, or how it ended.
pub fn write_all_possible(sink: &mut impl Write, data: &[u8]) -> Result<usize, Io> {
    let mut done = 0;
    while done < data.len() {
        match sink.write(&data[done..]) {
            Ok(0) => return Err(Io::Closed),
            Ok(n) => done += n,
            Err(e) => match classify(e) {
                None => continue,
                Some(Io::WouldBlock) => break,
                Some(other) => return Err(other),
            },
        }
    }
    Ok(done)
}

/// `None` means retry (`Interrupted`).
fn classify(e: io::Error) -> Option<Io> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock => Some(Io::WouldBlock),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Some(Io::Closed),
        kind => Some(Io::Failed(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Script(Vec<io::Result<usize>>);

    impl Read for Script {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            self.0.remove(0)
        }
    }

    impl Write for Script {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            self.0.remove(0)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn err(kind: io::ErrorKind) -> io::Result<usize> {
        Err(io::Error::from(kind))
    }

    #[test]
    fn read_retries_interrupted_and_classifies_the_rest() {
        let mut buf = [0u8; 4];
        let mut s = Script(vec![err(io::ErrorKind::Interrupted), Ok(3)]);
        assert_eq!(read(&mut s, &mut buf), Io::Progress(3));
        let mut s = Script(vec![Ok(0)]);
        assert_eq!(read(&mut s, &mut buf), Io::Closed);
        let mut s = Script(vec![err(io::ErrorKind::ConnectionReset)]);
        assert_eq!(read(&mut s, &mut buf), Io::Closed);
        let mut s = Script(vec![err(io::ErrorKind::WouldBlock)]);
        assert_eq!(read(&mut s, &mut buf), Io::WouldBlock);
        let mut s = Script(vec![err(io::ErrorKind::PermissionDenied)]);
        assert_eq!(
            read(&mut s, &mut buf),
            Io::Failed(io::ErrorKind::PermissionDenied)
        );
    }

    #[test]
    fn write_stops_at_would_block_with_the_count_written() {
        let mut s = Script(vec![Ok(2), err(io::ErrorKind::WouldBlock)]);
        assert_eq!(write_all_possible(&mut s, b"abcd"), Ok(2));
        let mut s = Script(vec![Ok(2), Ok(2)]);
        assert_eq!(write_all_possible(&mut s, b"abcd"), Ok(4));
        let mut s = Script(vec![err(io::ErrorKind::BrokenPipe)]);
        assert_eq!(write_all_possible(&mut s, b"abcd"), Err(Io::Closed));
    }
}
