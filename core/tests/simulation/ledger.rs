//! What every session sent and received, checked as it happens: each
//! stanza reaches the other side once and in order.

use std::collections::HashMap;

#[derive(Default, Debug)]
struct Entry {
    /// Messages the client sent (`m{tag}-1..=sent`).
    sent: u64,
    /// The last message the server got.
    server_got: u64,
    /// The last echo the client got.
    echoes: u64,
    /// Pushes the server sent and the last one the client got.
    pushed: u64,
    pushes_got: u64,
}

#[derive(Default)]
pub struct Ledger {
    entries: HashMap<u64, Entry>,
}

impl Ledger {
    /// The number of the client's next message.
    pub fn next_message(&mut self, tag: u64) -> u64 {
        let entry = self.entries.entry(tag).or_default();
        entry.sent += 1;
        entry.sent
    }

    pub fn server_received(&mut self, tag: u64, n: u64) -> Result<(), String> {
        let entry = self.entries.entry(tag).or_default();
        if n != entry.server_got + 1 {
            return Err(format!(
                "session {tag}: the server got message {n} after {}",
                entry.server_got
            ));
        }
        entry.server_got = n;
        Ok(())
    }

    pub fn echo_received(&mut self, tag: u64, n: u64) -> Result<(), String> {
        let entry = self.entries.entry(tag).or_default();
        if n != entry.echoes + 1 {
            return Err(format!(
                "session {tag}: the client got echo {n} after {}",
                entry.echoes
            ));
        }
        entry.echoes = n;
        Ok(())
    }

    pub fn pushed(&mut self, tag: u64, k: u64) {
        self.entries.entry(tag).or_default().pushed = k;
    }

    pub fn push_received(&mut self, tag: u64, k: u64) -> Result<(), String> {
        let entry = self.entries.entry(tag).or_default();
        if k > entry.pushed {
            return Err(format!(
                "session {tag}: the client got push {k}, never sent"
            ));
        }
        if k != entry.pushes_got + 1 {
            return Err(format!(
                "session {tag}: the client got push {k} after {}",
                entry.pushes_got
            ));
        }
        entry.pushes_got = k;
        Ok(())
    }

    /// Every message sent was echoed back: the client may close.
    pub fn all_echoed(&self, tag: u64) -> bool {
        self.entries.get(&tag).is_none_or(|e| e.echoes == e.sent)
    }

    /// A clean close: the server got every message the client sent.
    pub fn check_complete(&self, tag: u64) -> Result<(), String> {
        match self.entries.get(&tag) {
            Some(e) if e.server_got != e.sent || e.echoes != e.sent => Err(format!(
                "session {tag} closed cleanly with {} sent, {} at the server, {} echoed",
                e.sent, e.server_got, e.echoes
            )),
            _ => Ok(()),
        }
    }

    /// Stanzas delivered in all (both ways), for the report.
    pub fn delivered(&self) -> u64 {
        self.entries
            .values()
            .map(|e| e.server_got + e.echoes + e.pushes_got)
            .sum()
    }
}

/// `(tag, n)` of the first `id='{prefix}{tag}-{n}'` in `bytes`.
pub fn message_id(bytes: &[u8], prefix: char) -> Option<(u64, u64)> {
    ids(bytes, prefix).next()
}

/// Every `id='{prefix}{tag}-{n}'` in `bytes`, in order.
pub fn ids(bytes: &[u8], prefix: char) -> impl Iterator<Item = (u64, u64)> + '_ {
    let needle = format!("id='{prefix}");
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let end = rest.find('\'').unwrap_or(rest.len());
        if let Some((tag, n)) = rest[..end].split_once('-') {
            if let (Ok(tag), Ok(n)) = (tag.parse(), n.parse()) {
                found.push((tag, n));
            }
        }
    }
    found.into_iter()
}
