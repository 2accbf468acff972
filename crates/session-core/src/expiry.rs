//! When sessions end: idle and absolute timeouts, rolling refresh, and the
//! clock they are measured with.
//!
//! Deadlines are absolute instants stored inside the [`Record`]
//! (and so inside an encrypted cookie, or beside the data in Redis). The core
//! enforces them on every load, whatever the backend, so a client that ignores
//! `Max-Age` and replays an old cookie still gets a new session.
//!
//! The rules, all in this module:
//!
//! * a session ends at the earlier of its idle deadline (last write or
//!   refresh + idle timeout) and its absolute deadline (first creation +
//!   absolute timeout); regenerating the id keeps the first creation;
//! * a session's own policy ([`Session::set_expiry`](crate::Session::set_expiry))
//!   may shorten the configured absolute timeout, never lengthen it
//!   ([`Expiry::within`]), so lowering the timeout in a redeploy shortens
//!   every existing session too;
//! * a read moves the idle deadline only when that gains at least the
//!   [`Rolling`] step.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Record;

/// How long a session lives.
///
/// * the **idle timeout** ends a session after a period without activity
///   (aiohttp_session's `max_age`);
/// * the **absolute timeout** ends it a fixed time after creation, however
///   active it is, which bounds the damage of a stolen cookie.
///
/// ```
/// use std::time::Duration;
/// use session_core::Expiry;
///
/// let expiry = Expiry::default()
///     .with_idle_timeout(Some(Duration::from_secs(30 * 60)))
///     .with_absolute_timeout(Some(Duration::from_secs(8 * 3600)));
/// assert_eq!(expiry.idle_timeout(), Some(Duration::from_secs(1800)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Expiry {
    #[serde(rename = "i", with = "opt_millis", default)]
    idle: Option<Duration>,
    #[serde(rename = "a", with = "opt_millis", default)]
    absolute: Option<Duration>,
}

impl Default for Expiry {
    /// 24 hours idle, 7 days absolute.
    fn default() -> Self {
        Expiry {
            idle: Some(Duration::from_secs(24 * 3600)),
            absolute: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

impl Expiry {
    /// A session that never expires on its own. Prefer timeouts: OWASP asks
    /// for both an idle and an absolute one.
    pub const NEVER: Expiry = Expiry {
        idle: None,
        absolute: None,
    };

    /// Sets (or, with `None`, removes) the idle timeout.
    #[must_use]
    pub const fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle = idle;
        self
    }

    /// Sets (or, with `None`, removes) the absolute timeout.
    #[must_use]
    pub const fn with_absolute_timeout(mut self, absolute: Option<Duration>) -> Self {
        self.absolute = absolute;
        self
    }

    /// The idle timeout, if any.
    #[must_use]
    pub const fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }

    /// The absolute timeout, if any.
    #[must_use]
    pub const fn absolute_timeout(&self) -> Option<Duration> {
        self.absolute
    }

    /// The instant a session created at `created` and last active at
    /// `last_active` expires: the earlier of the two deadlines, or `None`
    /// when neither timeout is set.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use session_core::Expiry;
    ///
    /// let expiry = Expiry::default()
    ///     .with_idle_timeout(Some(Duration::from_secs(60)))
    ///     .with_absolute_timeout(Some(Duration::from_secs(100)));
    /// let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
    /// // Idle deadline first...
    /// assert_eq!(expiry.deadline(t0, t0), Some(t0 + Duration::from_secs(60)));
    /// // ...until activity pushes it past the absolute one.
    /// let later = t0 + Duration::from_secs(90);
    /// assert_eq!(expiry.deadline(t0, later), Some(t0 + Duration::from_secs(100)));
    /// ```
    #[must_use]
    pub fn deadline(&self, created: SystemTime, last_active: SystemTime) -> Option<SystemTime> {
        let idle = self.idle.and_then(|idle| last_active.checked_add(idle));
        let absolute = self.absolute.and_then(|abs| created.checked_add(abs));
        match (idle, absolute) {
            (Some(i), Some(a)) => Some(i.min(a)),
            (i, a) => i.or(a),
        }
    }
}

impl Expiry {
    /// This policy as a session's own, within the `configured` one: the idle
    /// timeout as set, the absolute timeout never longer than the
    /// configured one (a session without one gets the configured one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_core::Expiry;
    ///
    /// let hour = Duration::from_secs(3600);
    /// let configured = Expiry::default().with_absolute_timeout(Some(8 * hour));
    /// let remember_me = Expiry::NEVER
    ///     .with_idle_timeout(Some(24 * 30 * hour))
    ///     .with_absolute_timeout(Some(24 * 90 * hour));
    /// let applied = remember_me.within(configured);
    /// assert_eq!(applied.idle_timeout(), Some(24 * 30 * hour));
    /// assert_eq!(applied.absolute_timeout(), Some(8 * hour)); // never lengthened
    /// ```
    #[must_use]
    pub fn within(self, configured: Expiry) -> Expiry {
        let absolute = match (self.absolute, configured.absolute) {
            (Some(own), Some(limit)) => Some(own.min(limit)),
            (own, limit) => own.or(limit),
        };
        Expiry { absolute, ..self }
    }
}

/// The expiry rules of one configuration, as the request lifecycle applies
/// them to records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub(crate) configured: Expiry,
    pub(crate) rolling: Rolling,
}

