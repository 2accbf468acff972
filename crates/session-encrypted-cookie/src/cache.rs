//! Records of recently opened and sealed cookies, so that a client sending
//! the same cookie again costs a lookup instead of base64, the AEAD and JSON.
//!
//! A cookie value is only ever cached together with the record it was
//! sealed from (on a save) or opened into (on a load), under the cookie name
//! it was sealed for: a hit therefore needs the exact bytes of a cookie that
//! already opened, under the same name, and gives exactly what opening it
//! again would give. Nothing that did not open is cached. Timeouts are
//! unaffected: they are checked on the record, by the core, on every load.
//!
//! The memory is bounded by a byte budget, split over shards (each behind
//! its own lock, so that threads rarely wait for each other). Each shard
//! keeps two generations: entries go into the current one, and when it has
//! used half the shard's budget it becomes the previous one, whose entries
//! are then dropped, unless they are hit before the next turn (a hit moves
//! an entry back to the current generation). That keeps the cookies of
//! active clients without any bookkeeping on a hit.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};

use session_core::Record;

/// Shards of the cache. Enough that the threads of a server seldom contend
/// for one, few enough that each still holds a useful share of the budget.
const SHARDS: usize = 16;

/// How many bytes at the end of a value are hashed: the 16-byte tag is the
/// last 22 characters of a sealed value.
const HASHED_END_LEN: usize = 24;

/// What an entry is charged beside its cookie's length: the map's slot and
/// the record's fixed part.
const ENTRY_OVERHEAD: usize = 128;

/// How many bytes of budget each byte of the cookie pair (`name=value`) is
/// charged: one for the pair itself, and an estimate of the record it
/// decodes to (whose JSON is three quarters of the value, and whose maps
/// and strings take two to four times their JSON in memory).
const CHARGE_PER_BYTE: usize = 4;

/// Opened cookies and their records, bounded by a byte budget.
pub(crate) struct OpenedCookies {
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
    /// The most memory all entries together are charged.
    budget: usize,
    /// The budget of each shard's current generation: half its share.
    generation_budget: usize,
}

/// Keyed by the hash of the cookie pair, computed once per lookup: the
/// entry keeps the pair, so a hash that collides is a miss, never a wrong
/// record.
type ByHash = HashMap<u64, Entry, BuildHasherDefault<PrehashedKey>>;

#[derive(Default)]
struct Shard {
    current: ByHash,
    previous: ByHash,
    /// What the current generation's entries are charged.
    charged: usize,
}

struct Entry {
    /// `name=value`, as the cookie is sent.
    pair: Box<str>,
    /// Shared with the sessions loaded from it, which copy it only to write.
    record: Arc<Record>,
}

impl Entry {
    fn is_for(&self, cookie_name: &str, value: &str) -> bool {
        let pair = self.pair.as_bytes();
        pair.len() == cookie_name.len() + 1 + value.len()
            && pair.starts_with(cookie_name.as_bytes())
            && pair[cookie_name.len()] == b'='
            && pair.ends_with(value.as_bytes())
    }

    fn charge(&self) -> usize {
        charge_of(self.pair.len())
    }
}

/// What an entry whose cookie pair is `pair_len` bytes long is charged.
const fn charge_of(pair_len: usize) -> usize {
    pair_len * CHARGE_PER_BYTE + ENTRY_OVERHEAD
}

impl OpenedCookies {
    /// A cache that keeps at most about `budget` bytes; `0` keeps nothing.
    pub(crate) fn new(budget: usize) -> Self {
        OpenedCookies {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            budget,
            generation_budget: budget / SHARDS / 2,
        }
    }

    /// The budget the cache was made with.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// The record that `value`, sealed for the cookie `cookie_name`, opened
    /// into or was sealed from, if it is still cached.
    pub(crate) fn get(&self, cookie_name: &str, value: &str) -> Option<Arc<Record>> {
        if self.generation_budget == 0 {
            return None;
        }
        let hash = self.hash(cookie_name, value);
        let mut shard = self.shard(hash);
        match shard.find(hash, cookie_name, value)? {
            Generation::Current => shard.current.get(&hash).map(|e| Arc::clone(&e.record)),
            Generation::Previous => {
                // A hit in the previous generation keeps the entry for
                // another turn.
                let entry = shard.previous.remove(&hash)?;
                let record = Arc::clone(&entry.record);
                let evicted = shard.insert(hash, entry, self.generation_budget);
                drop(shard);
                // Dropped after the lock is released: a generation may hold
                // many.
                drop(evicted);
                Some(record)
            }
        }
    }

