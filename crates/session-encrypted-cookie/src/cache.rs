//! Records of recently opened and sealed cookies, so that a client sending
//! the same cookie again costs a lookup instead of base64, the AEAD and JSON.
//!
//! A cookie value is only ever cached together with the record it was
//! sealed from (on a save) or opened into (on a load), under the cookie name
//! it was sealed for: a hit therefore needs a cookie that already opened,
//! under the same name, and gives exactly what opening it again would give.
//! Nothing that did not open is cached. Timeouts are unaffected: they are
//! checked on the record, by the core, on every load.
//!
//! The cache does not keep the cookies themselves: it keeps a 128-bit
//! digest of each `name=value` pair, SipHash-1-3 under a secret key drawn
//! for each cache, and compares digests. Another cookie hits only if its
//! digest is the same, a chance of 2⁻¹²⁸ per cached cookie that no
//! knowledge of cookies improves (the key never leaves the process, and no
//! digest is ever shown). Kept to be compared in full, the cookies took a
//! sixth of the memory of a small session's entry.
//!
//! The memory is bounded by a byte budget. The entries are spread over
//! shards (each behind its own lock, so that threads rarely wait for each
//! other), but the budget is one: each entry is charged an estimate of the
//! heap memory it keeps alive (its record, walked, and its slot; see
//! [`charge_of`]) against a running total that all shards
//! share, after the shards' frequency sketches (below) have taken their
//! part. One total rather than a share per shard matters for sessions
//! that change on every request: the new cookie hashes to another shard
//! than the one it replaces, and takes the room its predecessor freed
//! there instead of evicting a neighbour (which, with a share per shard,
//! turned every hit into a miss elsewhere).
//!
//! Eviction is CLOCK (second chance): a hit only sets the entry's
//! `referenced` bit; to make room, the hand passes over the entries in
//! insertion order, clearing set bits, and proposes the first entry whose
//! bit is clear. Admission is TinyLFU: a frequency sketch (a count-min
//! sketch of 4-bit-like saturating counters, halved as it fills, so that it
//! forgets old popularity) counts every lookup, and when the cache is full,
//! a new entry takes the proposed victim's place only if its cookie was
//! looked up more often than the victim's; a victim that wins stays, and
//! the hand moves on to the next one. Until the cache is full every entry
//! is admitted. This keeps a useful hit rate where a recency-only
//! cache keeps none:
//!
//! * a cyclic pattern over more cookies than the cache holds (many active
//!   clients, each coming back after all the others) evicts with LRU or
//!   generations every entry just before it is asked for again; here the
//!   cookies already cached win ties, so a stable part of the cycle stays
//!   cached and hits on every turn (about capacity ÷ cycle of the lookups);
//! * a scan (a burst of cookies seen once) cannot push out cookies that
//!   are asked for repeatedly;
//! * when the sessions in use give way to new ones (the users of one hour
//!   to those of the next), the new set takes the idle one's place within
//!   a few of its turns, as the idle entries' counts fade.
//!
//! A cookie that replaces another (a session saved with new data) takes
//! over its predecessor's frequency (the count moves; it is not counted
//! again) and the room freed by removing it: a client whose session changes
//! on every request keeps its entry, and is as popular as its requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use session_core::Record;
use siphasher::sip128::{Hasher128, SipHasher13};

/// Shards of the cache. Enough that the threads of a server seldom contend
/// for one, few enough that each still holds a useful share of the budget.
const SHARDS: usize = 16;

/// What an entry is charged beside its record: its slot in the map (the
/// key and the entry, 40 bytes, in a table between 7/16 and 7/8 full, and
/// a control byte) and its place in the clock (which holds up to twice the
/// entries before it is compacted, and grows by doubling). Charged at the
/// emptiest of both.
const ENTRY_OVERHEAD: usize = 128;

/// A node of the standard library's `BTreeMap<String, Value>` (which a
/// serde_json `Map` is): eleven keys and values, a parent pointer, its
/// index and length; an internal node adds twelve child pointers.
const MAP_LEAF_BYTES: usize = 8 + 2 + 2 + 11 * (size_of::<String>() + size_of::<Value>()) + 4;
const MAP_INTERNAL_BYTES: usize = MAP_LEAF_BYTES + 12 * size_of::<usize>();

/// One sketch counter for every this many bytes of a shard's share: some
/// four counters per entry of the smallest cookies, as TinyLFU wants.
const BYTES_PER_COUNTER: usize = 128;

/// The most a sketch counter counts.
const MAX_COUNT: u8 = 15;

/// How much more often than the entry it would evict a newcomer must have
/// been looked up to be admitted into a full cache. Two rather than one:
/// in a cycle over more sessions than fit, the sessions the cycle has just
/// reached are one lookup ahead of the resident ones it has not reached
/// yet, and estimates carry some noise; a margin of one let a third of the
/// resident part turn over on every turn. A working set that follows an
/// idle one still takes over within a few turns (tested).
const ADMISSION_MARGIN: u8 = 2;