impl Rules {
    /// The policy that governs `record`.
    fn policy_of(&self, record: &Record) -> Expiry {
        record
            .expiry
            .map_or(self.configured, |own| own.within(self.configured))
    }

    /// Whether `record` must not be served at `now`: its stored deadline has
    /// passed, or its absolute timeout has (which also catches a timeout
    /// that was shortened since the record was written).
    pub(crate) fn is_expired(&self, record: &Record, now: SystemTime) -> bool {
        let past_absolute = self
            .policy_of(record)
            .absolute_timeout()
            .and_then(|timeout| record.created.checked_add(timeout))
            .is_some_and(|deadline| deadline <= now);
        record.is_expired_at(now) || past_absolute
    }

    /// Rolling expiry: whether a request that only read `record` should
    /// move its deadline at `now`, because that gains at least the throttle
    /// step.
    pub(crate) fn refresh_due(&self, record: &Record, now: SystemTime) -> bool {
        let policy = self.policy_of(record);
        let Some(min_gain) = self.rolling.min_gain(&policy) else {
            return false;
        };
        match (record.expires_at, policy.deadline(record.created, now)) {
            (Some(old), Some(new)) => new
                .duration_since(old)
                .is_ok_and(|gained| !gained.is_zero() && gained >= min_gain),
            _ => false,
        }
    }

    /// Whether a request that changed `record`'s data (and nothing else)
    /// should move its deadline at `now`, so that a write need not rewrite
    /// the stored deadline every time. With rolling refresh throttled: when
    /// that moves it forward by at least the throttle step, as for a read,
    /// or up to the absolute deadline (activity keeps a session until
    /// then, however close it is), or back (a policy that shrank). With
    /// rolling refresh off, always: writes are then what extends a session.
    pub(crate) fn write_moves_deadline(&self, record: &Record, now: SystemTime) -> bool {
        let policy = self.policy_of(record);
        let Some(min_gain) = self.rolling.min_gain(&policy) else {
            return true;
        };
        match (record.expires_at, policy.deadline(record.created, now)) {
            (Some(old), Some(new)) if new > old => {
                let absolute = policy
                    .absolute_timeout()
                    .and_then(|timeout| record.created.checked_add(timeout));
                new.duration_since(old)
                    .is_ok_and(|gained| gained >= min_gain)
                    || absolute == Some(new)
            }
            (old, new) => old != new,
        }
    }

    /// Sets `record`'s deadline as of a write or refresh at `now`.
    pub(crate) fn stamp(&self, record: &mut Record, now: SystemTime) {
        record.expires_at = self.policy_of(record).deadline(record.created, now);
    }
}

/// Whether reads extend an idle timeout (rolling expiry).
///
/// A refresh on every request would turn every read into a write. With
/// `Throttled(step)`, a request refreshes the deadline when that pushes it
/// forward by at least `step` (capped at a quarter of the idle timeout, so
/// short timeouts still roll): one that only reads, and one that only
/// changes data keys, which then leaves the stored deadline as it was.
/// Saves that change more than data keys (a login, a new expiry policy,
/// [`Session::mark_changed`](crate::Session::mark_changed)) always refresh
/// it, and so does every write with `Disabled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rolling {
    /// Reads never extend the session; every write does.
    Disabled,
    /// Reads and writes of data extend the session when the deadline moves
    /// by at least this much.
    Throttled(Duration),
}

impl Default for Rolling {
    /// Refresh at most once a minute.
    fn default() -> Self {
        Rolling::Throttled(Duration::from_secs(60))
    }
}

impl Rolling {
    /// The smallest forward move of the deadline that is worth a refresh, or
    /// `None` when reads never refresh.
    pub(crate) fn min_gain(&self, expiry: &Expiry) -> Option<Duration> {
        match *self {
            Rolling::Disabled => None,
            Rolling::Throttled(step) => Some(match expiry.idle_timeout() {
                Some(idle) => step.min(idle / 4),
                None => step,
            }),
        }
    }
}

/// The source of the current time for expiry decisions.
///
/// The system clock in production; a [`ManualClock`] in tests, so that expiry
/// is tested without sleeping.
#[derive(Clone, Default)]
pub struct Clock(Option<ManualClock>);

