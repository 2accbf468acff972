//! The session cookie: its attributes, reading it from `Cookie` request
//! headers, and writing `Set-Cookie` response headers, both through the
//! `cookie` crate (the one actix-web and axum-extra use). What that crate
//! leaves to its callers is done here: names, paths and domains are checked
//! when configured, values when written, and a request's candidates are
//! bounded in number and length before any store sees them.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use ::cookie::Cookie;
use ::cookie::time::{Duration as CookieDuration, OffsetDateTime};

use crate::{ContractViolation, Error};

/// Chrome's cap on cookie lifetimes, used as `Max-Age` for a persistent
/// cookie whose session never expires.
const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

/// Whether the session cookie outlives the browser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CookieLifetime {
    /// No `Max-Age`: the browser forgets the cookie when it closes. The
    /// server-side deadlines still apply. The default, as in aiohttp_session,
    /// tower-sessions and actix-session.
    #[default]
    BrowserSession,
    /// `Max-Age` set to the time left until the session's deadline, so the
    /// browser keeps it across restarts.
    Persistent,
}

/// The `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Sent with same-site requests and top-level navigations (the default).
    #[default]
    Lax,
    /// Sent with every request; browsers require `Secure` with it.
    None,
}

impl From<SameSite> for ::cookie::SameSite {
    fn from(same_site: SameSite) -> Self {
        match same_site {
            SameSite::Strict => ::cookie::SameSite::Strict,
            SameSite::Lax => ::cookie::SameSite::Lax,
            SameSite::None => ::cookie::SameSite::None,
        }
    }
}

/// The session cookie's name, attributes and lifetime.
///
/// The defaults are the safe ones: name `session`, `Path=/`, no `Domain`
/// (host-only), `Secure`, `HttpOnly`, `SameSite=Lax`, and a browser-session
/// cookie (no `Max-Age`).
///
/// ```
/// use session_core::{CookieConfig, CookieLifetime, SameSite};
/// let cookie = CookieConfig::default()
///     .with_name("id")
///     .with_same_site(SameSite::Strict)
///     .with_lifetime(CookieLifetime::Persistent);
/// assert_eq!(cookie.name(), "id");
/// assert!(cookie.secure() && cookie.http_only());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    lifetime: CookieLifetime,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "session".to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            lifetime: CookieLifetime::BrowserSession,
        }
    }
}

impl CookieConfig {
    /// The largest `Set-Cookie` value (`name=value` plus attributes) that is
    /// sent. RFC 6265 asks browsers to accept at least 4096 bytes, and some
    /// drop larger cookies silently, so a save whose cookie would be larger
    /// fails with [`Error::CookieTooLarge`] instead.
    ///
    /// ```
    /// use session_core::CookieConfig;
    /// // A cookie store can refuse a record that could never be sent.
    /// let value = "x".repeat(5000);
    /// assert!(value.len() > CookieConfig::MAX_SIZE);
    /// ```
    pub const MAX_SIZE: usize = 4096;

    /// At most this many cookies of the session's name are tried per
    /// request, in order, so that a request cannot make the store do
    /// unbounded work.
    ///
    /// ```
    /// use session_core::CookieConfig;
    /// assert!(CookieConfig::MAX_CANDIDATES >= 1);
    /// ```
    pub const MAX_CANDIDATES: usize = 4;