/// Which lookups the frequency sketch counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    Always,
    /// Only hits: a miss is counted by the lookup that follows it.
    Hits,
}

/// Opened cookies and their records, bounded by a byte budget.
pub(crate) struct OpenedCookies {
    /// The digest's secret key, chosen at random for each cache.
    key: [u64; 2],
    shards: Vec<Mutex<Shard>>,
    /// The most memory all entries and sketches together are charged.
    budget: usize,
    /// What all entries together may be charged: the budget less the
    /// sketches. `0` keeps nothing.
    entries_budget: usize,
    /// What all entries are charged now, never more than `entries_budget`.
    charged: AtomicUsize,
}

/// Keyed by one half of the cookie pair's digest, computed once per
/// lookup: the entry keeps the other half, so that a key that collides is
/// a miss, never a wrong record.
type ByHash = HashMap<u64, Entry, BuildHasherDefault<PrehashedKey>>;

/// The 128-bit digest of a cookie pair, in two halves.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Digest {
    /// Spreads the entries over shards and map slots, picks the sketch's
    /// counters, and keys the map.
    hash: u64,
    /// Kept in the entry, and compared on a hit.
    check: u64,
}

struct Shard {
    entries: ByHash,
    /// The hashes of the entries in CLOCK order, the hand at the front. A
    /// removed entry's hash stays until the hand reaches it or the clock is
    /// compacted.
    clock: VecDeque<u64>,
    sketch: Sketch,
}

struct Entry {
    /// The half of the cookie pair's digest that the map's key is not.
    check: u64,
    /// What the entry is charged against the budget.
    charge: usize,
    /// Shared with the sessions loaded from it, which copy it only to write.
    record: Arc<Record>,
    /// Hit since the clock's hand last passed.
    referenced: bool,
}

impl Entry {
    fn is_for(&self, digest: Digest) -> bool {
        self.check == digest.check
    }
}

/// The shard of the entry whose hash is `hash`. Middle bits: the map takes
/// the low ones for a slot, and its top seven as the tag that tells apart
/// the entries it probes, which the shard's must not fix.
fn shard_index(hash: u64) -> usize {
    (hash >> 40) as usize % SHARDS
}

/// What an entry holding `record` is charged: the memory it keeps alive,
/// its slot and the record with every string, map and array in it, each
/// allocation as the allocator rounds it. An estimate (a map's nodes are
/// counted as a map of its length filled by insertions needs): the heap
/// the cache holds, counted by the allocator, is 0.78 to 0.97 of its
/// budget for sessions of five shapes (`tests/cache_memory.rs`).
fn charge_of(record: &Record) -> usize {
    let strings = [&record.user, &record.label]
        .into_iter()
        .flatten()
        .map(|string| allocation(string.capacity()))
        .sum::<usize>();
    ENTRY_OVERHEAD
        + allocation(2 * size_of::<usize>() + size_of::<Record>())
        + strings
        + map_charge(&record.data)
}

/// The heap memory of a JSON object: its nodes, keys and values. Counted
/// as serde_json's default `BTreeMap`; with its `preserve_order` feature
/// (an `IndexMap`, some 80 bytes an entry against a node's 90 or more) the
/// count is higher than the memory, and the budget still holds.
fn map_charge(map: &Map<String, Value>) -> usize {
    let len = map.len();
    let nodes = match len {
        0 => 0,
        // One leaf.
        1..=11 => allocation(MAP_LEAF_BYTES),
        // Split nodes hold five to eleven entries, some seven on average
        // whether the keys came in order (as a record's JSON lists them)
        // or at random.
        _ => {
            let leaves = len.div_ceil(7);
            leaves * allocation(MAP_LEAF_BYTES)
                + leaves.div_ceil(7) * allocation(MAP_INTERNAL_BYTES)
        }
    };
    nodes
        + map
            .iter()
            .map(|(key, value)| allocation(key.capacity()) + value_charge(value))
            .sum::<usize>()
}

/// The heap memory of a JSON value, beyond the value itself.
fn value_charge(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(string) => allocation(string.capacity()),
        Value::Array(values) => {
            allocation(values.capacity() * size_of::<Value>())
                + values.iter().map(value_charge).sum::<usize>()
        }
        Value::Object(map) => map_charge(map),
    }
}

/// What an allocation of `bytes` takes from the allocator: a header of a
/// word, rounded up to 16 bytes, at least 32 (glibc's malloc on 64-bit
/// systems; others are alike).
fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    (bytes + size_of::<usize>()).next_multiple_of(16).max(32)
}

/// The sketch counters of a shard whose share of the budget is `share`.
fn counters_for(share: usize) -> usize {
    (share / BYTES_PER_COUNTER)
        .clamp(16, 1 << 20)
        .next_power_of_two()
}