    /// Remembers that `value`, for the cookie `cookie_name`, holds `record`
    /// (shared, not copied).
    pub(crate) fn insert(&self, cookie_name: &str, value: &str, record: &Arc<Record>) {
        if self.generation_budget == 0 {
            return;
        }
        let pair_len = cookie_name.len() + 1 + value.len();
        // An entry larger than a generation would only push everything else
        // out, and be pushed out itself by the next insert.
        if charge_of(pair_len) > self.generation_budget {
            return;
        }
        let mut pair = String::with_capacity(pair_len);
        pair.push_str(cookie_name);
        pair.push('=');
        pair.push_str(value);
        let entry = Entry {
            pair: pair.into_boxed_str(),
            record: Arc::clone(record),
        };
        let hash = self.hash(cookie_name, value);
        let mut shard = self.shard(hash);
        let evicted = shard.insert(hash, entry, self.generation_budget);
        drop(shard);
        drop(evicted);
    }

    /// Forgets `value`, for the cookie `cookie_name`: a cookie that its
    /// client has replaced. Its memory is freed at once, to be reused by the
    /// entry of the new cookie, rather than when its generation ends.
    pub(crate) fn remove(&self, cookie_name: &str, value: &str) {
        if self.generation_budget == 0 {
            return;
        }
        let hash = self.hash(cookie_name, value);
        let mut shard = self.shard(hash);
        match shard.find(hash, cookie_name, value) {
            Some(Generation::Current) => {
                if let Some(removed) = shard.current.remove(&hash) {
                    shard.charged -= removed.charge();
                }
            }
            Some(Generation::Previous) => {
                shard.previous.remove(&hash);
            }
            None => {}
        }
    }