    /// Sets the cookie's name.
    ///
    /// # Panics
    ///
    /// Panics if `name` is not an RFC 6265 token (empty, or containing
    /// separators, spaces or control characters): a configuration mistake
    /// that must not reach production.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(is_token(&name), "invalid cookie name {name:?}");
        self.name = name;
        self
    }

    /// Sets the `Path` attribute.
    ///
    /// # Panics
    ///
    /// Panics if `path` contains `;` or control characters.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        assert!(is_attribute_value(&path), "invalid cookie path {path:?}");
        self.path = path;
        self
    }

    /// Sets (or, with `None`, removes) the `Domain` attribute.
    ///
    /// # Panics
    ///
    /// Panics if `domain` contains `;` or control characters.
    #[must_use]
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        if let Some(domain) = &domain {
            assert!(
                is_attribute_value(domain),
                "invalid cookie domain {domain:?}"
            );
        }
        self.domain = domain;
        self
    }

    /// Sets the `Secure` attribute. Turn it off only for plain-http testing.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets the `HttpOnly` attribute, which hides the cookie from scripts.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets the `SameSite` attribute.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Chooses between a browser-session and a persistent cookie.
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The cookie's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Path` attribute.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Domain` attribute.
    #[must_use]
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether `Secure` is set.
    #[must_use]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Whether `HttpOnly` is set.
    #[must_use]
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// The `SameSite` attribute.
    #[must_use]
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// Browser-session or persistent.
    #[must_use]
    pub fn lifetime(&self) -> CookieLifetime {
        self.lifetime
    }

    /// The longest value a cookie of this name can carry within
    /// [`MAX_SIZE`](Self::MAX_SIZE); longer request values cannot be ours.
    pub(crate) fn max_value_len(&self) -> usize {
        Self::MAX_SIZE.saturating_sub(self.name.len() + 1)
    }

    /// The `Set-Cookie` value that stores `value` for a session whose
    /// deadline is `expires_at`: a persistent cookie's `Max-Age` is the time
    /// left until it at `now`.
    pub(crate) fn session_cookie(
        &self,
        value: &str,
        expires_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<String, Error> {
        let max_age = match self.lifetime {
            CookieLifetime::BrowserSession => None,
            CookieLifetime::Persistent => Some(expires_at.map_or(MAX_COOKIE_AGE, |deadline| {
                deadline.duration_since(now).unwrap_or(Duration::ZERO)
            })),
        };
        self.set_cookie(value, max_age)
    }

    /// Whether a cookie the browser already holds with this very value
    /// must be sent again when the session's deadline moves: only a
    /// persistent cookie's `Max-Age` moves with it.
    pub(crate) fn resent_when_deadline_moves(&self) -> bool {
        self.lifetime == CookieLifetime::Persistent
    }

    /// The `Set-Cookie` value that stores `value`, with `Max-Age` when given.
    pub(crate) fn set_cookie(
        &self,
        value: &str,
        max_age: Option<Duration>,
    ) -> Result<String, Error> {
        if !is_cookie_value(value) {
            return Err(Error::ContractViolation(
                ContractViolation::InvalidCookieValue {
                    cookie: self.name.clone(),
                },
            ));
        }
        let header = self.render(value, max_age.map(|d| d.as_secs()), false);
        if header.len() > Self::MAX_SIZE {
            return Err(Error::CookieTooLarge {
                name: self.name.clone(),
                size: header.len(),
                limit: Self::MAX_SIZE,
            });
        }
        Ok(header)
    }

    /// The `Set-Cookie` value that makes the browser drop the cookie: empty,
    /// expired, with the same path, domain and flags as the one it removes.
    pub(crate) fn removal_cookie(&self) -> String {
        self.render("", Some(0), true)
    }

    fn render(&self, value: &str, max_age_secs: Option<u64>, expired: bool) -> String {
        // Borrowed, not owned, strings: this runs on every write of a
        // session, and the cookie is only formatted, never kept.
        let mut cookie = Cookie::new(self.name.as_str(), value);
        cookie.set_path(self.path.as_str());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.as_str());
        }
        if let Some(secs) = max_age_secs {
            cookie.set_max_age(CookieDuration::seconds(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ));
        }
        if expired {
            // For user agents that predate Max-Age.
            cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
        }
        // Always explicit: left unset, the crate adds `Secure` to
        // `SameSite=None` on its own, which `with_secure(false)` must not get.
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(::cookie::SameSite::from(self.same_site));
        // Sized once: `to_string` grows the string as it goes.
        let mut out = String::with_capacity(
            self.name.len()
                + value.len()
                + self.path.len()
                + self.domain.as_ref().map_or(0, String::len)
                + 120,
        );
        // Writing to a String cannot fail.
        let _ = write!(out, "{cookie}");
        out
    }
}

/// The values of the cookies named `name` in a request's `Cookie` headers,
/// in order, at most [`CookieConfig::MAX_CANDIDATES`] of them, borrowed from
/// the headers.
///
/// Each header is cut at its `;` (RFC 6265 §5.4), and each piece that may
/// hold our cookie is read as [`Cookie::parse`] reads a pair. A pair that
/// is not UTF-8 is skipped, a value in double quotes is unquoted, and a
/// value longer than `max_len` cannot be one we issued and is skipped
/// before any store decodes it. Lazy: headers after the last candidate are
/// not scanned.
pub(crate) fn cookie_value_slices<'a, 'n, I>(
    headers: I,
    name: &'n str,
    max_len: usize,
) -> CookieValues<'a, 'n, I::IntoIter>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    CookieValues {
        headers: headers.into_iter(),
        rest: None,
        name,
        max_len,
        left: CookieConfig::MAX_CANDIDATES,
    }
}