impl OpenedCookies {
    /// A cache that keeps at most about `budget` bytes; `0` keeps nothing.
    pub(crate) fn new(budget: usize) -> Self {
        let share = budget / SHARDS;
        let counters = counters_for(share);
        // A budget too small to hold the sketches and a few entries per
        // shard keeps nothing, and needs no sketch.
        let entries_budget = budget.saturating_sub(SHARDS * counters);
        let (entries_budget, counters) = if entries_budget < SHARDS * 4 * ENTRY_OVERHEAD {
            (0, 0)
        } else {
            (entries_budget, counters)
        };
        OpenedCookies {
            // Two outputs of the standard library's SipHash under its
            // random keys (drawn from the operating system once per
            // thread): unpredictable outside the process, and no call to
            // make that can fail.
            key: {
                let random = RandomState::new();
                [random.hash_one(0_u8), random.hash_one(1_u8)]
            },
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: ByHash::default(),
                        clock: VecDeque::new(),
                        sketch: Sketch::new(counters),
                    })
                })
                .collect(),
            budget,
            entries_budget,
            charged: AtomicUsize::new(0),
        }
    }

    /// The budget the cache was made with.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// The record of `value`, sealed for the cookie `cookie_name`: the one
    /// it opened into or was sealed from, if it is still cached, otherwise
    /// what `open` gives, which is cached (shared, not copied). Counts the
    /// lookup, hit or miss, in the frequency sketch. When the cache is full,
    /// an opened record is kept only if the cookie was looked up more often
    /// than the entry it would evict. The cache is not locked while `open`
    /// runs, and the cookie is digested once.
    pub(crate) fn get_or_open<E>(
        &self,
        cookie_name: &str,
        value: &str,
        open: impl FnOnce() -> Result<Record, E>,
    ) -> Result<Arc<Record>, E> {
        let Some(digest) = self.digest(cookie_name, value) else {
            return open().map(Arc::new);
        };
        if let Some(record) = self.lookup(digest, Count::Always) {
            return Ok(record);
        }
        let record = Arc::new(open()?);
        self.insert_replacing(digest, &record, None);
        Ok(record)
    }

    /// The cached record of `value`, for the cookie `cookie_name`, if there
    /// is one. Counts only a hit: a lookup that misses is followed by a
    /// [`get_or_open`](OpenedCookies::get_or_open) of the same cookie, which
    /// counts it (a lookup is counted once).
    pub(crate) fn get_if_hit(&self, cookie_name: &str, value: &str) -> Option<Arc<Record>> {
        self.lookup(self.digest(cookie_name, value)?, Count::Hits)
    }

    fn lookup(&self, digest: Digest, count: Count) -> Option<Arc<Record>> {
        let mut shard = self.shard(digest.hash);
        if count == Count::Always {
            shard.sketch.increment(digest.hash, 1);
        }
        let entry = shard
            .entries
            .get_mut(&digest.hash)
            .filter(|entry| entry.is_for(digest))?;
        entry.referenced = true;
        let record = Arc::clone(&entry.record);
        if count == Count::Hits {
            shard.sketch.increment(digest.hash, 1);
        }
        Some(record)
    }

    /// Remembers `value`, just sealed for the cookie `cookie_name` from
    /// `record`, which the client sends back from now on instead of
    /// `replacing`, if it had a cookie: that one is forgotten, and the new
    /// one inherits its lookup frequency and its place.
    pub(crate) fn insert_sealed(
        &self,
        cookie_name: &str,
        value: &str,
        record: &Arc<Record>,
        replacing: Option<&str>,
    ) {
        let Some(digest) = self.digest(cookie_name, value) else {
            return;
        };
        let replacing = replacing.and_then(|previous| self.digest(cookie_name, previous));
        self.insert_replacing(digest, record, Some(replacing));
    }

    /// Caches `record` under `digest`, the digest of a cookie pair: one that
    /// opened (`sealed` is `None`), or one just sealed (`sealed` holds the
    /// digest of the cookie it replaces, if any).
    fn insert_replacing(
        &self,
        digest: Digest,
        record: &Arc<Record>,
        sealed: Option<Option<Digest>>,
    ) {
        let mut evicted = Vec::new();
        let mut successor = false;
        // The count moves: left behind, the old cookie's count would linger
        // in counters that new cookies share.
        let mut inherited = 0;
        if let Some(Some(previous)) = sealed {
            let mut shard = self.shard(previous.hash);
            inherited = shard.sketch.take(previous.hash);
            if let Some(removed) = shard.remove(previous, &self.entries_total()) {
                successor = true;
                evicted.push(removed);
            }
        }
        let charge = charge_of(record);
        // An entry larger than a shard's share would push everything else
        // out of its shard.
        if charge > self.entries_budget / SHARDS {
            return;
        }
        let entry = Entry {
            check: digest.check,
            charge,
            record: Arc::clone(record),
            referenced: false,
        };
        let mut shard = self.shard(digest.hash);
        shard.sketch.inherit(digest.hash, inherited);
        if sealed == Some(None) {
            // A new session's first cookie: the client is about to send it,
            // as good as a lookup. A successor only inherits: counting its
            // seal too would make every session that was just saved look
            // more popular than the ones the cycle has not reached yet, and
            // evict them in its favour, as LRU does.
            shard.sketch.increment(digest.hash, 1);
        }
        shard.insert(
            digest.hash,
            entry,
            &self.entries_total(),
            successor,
            &mut evicted,
        );
        drop(shard);
        // Dropped after the lock is released.
        drop(evicted);
    }

    /// Forgets `value`, for the cookie `cookie_name`: a cookie that its
    /// client has replaced. Its memory is freed at once, to be reused by the
    /// entry of the new cookie.
    pub(crate) fn remove(&self, cookie_name: &str, value: &str) {
        let Some(digest) = self.digest(cookie_name, value) else {
            return;
        };
        let removed = self
            .shard(digest.hash)
            .remove(digest, &self.entries_total());
        drop(removed);
    }

    /// The running total of what the entries are charged, with its limit.
    fn entries_total(&self) -> Budget<'_> {
        Budget {
            charged: &self.charged,
            limit: self.entries_budget,
        }
    }

    /// The digest of the pair `cookie_name=value`, or `None` for a cache
    /// that keeps nothing. The name's length goes first, so that a pair
    /// split elsewhere (`session=` and `AAA` against `session` and `=AAA`)
    /// is another pair.
    fn digest(&self, cookie_name: &str, value: &str) -> Option<Digest> {
        if self.entries_budget == 0 {
            return None;
        }
        let mut hasher = SipHasher13::new_with_keys(self.key[0], self.key[1]);
        hasher.write_usize(cookie_name.len());
        hasher.write(cookie_name.as_bytes());
        hasher.write(value.as_bytes());
        let digest = hasher.finish128();
        Some(Digest {
            hash: digest.h1,
            check: digest.h2,
        })
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        let index = shard_index(hash);
        // Nothing panics while a shard is locked; if something did, the
        // maps are still consistent enough: the clock tolerates hashes of
        // entries that are gone.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A lookup that counts, hit or miss, as
    /// [`get_or_open`](OpenedCookies::get_or_open)'s; for tests.
    #[cfg(test)]
    fn get(&self, cookie_name: &str, value: &str) -> Option<Arc<Record>> {
        self.lookup(self.digest(cookie_name, value)?, Count::Always)
    }

    /// Caches `record` as what `value` opened into, without a lookup; for
    /// tests.
    #[cfg(test)]
    fn insert(&self, cookie_name: &str, value: &str, record: &Arc<Record>) {
        if let Some(digest) = self.digest(cookie_name, value) {
            self.insert_replacing(digest, record, None);
        }
    }

    /// What the cache's entries and sketches are charged in all, for tests.
    #[cfg(test)]
    fn charged(&self) -> usize {
        let (entries, sketches) = self
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                let entries: usize = shard.entries.values().map(|entry| entry.charge).sum();
                (entries, shard.sketch.counters.len())
            })
            .fold((0, 0), |(e, s), (entries, sketch)| {
                (e + entries, s + sketch)
            });
        assert_eq!(
            entries,
            self.entries_charged(),
            "the running total is exact"
        );
        assert!(entries <= self.entries_budget);
        entries + sketches
    }

    /// What the entries alone are charged, for tests.
    #[cfg(test)]
    fn entries_charged(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }
}