    /// Hashes the cookie name and the end of the value only: every value in
    /// the cache was sealed by the store, and ends with its AEAD tag, which
    /// is unpredictable and different on every seal. A value that shares
    /// its end with a cached one (which only the holder of that cookie can
    /// make) is told apart by the full comparison, and is a miss.
    fn hash(&self, cookie_name: &str, value: &str) -> u64 {
        let value = value.as_bytes();
        let end = &value[value.len().saturating_sub(HASHED_END_LEN)..];
        self.hasher.hash_one((cookie_name, end))
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The high bits: the map itself uses the low ones.
        let index = (hash >> 56) as usize % SHARDS;
        // Nothing panics while a shard is locked; if something did, the maps
        // are still consistent (each operation is one map call).
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the cache's entries are charged in all, for tests.
    #[cfg(test)]
    fn charged(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                shard
                    .current
                    .values()
                    .chain(shard.previous.values())
                    .map(Entry::charge)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// Which of a shard's generations holds an entry.
enum Generation {
    Current,
    Previous,
}

impl Shard {
    /// Where the entry of `value`, for the cookie `cookie_name`, whose hash
    /// is `hash`, is kept; `None` when it is not, or when its hash is taken
    /// by another value.
    fn find(&self, hash: u64, cookie_name: &str, value: &str) -> Option<Generation> {
        if let Some(entry) = self.current.get(&hash) {
            return entry
                .is_for(cookie_name, value)
                .then_some(Generation::Current);
        }
        self.previous
            .get(&hash)?
            .is_for(cookie_name, value)
            .then_some(Generation::Previous)
    }

    /// Inserts `entry`, turning the generations over first if it would not
    /// fit in the current one. Returns the generation that was dropped, for
    /// the caller to free outside the lock.
    fn insert(&mut self, hash: u64, entry: Entry, generation_budget: usize) -> ByHash {
        let mut evicted = ByHash::default();
        let charge = entry.charge();
        if self.charged + charge > generation_budget {
            evicted = mem::replace(&mut self.previous, mem::take(&mut self.current));
            self.charged = 0;
        }
        self.charged += charge;
        if let Some(replaced) = self.current.insert(hash, entry) {
            self.charged -= replaced.charge();
        }
        evicted
    }
}

/// The map's hasher for keys that are already hashes: it passes them on.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it; fold anything else anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn record(user: &str) -> Record {
        let mut record = Record::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_072_000));
        record.data.insert("user".into(), user.into());
        record
    }

    fn user(record: &Record) -> &str {
        record.data["user"].as_str().unwrap()
    }

    #[test]
    fn gives_back_what_was_inserted_under_the_same_name_only() {
        let cache = OpenedCookies::new(1 << 20);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        assert_eq!(user(&cache.get("session", "AAAA").unwrap()), "ada");
        assert!(cache.get("other", "AAAA").is_none());
        assert!(cache.get("session", "AAAB").is_none());
        assert!(cache.get("session", "AAA").is_none());
        // `session=AAAA` split elsewhere is another cookie.
        assert!(cache.get("session=", "AAA").is_none());
        assert!(cache.get("sessio", "n=AAAA").is_none());
    }

    #[test]
    fn a_second_insert_of_a_value_replaces_the_first() {
        let cache = OpenedCookies::new(1 << 20);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        cache.insert("session", "AAAA", &Arc::new(record("grace")));
        assert_eq!(user(&cache.get("session", "AAAA").unwrap()), "grace");
        assert_eq!(cache.charged(), charge_of("session=AAAA".len()));
    }

    #[test]
    fn a_removed_value_is_gone_and_no_longer_charged() {
        let cache = OpenedCookies::new(1 << 20);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        cache.insert("session", "BBBB", &Arc::new(record("grace")));
        // Another name's value is another cookie: not removed.
        cache.remove("other", "AAAA");
        assert!(cache.get("session", "AAAA").is_some());
        cache.remove("session", "AAAA");
        assert!(cache.get("session", "AAAA").is_none());
        assert_eq!(user(&cache.get("session", "BBBB").unwrap()), "grace");
        assert_eq!(cache.charged(), charge_of("session=BBBB".len()));
        cache.remove("session", "BBBB");
        assert_eq!(cache.charged(), 0);
    }

    #[test]
    fn values_that_end_alike_are_told_apart() {
        let cache = OpenedCookies::new(1 << 20);
        let end = "T".repeat(HASHED_END_LEN);
        cache.insert("session", &format!("A{end}"), &Arc::new(record("ada")));
        assert!(cache.get("session", &format!("B{end}")).is_none());
        assert!(cache.get("session", &end).is_none());
        // A miss on a value that ends alike takes nothing away.
        assert_eq!(
            user(&cache.get("session", &format!("A{end}")).unwrap()),
            "ada"
        );
        cache.remove("session", &format!("B{end}"));
        assert_eq!(
            user(&cache.get("session", &format!("A{end}")).unwrap()),
            "ada"
        );
        // Values that are not ASCII are hashed by their bytes.
        assert!(cache.get("session", &"é".repeat(HASHED_END_LEN)).is_none());
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = OpenedCookies::new(0);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        assert!(cache.get("session", "AAAA").is_none());
        assert_eq!(cache.charged(), 0);
    }

    #[test]
    fn an_entry_larger_than_a_generation_is_not_kept() {
        let cache = OpenedCookies::new(SHARDS * 2 * 1024);
        cache.insert("session", &"A".repeat(1024), &Arc::new(record("ada")));
        assert!(cache.get("session", &"A".repeat(1024)).is_none());
        assert_eq!(cache.charged(), 0);
    }

    #[test]
    fn stays_within_its_budget_and_keeps_the_newest_values() {
        let budget = 64 * 1024;
        let cache = OpenedCookies::new(budget);
        let value = |i: usize| format!("{i:0>200}");
        for i in 0..10_000 {
            cache.insert("session", &value(i), &Arc::new(record("ada")));
            assert!(
                cache.charged() <= budget,
                "{} > {budget} after {i}",
                cache.charged()
            );
        }
        // Each shard keeps at least the entries of its current generation,
        // less one: the most recent ones are all still there.
        let per_generation = budget / SHARDS / 2 / charge_of("session=".len() + 200);
        assert!(per_generation > 1);
        for i in 10_000 - per_generation + 1..10_000 {
            assert!(
                cache.get("session", &value(i)).is_some(),
                "value {i} was evicted"
            );
        }
        // The oldest are gone.
        assert!(cache.get("session", &value(0)).is_none());
    }

    #[test]
    fn a_hit_keeps_an_entry_through_the_next_turn_of_generations() {
        // Some forty entries per generation and shard.
        let budget = 1 << 20;
        let cache = OpenedCookies::new(budget);
        let value = |i: usize| format!("{i:0>200}");
        cache.insert("session", "hot", &Arc::new(record("ada")));
        for i in 0..10_000 {
            cache.insert("session", &value(i), &Arc::new(record("grace")));
            // Read as often as an active client would: far more often than
            // its shard's generations turn over.
            if i % 100 == 0 {
                assert_eq!(
                    user(&cache.get("session", "hot").unwrap()),
                    "ada",
                    "after {i}"
                );
            }
        }
    }

    #[test]
    fn threads_share_it() {
        let cache = std::sync::Arc::new(OpenedCookies::new(1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        let value = format!("{t}-{i}");
                        cache.insert("session", &value, &Arc::new(record(&value)));
                        assert_eq!(user(&cache.get("session", &value).unwrap()), value);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(cache.get("session", "3-999").is_some());
    }
}