/// The iterator of [`cookie_value_slices`]: a loop over the pieces of each
/// header rather than a chain of adapters, which cost some 500 instructions
/// more on every request.
pub(crate) struct CookieValues<'a, 'n, I> {
    headers: I,
    /// What is left of the header being read; `None` between headers.
    rest: Option<&'a [u8]>,
    name: &'n str,
    max_len: usize,
    /// How many more values may be given.
    left: usize,
}

impl<'a, I: Iterator<Item = &'a [u8]>> Iterator for CookieValues<'a, '_, I> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while self.left > 0 {
            let rest = match self.rest {
                Some(rest) => rest,
                None => self.headers.next()?,
            };
            let (piece, after) = match memchr::memchr(b';', rest) {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            self.rest = after;
            if let Some(value) = self.value_in(piece) {
                self.left -= 1;
                return Some(value);
            }
        }
        None
    }
}

impl<'a, I> CookieValues<'a, '_, I> {
    /// The value `piece` holds for our cookie, if it is our cookie's pair,
    /// UTF-8, and no longer than a value we issue.
    fn value_in(&self, piece: &'a [u8]) -> Option<&'a str> {
        // Only pieces that start with the name are read further, which
        // spares checking the others as UTF-8: most of a site's cookies
        // are not ours. (The library's `split_parse` parsed every pair of
        // the header, and scanned each one twice, which tripled the cost of
        // a load among a site's other cookies: 2 µs more for 1.5 KB.)
        if !starts_with_name(piece, self.name) {
            return None;
        }
        let value = unquote(pair_value(std::str::from_utf8(piece).ok()?, self.name)?);
        (value.len() <= self.max_len).then_some(value)
    }
}

/// The value of `piece`, one `name=value` pair of a `Cookie` header (cut
/// at its `;`), if the pair's name is `name`: the text is split at the
/// first `=`, and both sides are trimmed of white space, exactly as
/// [`Cookie::parse`] reads a pair (tested against it). Done here because
/// `Cookie::parse` also builds a whole cookie and looks for attributes,
/// which cost some 700 instructions on every request for a value of 200
/// bytes.
fn pair_value<'a>(piece: &'a str, name: &str) -> Option<&'a str> {
    let (pair_name, value) = piece.split_once('=')?;
    (!name.is_empty() && pair_name.trim() == name).then(|| value.trim())
}

/// Whether `piece`, past leading white space, starts with `name` (a token,
/// so ASCII). White space is what [`str::trim_start`] trims: ASCII white
/// space is skipped here, and a piece that goes on with a byte beyond ASCII
/// (perhaps Unicode white space) is read as text.
fn starts_with_name(piece: &[u8], name: &str) -> bool {
    let start = piece
        .iter()
        .position(|&b| !(b == b' ' || (b'\t'..=b'\r').contains(&b)))
        .unwrap_or(piece.len());
    let trimmed = &piece[start..];
    if trimmed.first().is_some_and(|b| !b.is_ascii()) {
        return std::str::from_utf8(trimmed).is_ok_and(|text| text.trim_start().starts_with(name));
    }
    trimmed.starts_with(name.as_bytes())
}

/// [`cookie_value_slices`], copied: what the tests compare.
#[cfg(test)]
fn cookie_values<'a>(
    headers: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
    max_len: usize,
) -> Vec<String> {
    cookie_value_slices(headers, name, max_len)
        .map(str::to_owned)
        .collect()
}

/// The value inside double quotes, as [`Cookie::value_trimmed`] gives it,
/// but borrowed from the header.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// RFC 7230 `token`: what a cookie name may be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 `cookie-octet`s: what a cookie value may contain. Checked on
/// every `Set-Cookie`, over values of up to 4 KB: the bytes are tested in
/// fixed-size chunks without an early exit inside a chunk, which the
/// compiler turns into vector compares (a byte-by-byte `all` was a tenth of
/// a cookie-store write).
fn is_cookie_value(s: &str) -> bool {
    const CHUNK: usize = 32;
    s.as_bytes()
        .chunks(CHUNK)
        .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & is_cookie_octet(b)))
        || is_quoted_value(s)
}