impl Shard {
    /// Removes the entry of the cookie pair whose digest is `digest`, if
    /// it is there (and not another pair's whose digest has the same
    /// `hash`). Returns it, for the caller to drop outside the lock.
    fn remove(&mut self, digest: Digest, budget: &Budget<'_>) -> Option<Entry> {
        if !self.entries.get(&digest.hash)?.is_for(digest) {
            return None;
        }
        let removed = self.entries.remove(&digest.hash)?;
        budget.release(removed.charge);
        self.compact_clock();
        Some(removed)
    }

    /// Inserts `entry`, evicting what the clock proposes if the cache is
    /// full and the entry's cookie has been looked up more often than the
    /// first victim's; otherwise drops the entry. Evicted entries go to
    /// `evicted`, for the caller to free outside the lock.
    /// With `admit`, the entry replaces one that was cached (a session
    /// saved anew) and is admitted without the frequency check.
    fn insert(
        &mut self,
        hash: u64,
        entry: Entry,
        budget: &Budget<'_>,
        admit: bool,
        evicted: &mut Vec<Entry>,
    ) {
        let charge = entry.charge;
        if let Some(existing) = self.entries.get_mut(&hash) {
            // The same pair again (or, rarely, another whose digest has the
            // same `hash`): replaced in place, keeping its place in the
            // clock.
            let old_charge = existing.charge;
            if charge > old_charge && !budget.reserve(charge - old_charge) {
                return;
            }
            budget.release(old_charge.saturating_sub(charge));
            let replaced = std::mem::replace(existing, entry);
            evicted.push(replaced);
            return;
        }
        let mut admitted = admit;
        while !budget.reserve(charge) {
            let Some(victim) = self.clock.pop_front() else {
                // Nothing left to evict: the entry cannot fit.
                return;
            };
            let Some(candidate) = self.entries.get_mut(&victim) else {
                // Removed earlier: its hash was left behind.
                continue;
            };
            if candidate.referenced {
                candidate.referenced = false;
                self.clock.push_back(victim);
                continue;
            }
            if !admitted {
                // TinyLFU: the newcomer must have been asked for more often
                // than what it would replace, by a margin: the estimates
                // of a sketch smaller than the set of cookies in use are
                // noisy, and ties or near ties keep the resident, which is
                // what keeps a part of a long cycle cached.
                let newcomer = self.sketch.frequency(hash);
                let resident = self.sketch.frequency(victim);
                if newcomer <= resident.saturating_add(ADMISSION_MARGIN) {
                    // The resident stays, and the hand moves past it: the
                    // next newcomer faces the next resident. Held on one
                    // resident whose estimate shares its counters with
                    // popular cookies (which never fades), the hand would
                    // turn away every newcomer of the shard for good,
                    // however long the others had been idle.
                    self.clock.push_back(victim);
                    return;
                }
                admitted = true;
            }
            if let Some(gone) = self.entries.remove(&victim) {
                budget.release(gone.charge);
                evicted.push(gone);
            }
        }
        self.entries.insert(hash, entry);
        self.clock.push_back(hash);
    }

