//! A bounded answer cache keyed by (name, kind), expiring by TTL.
//!
//! When full, expired entries go first, then the entry closest to expiry:
//! it is the one that would have been refetched soonest anyway.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use super::{Answer, Kind};

type Key = (Name, Kind);

struct Entry {
    answer: Answer,
    expires: Instant,
    seq: u64,
}

pub(super) struct Cache {
    max_entries: usize,
    entries: HashMap<Key, Entry>,
    // Expiry order; `seq` makes keys unique when two entries expire together.
    by_expiry: BTreeMap<(Instant, u64), Key>,
    seq: u64,
}

impl Cache {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            seq: 0,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached answer if it has not expired; an expired one is dropped.
    pub(super) fn get(&mut self, now: Instant, name: &Name, kind: Kind) -> Option<Answer> {
        let key = (name.clone(), kind);
        let expired = match self.entries.get(&key) {
            None => return None,
            Some(entry) if now < entry.expires => return Some(entry.answer.clone()),
            Some(_) => true,
        };
        if expired {
            self.remove(&key);
        }
        None
    }

    /// Caches `answer` for `ttl`; a zero TTL means "do not cache" (RFC 1035 §3.2.1).
    pub(super) fn insert(
        &mut self,
        now: Instant,
        name: &Name,
        kind: Kind,
        answer: Answer,
        ttl: Duration,
    ) {
        if self.max_entries == 0 || ttl.is_zero() {
            return;
        }
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        let key = (name.clone(), kind);
        self.remove(&key);
        self.purge_expired(now);
        while self.entries.len() >= self.max_entries {
            let Some((_, victim)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&victim);
        }
        self.seq = self.seq.wrapping_add(1);
        self.by_expiry.insert((expires, self.seq), key.clone());
        self.entries.insert(
            key,
            Entry {
                answer,
                expires,
                seq: self.seq,
            },
        );
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.entries.remove(key) {
            self.by_expiry.remove(&(old.expires, old.seq));
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn addrs(last: u8) -> Answer {
        Answer::Addrs(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))])
    }

    #[test]
    fn entry_is_served_until_its_ttl_ends() {
        let t0 = Instant::now();
        let mut cache = Cache::new(4);
        cache.insert(
            t0,
            &name("a.example."),
            Kind::A,
            addrs(1),
            Duration::from_secs(10),
        );
        let hit = t0 + Duration::from_secs(9);
        assert_eq!(cache.get(hit, &name("A.Example."), Kind::A), Some(addrs(1)));
        assert_eq!(cache.get(hit, &name("a.example."), Kind::Aaaa), None);
        let miss = t0 + Duration::from_secs(10);
        assert_eq!(cache.get(miss, &name("a.example."), Kind::A), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn full_cache_evicts_the_entry_closest_to_expiry() {
        let t0 = Instant::now();
        let mut cache = Cache::new(2);
        cache.insert(
            t0,
            &name("long."),
            Kind::A,
            addrs(1),
            Duration::from_secs(100),
        );
        cache.insert(
            t0,
            &name("short."),
            Kind::A,
            addrs(2),
            Duration::from_secs(5),
        );
        cache.insert(
            t0,
            &name("new."),
            Kind::A,
            addrs(3),
            Duration::from_secs(50),
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(t0, &name("short."), Kind::A), None);
        assert_eq!(cache.get(t0, &name("long."), Kind::A), Some(addrs(1)));
        assert_eq!(cache.get(t0, &name("new."), Kind::A), Some(addrs(3)));
    }

    #[test]
    fn zero_ttl_and_zero_capacity_cache_nothing() {
        let t0 = Instant::now();
        let mut cache = Cache::new(2);
        cache.insert(t0, &name("a."), Kind::A, addrs(1), Duration::ZERO);
        assert_eq!(cache.len(), 0);
        let mut none = Cache::new(0);
        none.insert(t0, &name("a."), Kind::A, addrs(1), Duration::from_secs(5));
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn reinserting_a_key_replaces_it_without_leaking_index_entries() {
        let t0 = Instant::now();
        let mut cache = Cache::new(2);
        for i in 0..10 {
            cache.insert(t0, &name("a."), Kind::A, addrs(i), Duration::from_secs(5));
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.by_expiry.len(), 1);
        assert_eq!(cache.get(t0, &name("a."), Kind::A), Some(addrs(9)));
    }
}