/// A value in double quotes as Python's `http.cookies` writes it (what
/// aiohttp_session's cookies are): printable ASCII and spaces inside, with
/// `"` and `\` escaped by a backslash, and no `;`, which would end the
/// value. Browsers keep it, quotes included, and send it back as it is.
fn is_quoted_value(s: &str) -> bool {
    let [b'"', inner @ .., b'"'] = s.as_bytes() else {
        return false;
    };
    let mut escaped = false;
    for &b in inner {
        if !(0x20..0x7F).contains(&b) || b == b';' || (b == b'"' && !escaped) {
            return false;
        }
        escaped = b == b'\\' && !escaped;
    }
    !escaped
}

/// `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`: visible ASCII but `"`,
/// `,`, `;` and `\`. Written with `&` rather than `&&` so that it has no
/// branches.
fn is_cookie_octet(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) & (b != b'"') & (b != b',') & (b != b';') & (b != b'\\')
}

fn is_attribute_value(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_octets_are_exactly_rfc_6265s() {
        for b in 0..=u8::MAX {
            let rfc = matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
            assert_eq!(is_cookie_octet(b), rfc, "{b:#04x}");
            // Anywhere in a value longer than one chunk, a bad byte is found.
            if b.is_ascii() {
                for at in [0, 31, 32, 33, 99] {
                    let mut value = vec![b'a'; 100];
                    value[at] = b;
                    let value = String::from_utf8(value).unwrap();
                    assert_eq!(is_cookie_value(&value), rfc, "{b:#04x} at {at}");
                }
            }
        }
        assert!(is_cookie_value(""));
        assert!(!is_cookie_value("é"));
    }

    fn values(headers: &[&[u8]], name: &str) -> Vec<String> {
        cookie_values(headers.iter().copied(), name, 100)
    }

    #[test]
    fn finds_the_named_cookie_among_others() {
        assert_eq!(values(&[b"a=1; session=abc; b=2"], "session"), ["abc"]);
        assert_eq!(values(&[b"a=1", b"session=x"], "session"), ["x"]);
        assert!(values(&[b"a=1; sessionx=2; xsession=3"], "session").is_empty());
    }

    #[test]
    fn tolerates_spaces_quotes_and_empty_values() {
        assert_eq!(values(&[b"  session = abc  ;"], "session"), ["abc"]);
        assert_eq!(values(&[b"session=\"abc\""], "session"), ["abc"]);
        assert_eq!(values(&[b"session="], "session"), [""]);
        assert_eq!(values(&[b"session=\""], "session"), ["\""]);
        assert!(values(&[b"session", b";;;", b"", b"="], "session").is_empty());
    }

    #[test]
    fn white_space_before_the_name_is_what_str_trims() {
        // ASCII white space, the vertical tab included, and Unicode white
        // space are skipped; other characters are part of the name.
        for header in [
            "\x0bsession=a",
            "\t\r\n\x0c session=a",
            "\u{a0}session=a",
            "x=1;\u{2003} \u{85}session=a",
        ] {
            assert_eq!(values(&[header.as_bytes()], "session"), ["a"], "{header:?}");
        }
        for header in [
            "\x1csession=a",
            "\u{200b}session=a",
            "ésession=a",
            "\x00session=a",
        ] {
            assert!(
                values(&[header.as_bytes()], "session").is_empty(),
                "{header:?}"
            );
        }
        // A piece that is not UTF-8 is skipped, even when it starts right.
        assert!(values(&[b"\xa0session=a", b"session=\xff"], "session").is_empty());
    }

    #[test]
    fn keeps_same_name_cookies_in_order_up_to_the_bound() {
        let header = b"session=1; session=2; session=3; session=4; session=5";
        assert_eq!(values(&[header], "session"), ["1", "2", "3", "4"]);
    }

    #[test]
    fn skips_non_utf8_and_oversized_values() {
        let long = format!("session={}; session=ok", "x".repeat(101));
        assert_eq!(
            values(&[b"session=\xff\xfe; session=ok"], "session"),
            ["ok"]
        );
        assert_eq!(values(&[long.as_bytes()], "session"), ["ok"]);
    }

    #[test]
    fn set_cookie_carries_every_attribute() {
        let cookie = CookieConfig::default()
            .with_name("sid")
            .with_path("/app")
            .with_domain(Some("example.com".into()))
            .with_same_site(SameSite::Strict);
        assert_eq!(
            cookie
                .set_cookie("v", Some(Duration::from_secs(60)))
                .unwrap(),
            "sid=v; HttpOnly; SameSite=Strict; Secure; Path=/app; Domain=example.com; Max-Age=60"
        );
        let plain = CookieConfig::default()
            .with_secure(false)
            .with_http_only(false)
            .with_same_site(SameSite::None);
        assert_eq!(
            plain.set_cookie("v", None).unwrap(),
            "session=v; SameSite=None; Path=/"
        );
    }

    #[test]
    fn removal_cookie_keeps_path_domain_and_flags() {
        let cookie = CookieConfig::default()
            .with_path("/app")
            .with_domain(Some("example.com".into()));
        assert_eq!(
            cookie.removal_cookie(),
            "session=; HttpOnly; SameSite=Lax; Secure; Path=/app; Domain=example.com; \
             Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn oversized_cookie_is_an_error_naming_its_size() {
        let cookie = CookieConfig::default();
        let value = "x".repeat(CookieConfig::MAX_SIZE);
        let err = cookie.set_cookie(&value, None).unwrap_err();
        let expected = value.len() + "session=; HttpOnly; SameSite=Lax; Secure; Path=/".len();
        match &err {
            Error::CookieTooLarge { size, limit, .. } => {
                assert_eq!((*size, *limit), (expected, CookieConfig::MAX_SIZE));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains(&expected.to_string()));
    }

    #[test]
    fn python_quoted_values_are_accepted() {
        for good in [r#""""#, r#""a b\"c\\d\054""#, r#""YWJj+/==""#] {
            assert!(is_cookie_value(good), "{good}");
        }
        for bad in [
            r#"""#, r#""a"b""#, r#""a;b""#, "\"a\tb\"", r#""ab\""#, r#""é""#,
        ] {
            assert!(!is_cookie_value(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_values_from_a_store_are_refused() {
        let cookie = CookieConfig::default();
        assert!(cookie.set_cookie("a;b", None).is_err());
        assert!(cookie.set_cookie("a b", None).is_err());
        assert!(cookie.set_cookie("é", None).is_err());
    }

    #[test]
    #[should_panic(expected = "invalid cookie name")]
    fn invalid_names_are_refused() {
        let _ = CookieConfig::default().with_name("a b");
    }

    /// Property tests of the parser that reads attacker-controlled bytes
    /// first (issue 7). `session-conformance`'s `arbitrary` strategies
    /// drive the same parser through the public lifecycle
    /// (`session-conformance/tests/hostile_cookies.rs`); these reach its
    /// internals, with strategies of their own (session-core cannot depend
    /// on a crate that depends on it).
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text that looks like a cookie value, or any printable text.
        fn cookie_value(max_len: usize) -> impl Strategy<Value = String> {
            prop_oneof![
                3 => proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{0,{max_len}}}"))
                    .expect("a valid pattern"),
                1 => proptest::string::string_regex(&format!("\\PC{{0,{max_len}}}"))
                    .expect("a valid pattern"),
            ]
        }

        /// Raw `Cookie` header bytes: `session=` pairs, other pairs,
        /// separators and quotes, and bytes that are not UTF-8.
        fn cookie_header() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                3 => cookie_value(48).prop_map(|v| format!("session={v}").into_bytes()),
                1 => cookie_value(16).prop_map(|v| format!("session=\"{v}\"").into_bytes()),
                2 => (cookie_value(6), cookie_value(20))
                    .prop_map(|(name, value)| format!("{name}={value}").into_bytes()),
                1 => proptest::sample::select(vec![&b";"[..], b"; ", b"=", b"\"", b" \t "])
                    .prop_map(<[u8]>::to_vec),
                1 => proptest::collection::vec(any::<u8>(), 0..24),
            ];
            proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
        }

        /// The bound the lifecycle passes for the default cookie.
        fn max_len() -> usize {
            CookieConfig::default().max_value_len()
        }

        /// Cookie pairs whose name is not `session`, as `name=value` bytes.
        fn other_pairs() -> impl Strategy<Value = Vec<Vec<u8>>> {
            proptest::collection::vec(
                (cookie_value(6), cookie_value(20))
                    .prop_filter("another single cookie", |(name, value)| {
                        !name.contains(';')
                            && !value.contains(';')
                            // The library trims Unicode white space, as `trim` does.
                            && name.trim() != "session"
                    })
                    .prop_map(|(name, value)| format!("{name}={value}").into_bytes()),
                0..8,
            )
        }

        proptest! {
            #[test]
            fn values_are_those_of_rfc_6265_splitting(
                headers in proptest::collection::vec(cookie_header(), 0..4),
                max_len in prop_oneof![Just(8usize), Just(max_len())],
            ) {
                // The model, with nothing but the standard library: cut at
                // `;`, leave out pieces that are not UTF-8, cut each at its
                // first `=`, trim, compare the name, unquote the value.
                let model: Vec<&str> = headers
                    .iter()
                    .flat_map(|header| header.split(|&b| b == b';'))
                    .filter_map(|piece| std::str::from_utf8(piece).ok())
                    .filter_map(|piece| piece.trim().split_once('='))
                    .filter(|(name, _)| name.trim() == "session")
                    .map(|(_, value)| unquote(value.trim()))
                    .filter(|value| value.len() <= max_len)
                    .take(CookieConfig::MAX_CANDIDATES)
                    .collect();
                let ours: Vec<&str> =
                    cookie_value_slices(headers.iter().map(Vec::as_slice), "session", max_len)
                        .collect();
                prop_assert_eq!(ours, model);
            }

            #[test]
            fn pairs_are_read_as_the_cookie_library_reads_them(
                header in cookie_header(),
                space in proptest::sample::select(vec!["", " ", "\t", "\u{a0}", "\u{3000}"]),
            ) {
                // The library is the oracle here: `pair_value` replaced
                // `Cookie::parse` on every request.
                let text = String::from_utf8_lossy(&header);
                for piece in text.split(';') {
                    let piece = format!("{space}{piece}{space}");
                    let library = Cookie::parse(piece.as_str())
                        .ok()
                        .filter(|cookie| cookie.name_raw() == Some("session"))
                        .and_then(|cookie| cookie.value_raw());
                    prop_assert_eq!(pair_value(&piece, "session"), library, "{:?}", piece);
                }
            }

            #[test]
            fn arbitrary_headers_yield_few_bounded_values_without_panicking(
                headers in proptest::collection::vec(cookie_header(), 0..4),
            ) {
                let values = cookie_values(headers.iter().map(Vec::as_slice), "session", max_len());
                prop_assert!(values.len() <= CookieConfig::MAX_CANDIDATES);
                for value in &values {
                    prop_assert!(value.len() <= max_len());
                    // Every value is a slice of some header: nothing is made up.
                    prop_assert!(value.is_empty() || headers.iter().any(|h| h
                        .windows(value.len())
                        .any(|w| w == value.as_bytes())));
                }
            }

            #[test]
            fn a_session_cookie_among_other_cookies_is_found(
                before in other_pairs(),
                after in other_pairs(),
                value in cookie_value(64)
                    .prop_filter("a cookie value we could issue", |v| is_cookie_value(v)),
                quoted in any::<bool>(),
            ) {
                let pair = if quoted {
                    format!("session=\"{value}\"")
                } else {
                    format!("session={value}")
                };
                let mut pairs = before;
                pairs.push(pair.into_bytes());
                pairs.extend(after);
                let header = pairs.join(&b"; "[..]);
                let values = cookie_values([header.as_slice()], "session", max_len());
                prop_assert_eq!(values, vec![value]);
            }

            #[test]
            fn oversized_values_are_never_returned(
                extra in 1usize..64,
                name in prop_oneof![Just("session"), Just("s")],
            ) {
                let cookie = CookieConfig::default().with_name(name);
                let long = "A".repeat(cookie.max_value_len() + extra);
                let header = format!("{name}={long}");
                let values = cookie_values([header.as_bytes()], name, cookie.max_value_len());
                prop_assert!(values.is_empty());
            }
        }
    }
}