    /// Drops the hashes of removed entries from the clock once they are as
    /// many as the live ones, so that it stays within twice the entries.
    fn compact_clock(&mut self) {
        if self.clock.len() <= 2 * self.entries.len() + 32 {
            return;
        }
        let mut seen = HashSet::with_capacity_and_hasher(
            self.entries.len(),
            BuildHasherDefault::<PrehashedKey>::default(),
        );
        let entries = &self.entries;
        self.clock
            .retain(|hash| entries.contains_key(hash) && seen.insert(*hash));
    }
}

/// The running total of what all shards' entries are charged, and its
/// limit.
struct Budget<'a> {
    charged: &'a AtomicUsize,
    limit: usize,
}

impl Budget<'_> {
    /// Adds `charge` to the total if that keeps it within the limit.
    fn reserve(&self, charge: usize) -> bool {
        self.charged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |charged| {
                charged
                    .checked_add(charge)
                    .filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, charge: usize) {
        self.charged.fetch_sub(charge, Ordering::Relaxed);
    }
}

/// A count-min sketch of how often each cookie was looked up: two counters
/// per hash (from its two halves), the estimate being the smaller, with
/// conservative update (a lookup raises only the counters at the current
/// estimate, which keeps collisions from inflating estimates). Every
/// counter is halved once the sketch has counted as many lookups as it has
/// counters, so that past popularity fades.
struct Sketch {
    counters: Vec<u8>,
    /// Lookups counted since the last halving.
    additions: usize,
}

impl Sketch {
    /// Gives `hash` the `count` of the cookie it replaces. Not new
    /// lookups: moving a count does not bring the next halving closer.
    fn inherit(&mut self, hash: u64, count: u8) {
        if self.counters.is_empty() || count == 0 {
            return;
        }
        self.raise(hash, count);
    }

    /// Removes and returns the estimate of `hash`: the count of a cookie
    /// that will not be sent again, to move to its successor. Counters it
    /// shares with other cookies lose as much, which can only make those
    /// look less popular than they are, never more.
    fn take(&mut self, hash: u64) -> u8 {
        if self.counters.is_empty() {
            return 0;
        }
        let [a, b] = self.slots(hash);
        let estimate = self.counters[a].min(self.counters[b]);
        for slot in [a, b] {
            // Saturating: both slots may be one.
            self.counters[slot] = self.counters[slot].saturating_sub(estimate);
        }
        estimate
    }

    /// Conservative update: only the counters at the estimate rise.
    fn raise(&mut self, hash: u64, times: u8) {
        let [a, b] = self.slots(hash);
        let estimate = self.counters[a].min(self.counters[b]);
        let raised = estimate.saturating_add(times).min(MAX_COUNT);
        for slot in [a, b] {
            self.counters[slot] = self.counters[slot].max(raised);
        }
    }