impl Clock {
    /// The operating system's wall clock.
    #[must_use]
    pub fn system() -> Self {
        Clock(None)
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        match &self.0 {
            None => SystemTime::now(),
            Some(manual) => manual.now(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::System"),
            Some(manual) => write!(f, "Clock::Manual({:?})", manual.now()),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock(Some(manual))
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use session_core::{Clock, ManualClock};
///
/// let manual = ManualClock::starting_now();
/// let clock = Clock::from(manual.clone());
/// let before = clock.now();
/// manual.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(3600));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock set to `start`.
    #[must_use]
    pub fn new(start: SystemTime) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// A clock set to the current wall-clock time, truncated to whole
    /// milliseconds (the precision stores keep).
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(from_unix_millis(unix_millis(SystemTime::now())).unwrap_or(UNIX_EPOCH))
    }

    /// The clock's time.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

/// Milliseconds since the Unix epoch; instants before it count as 0.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use session_core::{from_unix_millis, unix_millis};
/// let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// assert_eq!(unix_millis(t), 1_700_000_000_123);
/// assert_eq!(from_unix_millis(1_700_000_000_123), Some(t));
/// ```
#[must_use]
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The instant `ms` milliseconds after the Unix epoch, or `None` when it is
/// not representable (a hostile value, say).
#[must_use]
pub fn from_unix_millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Serde for `SystemTime` as integer Unix milliseconds.
pub(crate) mod millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(unix_millis(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let ms = u64::deserialize(d)?;
        from_unix_millis(ms).ok_or_else(|| serde::de::Error::custom("timestamp out of range"))
    }
}

/// Serde for `Option<SystemTime>` as integer Unix milliseconds or null.
pub(crate) mod opt_unix_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        t.map(unix_millis).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<u64>::deserialize(d)? {
            None => Ok(None),
            Some(ms) => from_unix_millis(ms)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
        }
    }
}

/// Serde for `Option<Duration>` as integer milliseconds or null.
mod opt_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_without_timeouts_is_none() {
        let t = SystemTime::now();
        assert_eq!(Expiry::NEVER.deadline(t, t), None);
    }

    #[test]
    fn deadline_never_overflows() {
        let expiry = Expiry::NEVER.with_idle_timeout(Some(Duration::MAX));
        let t = SystemTime::now();
        assert_eq!(expiry.deadline(t, t), None);
    }

    #[test]
    fn throttle_is_capped_by_a_quarter_of_idle() {
        let expiry = Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(40)));
        assert_eq!(
            Rolling::default().min_gain(&expiry),
            Some(Duration::from_secs(10))
        );
        assert_eq!(Rolling::Disabled.min_gain(&expiry), None);
    }

    #[test]
    fn a_sessions_own_policy_never_outlives_the_configured_absolute_timeout() {
        let secs = Duration::from_secs;
        let configured = Expiry::NEVER.with_absolute_timeout(Some(secs(100)));
        let longer = Expiry::NEVER.with_absolute_timeout(Some(secs(1000)));
        let shorter = Expiry::NEVER.with_absolute_timeout(Some(secs(10)));
        assert_eq!(
            longer.within(configured).absolute_timeout(),
            Some(secs(100))
        );
        assert_eq!(
            shorter.within(configured).absolute_timeout(),
            Some(secs(10))
        );
        assert_eq!(
            Expiry::NEVER.within(configured).absolute_timeout(),
            Some(secs(100))
        );
        assert_eq!(longer.within(Expiry::NEVER), longer);

        let rules = Rules {
            configured,
            rolling: Rolling::Disabled,
        };
        let created = UNIX_EPOCH + secs(1_000_000);
        let mut record = Record::new(created);
        record.expiry = Some(longer);
        rules.stamp(&mut record, created);
        assert_eq!(record.expires_at, Some(created + secs(100)));
        // Written under a longer limit: still ends at the configured one.
        record.expires_at = Some(created + secs(1000));
        assert!(!rules.is_expired(&record, created + secs(99)));
        assert!(rules.is_expired(&record, created + secs(100)));
    }

    #[test]
    fn a_write_moves_the_deadline_as_far_as_a_read_would_or_to_the_absolute_end() {
        let secs = Duration::from_secs;
        let rules = Rules {
            configured: Expiry::NEVER
                .with_idle_timeout(Some(secs(60)))
                .with_absolute_timeout(Some(secs(100))),
            rolling: Rolling::Throttled(secs(10)),
        };
        let created = UNIX_EPOCH + secs(1_000_000);
        let mut record = Record::new(created);
        rules.stamp(&mut record, created);
        assert_eq!(record.expires_at, Some(created + secs(60)));
        let at = |s| created + secs(s);
        // Less than the step forward: the stored deadline is left.
        assert!(!rules.write_moves_deadline(&record, at(9)));
        assert!(!rules.write_moves_deadline(&record, at(0)));
        // The step or more.
        assert!(rules.write_moves_deadline(&record, at(10)));
        // Capped by the absolute deadline, however little that gains.
        record.expires_at = Some(at(95));
        assert!(rules.write_moves_deadline(&record, at(40)));
        record.expires_at = Some(at(100));
        assert!(!rules.write_moves_deadline(&record, at(50)));
        // Back, when the policy shrank; and from none to one.
        record.expires_at = Some(at(500));
        assert!(rules.write_moves_deadline(&record, at(1)));
        record.expires_at = None;
        assert!(rules.write_moves_deadline(&record, at(1)));
        // With rolling refresh off, every write moves it.
        let disabled = Rules {
            rolling: Rolling::Disabled,
            ..rules
        };
        rules.stamp(&mut record, created);
        assert!(disabled.write_moves_deadline(&record, at(1)));
    }

    #[test]
    fn hostile_millis_do_not_panic() {
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        let _ = from_unix_millis(u64::MAX);
    }
}
