//! `Set-Cookie` header values as tests read them.

use std::fmt;

/// A `Set-Cookie` header value split the way a browser splits it (RFC 6265
/// section 5.2): `name=value`, then `;`-separated attributes, kept as
/// written so that a test can check exactly what a server sent.
///
/// ```
/// use session_conformance::SetCookie;
///
/// let cookie = SetCookie::parse("id=abc; Path=/; Max-Age=0; HttpOnly");
/// assert_eq!((cookie.name(), cookie.value()), ("id", "abc"));
/// assert_eq!(cookie.pair(), "id=abc");
/// assert_eq!(cookie.attribute("max-age"), Some("0"));
/// assert_eq!(cookie.attribute("HttpOnly"), Some(""));
/// assert_eq!(cookie.attributes(), ["Path=/", "Max-Age=0", "HttpOnly"]);
/// assert!(cookie.is_removal());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    /// Splits `header`. Whitespace around the name, the value and each
    /// attribute is dropped; a pair without `=` is a name with an empty
    /// value.
    #[must_use]
    pub fn parse(header: &str) -> Self {
        let mut parts = header.split(';');
        let pair = parts.next().unwrap_or_default();
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        SetCookie {
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            attributes: parts
                .map(str::trim)
                .filter(|attribute| !attribute.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Parses every value of `headers` (all the `Set-Cookie` values of one
    /// response).
    pub fn parse_all<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Self> {
        headers.into_iter().map(Self::parse).collect()
    }

    /// The cookie's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's value, as sent (quotes included).
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `name=value`: what a browser sends back in its `Cookie` header.
    #[must_use]
    pub fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }

    /// The attributes after `name=value`, as written.
    #[must_use]
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }

    /// The value of the attribute `name` (case-insensitive; `""` for a flag
    /// such as `HttpOnly`), if present.
    #[must_use]
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|attribute| {
            let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// Whether the cookie tells the browser to drop it: `Max-Age` of zero
    /// or less, as the session layers send on logout.
    #[must_use]
    pub fn is_removal(&self) -> bool {
        self.attribute("Max-Age")
            .and_then(|age| age.parse::<i64>().ok())
            .is_some_and(|age| age <= 0)
    }
}

/// Shows the name and the attributes, never the value: it may be a session
/// id, which test logs should not carry either.
impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetCookie")
            .field("name", &self.name)
            .field("value_len", &self.value.len())
            .field("attributes", &self.attributes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pair_and_attributes_as_written() {
        let cookie = SetCookie::parse(" session = v=1 ;Path=/ ; ; SameSite=Lax");
        assert_eq!(cookie.name(), "session");
        assert_eq!(cookie.value(), "v=1");
        assert_eq!(cookie.attributes(), ["Path=/", "SameSite=Lax"]);
        assert_eq!(cookie.attribute("samesite"), Some("Lax"));
        assert_eq!(cookie.attribute("Domain"), None);
        assert!(!cookie.is_removal());
    }

    #[test]
    fn a_pair_without_equals_is_a_name() {
        let cookie = SetCookie::parse("lonely");
        assert_eq!((cookie.name(), cookie.value()), ("lonely", ""));
        assert!(cookie.attributes().is_empty());
    }

    #[test]
    fn removal_is_a_max_age_of_zero_or_less() {
        assert!(SetCookie::parse("a=; Max-Age=0").is_removal());
        assert!(SetCookie::parse("a=; max-age=-1").is_removal());
        assert!(!SetCookie::parse("a=b; Max-Age=60").is_removal());
        assert!(!SetCookie::parse("a=b").is_removal());
    }

    #[test]
    fn debug_leaves_the_value_out() {
        let shown = format!("{:?}", SetCookie::parse("id=secret-id; Path=/"));
        assert!(!shown.contains("secret-id"), "{shown}");
    }
}