    fn new(counters: usize) -> Self {
        Sketch {
            counters: vec![0; counters],
            additions: 0,
        }
    }

    fn slots(&self, hash: u64) -> [usize; 2] {
        let mask = self.counters.len().wrapping_sub(1);
        // The low bits pick the map slot, the high bits the shard: mix.
        let low = (hash as usize).rotate_right(7);
        let high = ((hash >> 32) as usize) ^ (hash as usize).rotate_left(13);
        [low & mask, high & mask]
    }

    fn frequency(&self, hash: u64) -> u8 {
        if self.counters.is_empty() {
            return 0;
        }
        let [a, b] = self.slots(hash);
        self.counters[a].min(self.counters[b])
    }

    /// Counts `times` lookups of `hash`.
    fn increment(&mut self, hash: u64, times: u8) {
        if self.counters.is_empty() || times == 0 {
            return;
        }
        self.raise(hash, times);
        self.additions += usize::from(times);
        if self.additions >= self.counters.len() {
            for counter in &mut self.counters {
                *counter /= 2;
            }
            self.additions /= 2;
        }
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
        assert_eq!(cache.entries_charged(), charge_of(&record("grace")));
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
        assert_eq!(cache.entries_charged(), charge_of(&record("grace")));
        cache.remove("session", "BBBB");
        assert_eq!(cache.entries_charged(), 0);
    }

    #[test]
    fn sealed_values_spread_evenly_over_shards_slots_and_tags() {
        // Values as the store seals them: random base64url characters.
        let cache = OpenedCookies::new(1 << 20);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut random = [0_u8; 64];
        let (mut shards, mut slots) = ([0_u32; SHARDS], [0_u32; 64]);
        // The map's tags (the hash's top seven bits) seen in each shard.
        let mut tags = [[false; 128]; SHARDS];
        let values = 64_000;
        for _ in 0..values {
            getrandom::fill(&mut random).unwrap();
            let value: String = random
                .iter()
                .map(|&b| char::from(alphabet[usize::from(b % 64)]))
                .collect();
            let hash = cache.digest("session", &value).unwrap().hash;
            let shard = shard_index(hash);
            shards[shard] += 1;
            slots[(hash % 64) as usize] += 1;
            tags[shard][(hash >> 57) as usize] = true;
        }
        // Within a quarter of the mean, more than ten standard deviations
        // for random values: a mix that left some of the hash's bits unused
        // would leave shards or slots empty.
        for (name, counts) in [("shard", &shards[..]), ("slot", &slots[..])] {
            let mean = values / counts.len() as u32;
            for &count in counts {
                assert!(
                    count.abs_diff(mean) < mean / 4,
                    "{name}: {count} against {mean}"
                );
            }
        }
        // Some 4,000 values a shard over 128 tags: every tag is seen unless
        // the shard's bits fix some of the tag's.
        for (shard, seen) in tags.iter().enumerate() {
            let distinct = seen.iter().filter(|&&seen| seen).count();
            assert_eq!(distinct, 128, "shard {shard}");
        }
    }

    #[test]
    fn values_one_byte_apart_are_told_apart() {
        let cache = OpenedCookies::new(1 << 20);
        let cached = "A".repeat(200);
        cache.insert("session", &cached, &Arc::new(record("ada")));
        for at in [0, 1, 100, 198, 199] {
            let mut other = cached.clone().into_bytes();
            other[at] = b'B';
            let other = String::from_utf8(other).unwrap();
            assert!(cache.get("session", &other).is_none(), "byte {at}");
            // A miss, or the removal of another value, takes nothing away.
            cache.remove("session", &other);
            assert_eq!(user(&cache.get("session", &cached).unwrap()), "ada");
        }
        assert!(cache.get("session", &cached[1..]).is_none());
        assert!(cache.get("session", &format!("{cached}A")).is_none());
        // Values that are not ASCII are digested by their bytes.
        assert!(cache.get("session", &"é".repeat(100)).is_none());
    }

    #[test]
    fn an_entry_answers_only_the_whole_digest() {
        let cache = OpenedCookies::new(1 << 20);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        let digest = cache.digest("session", "AAAA").unwrap();
        // Another pair whose digest shares the half that keys the map.
        let impostor = Digest {
            hash: digest.hash,
            check: digest.check ^ 1,
        };
        let mut shard = cache.shard(digest.hash);
        assert!(!shard.entries[&digest.hash].is_for(impostor));
        assert!(shard.remove(impostor, &cache.entries_total()).is_none());
        drop(shard);
        assert_eq!(user(&cache.get("session", "AAAA").unwrap()), "ada");
    }

    #[test]
    fn a_value_under_another_cookie_name_is_a_miss() {
        // The name is digested with the value.
        let cache = OpenedCookies::new(1 << 20);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        assert!(cache.get("other", "AAAA").is_none());
        assert!(cache.get_if_hit("sessio", "AAAA").is_none());
        cache.remove("other", "AAAA");
        assert_eq!(user(&cache.get("session", "AAAA").unwrap()), "ada");
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = OpenedCookies::new(0);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        assert!(cache.get("session", "AAAA").is_none());
        assert_eq!(cache.charged(), 0);
    }

    #[test]
    fn an_entry_larger_than_a_shard_is_not_kept() {
        let cache = OpenedCookies::new(SHARDS * 4 * 1024);
        let share = cache.entries_budget / SHARDS;
        let large = record(&"A".repeat(share));
        assert!(charge_of(&large) > share);
        cache.insert("session", "AAAA", &Arc::new(large));
        assert!(cache.get("session", "AAAA").is_none());
        assert_eq!(cache.entries_charged(), 0);
        // One a little smaller is kept.
        let smaller = record(&"A".repeat(share / 2));
        cache.insert("session", "AAAA", &Arc::new(smaller));
        assert!(cache.get("session", "AAAA").is_some());
    }

    #[test]
    fn a_budget_too_small_for_the_sketch_keeps_nothing() {
        let cache = OpenedCookies::new(SHARDS * 100);
        cache.insert("session", "AAAA", &Arc::new(record("ada")));
        assert!(cache.get("session", "AAAA").is_none());
        assert_eq!(cache.charged(), 0);
    }

    /// What a request's load does: the lookup of `load_from_memory`, and
    /// on a miss, `load`'s `get_or_open`, which opens and caches it.
    /// Whether it hit.
    fn load(cache: &OpenedCookies, value: &str) -> bool {
        if cache.get_if_hit("session", value).is_some() {
            return true;
        }
        let mut opened = false;
        cache
            .get_or_open("session", value, || {
                opened = true;
                Ok::<_, ()>(record("ada"))
            })
            .unwrap();
        !opened
    }

    fn frequency(cache: &OpenedCookies, value: &str) -> u8 {
        let hash = cache.digest("session", value).unwrap().hash;
        cache.shard(hash).sketch.frequency(hash)
    }

    #[test]
    fn a_load_counts_once_whether_it_hits_or_misses() {
        let cache = OpenedCookies::new(1 << 20);
        assert!(!load(&cache, "AAAA"));
        assert_eq!(frequency(&cache, "AAAA"), 1, "a miss");
        assert!(load(&cache, "AAAA"));
        assert_eq!(frequency(&cache, "AAAA"), 2, "a hit");
        // Alone, a lookup that misses counts nothing: its `get` will.
        assert!(cache.get_if_hit("session", "BBBB").is_none());
        assert_eq!(frequency(&cache, "BBBB"), 0);
        assert_eq!(user(&cache.get_if_hit("session", "AAAA").unwrap()), "ada");
        assert_eq!(frequency(&cache, "AAAA"), 3);
    }

    fn value(i: usize) -> String {
        format!("{i:0>200}")
    }

    #[test]
    fn accounted_bytes_stay_within_the_budget() {
        for budget in [64 * 1024, 1 << 20] {
            let cache = OpenedCookies::new(budget);
            let lengths = [10, 200, 1_000, 3_000];
            for i in 0..20_000 {
                let value = format!("{i:0>len$}", len = lengths[i % lengths.len()]);
                match i % 3 {
                    0 => cache.insert("session", &value, &Arc::new(record("ada"))),
                    1 => {
                        load(&cache, &value);
                    }
                    _ => {
                        let previous = format!("{:0>200}", i - 1);
                        cache.insert_sealed(
                            "session",
                            &value,
                            &Arc::new(record("ada")),
                            Some(&previous),
                        );
                    }
                }
                if i % 97 == 0 || i > 19_900 {
                    let charged = cache.charged();
                    assert!(charged <= budget, "{charged} > {budget} after {i}");
                }
            }
            // Far more was inserted than fits, and the cache is in use.
            assert!(cache.entries_charged() > budget / 2);
            // The clock stays within twice the entries.
            for shard in &cache.shards {
                let shard = shard.lock().unwrap();
                assert!(shard.clock.len() <= 2 * shard.entries.len() + 33);
            }
        }
    }

    #[test]
    fn a_cycle_larger_than_the_cache_still_hits() {
        let budget = 1 << 20;
        let cache = OpenedCookies::new(budget);
        // How many entries of these values the cache holds when full.
        for i in 0..100_000 {
            load(&cache, &value(i));
        }
        let capacity = cache.entries_charged() / charge_of(&record("ada"));
        let cache = OpenedCookies::new(budget);
        for cycle_len in [capacity * 2, capacity * 10] {
            let mut hits = 0;
            let cycles = 6;
            for turn in 0..cycles {
                for i in 0..cycle_len {
                    let hit = load(&cache, &value(1_000_000 + i));
                    if turn >= 2 && hit {
                        hits += 1;
                    }
                }
            }
            let rate = hits as f64 / ((cycles - 2) * cycle_len) as f64;
            let ideal = capacity as f64 / cycle_len as f64;
            // LRU or generations would hit nothing at all.
            assert!(
                rate >= 0.8 * ideal,
                "cycle of {cycle_len} over {capacity} entries: {rate:.3} < 0.8 × {ideal:.3}"
            );
        }
    }

    #[test]
    fn a_cycle_of_saves_keeps_its_entries() {
        // Each session's cookie changes on every request, as with a counter;
        // the new cookie takes the old one's place and frequency.
        let budget = 1 << 20;
        let cache = OpenedCookies::new(budget);
        let capacity = budget / charge_of(&record("ada"));
        let sessions = capacity * 3;
        let mut cookies: Vec<String> = (0..sessions).map(value).collect();
        let mut hits = 0;
        let mut serial = sessions;
        for turn in 0..6 {
            for cookie in &mut cookies {
                let hit = load(&cache, cookie);
                if turn >= 2 && hit {
                    hits += 1;
                }
                let next = value(serial);
                serial += 1;
                cache.insert_sealed("session", &next, &Arc::new(record("ada")), Some(cookie));
                *cookie = next;
            }
        }
        let rate = hits as f64 / (4 * sessions) as f64;
        // What a cache that kept a fixed part of the cycle would hit.
        let ideal = 1.0 / 3.0;
        assert!(rate >= 0.8 * ideal, "{rate:.3} < 0.8 × {ideal:.3}");
    }

    #[test]
    fn a_new_working_set_takes_over_from_an_idle_one() {
        // Sessions saved on every request, cycling through more than fit,
        // then going idle while as many new sessions as fit take over.
        let budget = 1 << 20;
        let cache = OpenedCookies::new(budget);
        let capacity = budget / charge_of(&record("ada"));
        let mut serial = 0;
        let mut cycle = |cache: &OpenedCookies, sessions: usize, turns: usize| {
            let mut cookies: Vec<String> = (0..sessions).map(|i| value(serial + i)).collect();
            serial += sessions;
            let mut hits_per_turn = Vec::new();
            for _ in 0..turns {
                let mut hits = 0;
                for cookie in &mut cookies {
                    hits += usize::from(load(cache, cookie));
                    let next = value(serial);
                    serial += 1;
                    cache.insert_sealed("session", &next, &Arc::new(record("ada")), Some(cookie));
                    *cookie = next;
                }
                hits_per_turn.push(hits as f64 / sessions as f64);
            }
            hits_per_turn
        };
        cycle(&cache, capacity * 3, 6);
        let rates = cycle(&cache, capacity / 2, 20);
        let settled = &rates[10..];
        assert!(
            settled.iter().all(|&rate| rate >= 0.9),
            "hit rates per turn of the new set: {rates:.2?}"
        );
    }

    #[test]
    fn new_sessions_that_only_read_take_over_from_idle_ones() {
        // A population of readers that fits, then goes idle while a new one
        // of the same size arrives (sessions created, then only read), as
        // when the users of one hour give way to those of the next. Some of
        // the idle entries share both their sketch counters with active
        // cookies, so their estimates never fade: the hand must not stay
        // on them (it did, and the new set settled at a third of hits).
        let budget = 4 << 20;
        let cache = OpenedCookies::new(budget);
        let sealed = |i: usize| format!("{i:0>128}");
        let capacity = cache.entries_budget / charge_of(&record("ada"));
        let sessions = capacity * 4 / 5;
        let mut rates = Vec::new();
        for population in 0..3 {
            let first = population * 1_000_000;
            for i in first..first + sessions {
                cache.insert_sealed("session", &sealed(i), &Arc::new(record("ada")), None);
            }
            rates.clear();
            for _ in 0..16 {
                let hits = (first..first + sessions)
                    .filter(|&i| load(&cache, &sealed(i)))
                    .count();
                rates.push(hits as f64 / sessions as f64);
            }
            assert!(
                rates[10..].iter().all(|&rate| rate >= 0.95),
                "hit rates per turn of population {population}: {rates:.2?}"
            );
        }
    }

    #[test]
    fn repeated_cookies_survive_a_scan() {
        let cache = OpenedCookies::new(1 << 20);
        for _ in 0..3 {
            for i in 0..50 {
                load(&cache, &format!("hot{i}"));
            }
        }
        for i in 0..100_000 {
            load(&cache, &value(i));
            if i % 1_000 == 0 {
                for hot in 0..50 {
                    assert!(load(&cache, &format!("hot{hot}")), "hot{hot} after {i}");
                }
            }
        }
    }

    #[test]
    fn threads_share_it() {
        // Room for every entry: this is about threads, not eviction.
        let cache = std::sync::Arc::new(OpenedCookies::new(16 << 20));
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
