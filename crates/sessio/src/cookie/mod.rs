//! The session cookie: its attributes, and how it is read and written.

mod parse;

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::scratch::with_buffer;

#[cfg(test)]
pub(crate) use parse::encode_value;
pub(crate) use parse::{for_each_cookie, push_encoded};

/// When the cookie carries the `Secure` attribute (browsers then send it over HTTPS only).
///
/// A server cannot tell from an HTTP/1.1 request whether it came over TLS: the request
/// target a browser sends is only a path, and anything else in the request is the client's
/// word. So the default sends `Secure` always. Browsers accept a `Secure` cookie from
/// `http://localhost` and `http://127.0.0.1` too, so local development keeps working
/// without HTTPS; over plain HTTP to any other host the browser drops it, which is what
/// a session cookie should do there.
///
/// When a trusted proxy says the request was plain HTTP
/// ([`TrustProxy::XForwardedProto`]), a `Secure` cookie is not set at all, and a new
/// session that cannot get its cookie is not stored either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurePolicy {
    /// Always `Secure` (the default).
    #[default]
    Always,
    /// Never `Secure`. Refused for `__Host-` and `__Secure-` names.
    Never,
    /// `Secure` only when a trusted proxy says the request came over HTTPS
    /// ([`TrustProxy::XForwardedProto`]); without one, never. Nothing in the request
    /// itself (its target's scheme, say) counts: a client could forge it. Refused for
    /// `__Host-` and `__Secure-` names.
    Auto,
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level cross-site navigations (the default).
    #[default]
    Lax,
    /// Sent on all requests; implies `Secure`.
    None,
    /// `None` when the cookie is `Secure`, `Lax` otherwise.
    Auto,
}

/// The `Priority` attribute (a Chromium extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Priority {
    /// `Priority=Low`.
    Low,
    /// `Priority=Medium`.
    Medium,
    /// `Priority=High`.
    High,
}

/// How long the browser keeps the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieLifetime {
    /// `Max-Age` and `Expires` reach the session's absolute deadline (the default): the
    /// browser keeps the cookie as long as the session could live, the server still ends
    /// the session sooner when it idles, and activity needs no new `Set-Cookie`. In
    /// express-session compatibility they follow the idle deadline instead and are re-sent
    /// whenever it moves, as express-session does.
    #[default]
    Persistent,
    /// No `Max-Age`/`Expires`: the browser drops the cookie when it closes. The session
    /// still expires on the server by its idle and absolute timeouts.
    BrowserSession,
}

/// Whether to believe a reverse proxy about the original request's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustProxy {
    /// Believe nothing in the request about its scheme (the default).
    #[default]
    Never,
    /// Trust `X-Forwarded-Proto` as the nearest proxy wrote it: its last value, since
    /// proxies append theirs to what the client sent. Enable only behind a proxy that sets
    /// it, or clients can claim either scheme.
    XForwardedProto,
}

/// How the request reached the server, as far as the layer can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A trusted proxy says HTTPS.
    Https,
    /// A trusted proxy says plain HTTP.
    Http,
    /// Nothing trustworthy says either.
    Unknown,
}

/// Why a [`CookieConfig`] setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieConfigError {
    /// The name is empty or holds a character not allowed in a cookie name.
    #[error("invalid cookie name {0:?}: use letters, digits and !#$%&'*+-.^_`|~")]
    InvalidName(String),
    /// The path does not start with `/` or holds `;` or a control character.
    #[error(
        "invalid cookie path {0:?}: it must start with '/' and hold no ';' or control characters"
    )]
    InvalidPath(String),
    /// The domain is empty or holds `;`, whitespace or a control character.
    #[error("invalid cookie domain {0:?}")]
    InvalidDomain(String),
    /// A `__Host-` or `__Secure-` name with a [`SecurePolicy`] that can send the cookie
    /// without `Secure`: browsers would refuse it.
    #[error("cookie {name:?} needs SecurePolicy::Always: browsers refuse a {prefix} cookie without Secure")]
    PrefixNeedsSecure {
        /// The cookie name.
        name: String,
        /// `__Host-` or `__Secure-`.
        prefix: &'static str,
    },
    /// A `__Host-` name with a `Domain`: browsers refuse it.
    #[error("cookie {name:?} cannot have a Domain: browsers refuse a __Host- cookie with one")]
    HostPrefixWithDomain {
        /// The cookie name.
        name: String,
    },
    /// A `__Host-` name with a path other than `/`: browsers refuse it.
    #[error("cookie {name:?} needs Path=/, not {path:?}: browsers refuse a __Host- cookie on another path")]
    HostPrefixWithPath {
        /// The cookie name.
        name: String,
        /// The path configured.
        path: String,
    },
}

/// The session cookie's name and attributes.
///
/// Defaults are the secure ones: name `id`, `Path=/`, `HttpOnly`, `SameSite=Lax`,
/// `Secure`, no `Domain`, and a lifetime that follows the session's expiry.
///
/// In production, name the cookie with the `__Host-` prefix: browsers then accept it only
/// with `Secure`, `Path=/` and no `Domain`, so neither plain HTTP nor a sibling subdomain
/// can set or replace it. [`SessionLayer::with_cookie`](crate::SessionLayer::with_cookie)
/// refuses a configuration that breaks a prefix's rules.
///
/// ```
/// use sessio::CookieConfig;
///
/// let production = CookieConfig::default().with_name("__Host-id")?;
/// assert!(production.check().is_ok());
/// let broken = production.with_domain("example.com")?;
/// assert!(broken.check().is_err());
/// # Ok::<(), sessio::CookieConfigError>(())
/// ```
///
/// ```
/// use sessio::{CookieConfig, SameSite, SecurePolicy};
///
/// let cookie = CookieConfig::default()
///     .with_name("app.sid")?
///     .with_path("/app")?
///     .with_same_site(SameSite::Strict)
///     .with_secure(SecurePolicy::Always);
/// assert_eq!(cookie.name(), "app.sid");
/// # Ok::<(), sessio::CookieConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CookieConfig {
    name: Cow<'static, str>,
    path: Cow<'static, str>,
    domain: Option<String>,
    http_only: bool,
    secure: SecurePolicy,
    same_site: SameSite,
    partitioned: bool,
    priority: Option<Priority>,
    lifetime: CookieLifetime,
    trust_proxy: TrustProxy,
    /// Write `Set-Cookie` as express-session does (set by the layer's compatibility mode).
    pub(crate) express_format: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: Cow::Borrowed("id"),
            path: Cow::Borrowed("/"),
            domain: None,
            http_only: true,
            secure: SecurePolicy::Always,
            same_site: SameSite::Lax,
            partitioned: false,
            priority: None,
            lifetime: CookieLifetime::Persistent,
            trust_proxy: TrustProxy::Never,
            express_format: false,
        }
    }
}

impl CookieConfig {
    /// The longest session cookie value read, in bytes as the browser sent it: a longer
    /// value is ignored before any decoding or signature check, as if absent.
    pub const MAX_VALUE_LEN: usize = parse::MAX_VALUE_LEN;

    /// Sets the cookie name (express-session uses `connect.sid`).
    pub fn with_name(mut self, name: impl Into<String>) -> Result<Self, CookieConfigError> {
        let name = name.into();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(CookieConfigError::InvalidName(name));
        }
        self.name = Cow::Owned(name);
        Ok(self)
    }

    /// Sets the path. Sessions exist only for requests under it, matched as RFC 6265
    /// says: `/admin` covers `/admin` and `/admin/x`, not `/administrator`.
    pub fn with_path(mut self, path: impl Into<String>) -> Result<Self, CookieConfigError> {
        let path = path.into();
        if !path.starts_with('/') || path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            return Err(CookieConfigError::InvalidPath(path));
        }
        self.path = Cow::Owned(path);
        Ok(self)
    }

    /// Sets the `Domain` attribute, which also sends the cookie to subdomains.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Result<Self, CookieConfigError> {
        let domain = domain.into();
        if domain.is_empty()
            || domain
                .bytes()
                .any(|b| b == b';' || b == b',' || b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(CookieConfigError::InvalidDomain(domain));
        }
        self.domain = Some(domain);
        Ok(self)
    }

    /// Sets `HttpOnly` (on by default: scripts cannot read the cookie).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets when the cookie is `Secure`.
    pub fn with_secure(mut self, secure: SecurePolicy) -> Self {
        self.secure = secure;
        self
    }

    /// Sets the `SameSite` attribute.
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets the `Partitioned` attribute (CHIPS); a partitioned cookie is always `Secure`.
    pub fn with_partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// Sets the `Priority` attribute.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets how long the browser keeps the cookie.
    pub fn with_lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets whether `X-Forwarded-Proto` is believed about the request's scheme.
    pub fn with_trust_proxy(mut self, trust_proxy: TrustProxy) -> Self {
        self.trust_proxy = trust_proxy;
        self
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie path.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn lifetime(&self) -> CookieLifetime {
        self.lifetime
    }

    /// Whether a request path lies under the cookie path (RFC 6265, section 5.1.4).
    pub(crate) fn path_matches(&self, request_path: &str) -> bool {
        let cookie_path = self.path.as_ref();
        match request_path.strip_prefix(cookie_path) {
            Some(rest) => rest.is_empty() || cookie_path.ends_with('/') || rest.starts_with('/'),
            None => false,
        }
    }

    /// Checks the rules of the `__Host-` and `__Secure-` name prefixes (RFC 6265bis,
    /// matched without regard to case as browsers do): both need `Secure` on every
    /// response, and `__Host-` also needs `Path=/` and no `Domain`.
    ///
    /// # Errors
    /// The first rule the configuration breaks.
    pub fn check(&self) -> Result<(), CookieConfigError> {
        let has_prefix = |prefix: &str| {
            self.name
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        };
        let prefix = if has_prefix("__Host-") {
            "__Host-"
        } else if has_prefix("__Secure-") {
            "__Secure-"
        } else {
            return Ok(());
        };
        let name = || self.name.to_string();
        if self.secure != SecurePolicy::Always {
            return Err(CookieConfigError::PrefixNeedsSecure {
                name: name(),
                prefix,
            });
        }
        if prefix == "__Host-" {
            if self.domain.is_some() {
                return Err(CookieConfigError::HostPrefixWithDomain { name: name() });
            }
            if self.path != "/" {
                return Err(CookieConfigError::HostPrefixWithPath {
                    name: name(),
                    path: self.path.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The scheme a request came by, as far as this configuration lets the layer believe
    /// `forwarded_proto` (the `X-Forwarded-Proto` header lines, in order; looked up only
    /// when trusted).
    pub(crate) fn transport<'a, I>(&self, forwarded_proto: impl FnOnce() -> I) -> Transport
    where
        I: Iterator<Item = &'a [u8]>,
    {
        if self.trust_proxy != TrustProxy::XForwardedProto {
            return Transport::Unknown;
        }
        // The nearest proxy's value is the last one: each proxy appends to what it got.
        let Some(last) = forwarded_proto().last() else {
            return Transport::Unknown;
        };
        let value = last.rsplit(|&b| b == b',').next().unwrap_or_default();
        let value = value.trim_ascii();
        if value.eq_ignore_ascii_case(b"https") {
            Transport::Https
        } else if value.eq_ignore_ascii_case(b"http") {
            Transport::Http
        } else {
            Transport::Unknown
        }
    }

    /// Whether the cookie for a request that came by `transport` carries `Secure`.
    pub(crate) fn is_secure(&self, transport: Transport) -> bool {
        let by_policy = match self.secure {
            SecurePolicy::Always => true,
            SecurePolicy::Never => false,
            SecurePolicy::Auto => transport == Transport::Https,
        };
        // Browsers refuse `SameSite=None` and `Partitioned` cookies without `Secure`.
        by_policy || self.partitioned || self.same_site(by_policy) == "None"
    }

    /// The `SameSite` value for a cookie that is `Secure` (or not).
    fn same_site(&self, secure: bool) -> &'static str {
        match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
            SameSite::Auto if secure => "None",
            SameSite::Auto => "Lax",
        }
    }

    /// The `Set-Cookie` value carrying `value` (already signed, given in pieces to be
    /// joined), for a session that expires at `expires_at`.
    pub(crate) fn set_cookie(
        &self,
        value: &[&str],
        transport: Transport,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> String {
        let max_age = match self.lifetime {
            CookieLifetime::Persistent => {
                Some(expires_at.duration_since(now).unwrap_or(Duration::ZERO))
            }
            CookieLifetime::BrowserSession => None,
        };
        self.render(value, transport, max_age, now)
    }

    /// The `Set-Cookie` value that makes the browser drop the cookie: same name, path and
    /// domain, empty value, expired.
    pub(crate) fn clear_cookie(&self, transport: Transport, now: SystemTime) -> String {
        self.render(&[], transport, Some(Duration::ZERO), now)
    }

    /// The `Set-Cookie` value, in a string of its exact length: it becomes the header's
    /// bytes as it is, where spare capacity would cost the header another allocation.
    fn render(
        &self,
        value: &[&str],
        transport: Transport,
        max_age: Option<Duration>,
        now: SystemTime,
    ) -> String {
        thread_local! {
            /// Where values are written first, kept between calls.
            static RENDERING: RefCell<String> = const { RefCell::new(String::new()) };
        }
        // Browsers keep no cookie longer: a larger buffer is not kept.
        with_buffer(&RENDERING, 4096, |rendering| {
            self.render_into(rendering, value, transport, max_age, now);
            String::from(rendering.as_str())
        })
    }

    fn render_into(
        &self,
        out: &mut String,
        value: &[&str],
        transport: Transport,
        max_age: Option<Duration>,
        now: SystemTime,
    ) {
        let secure = self.is_secure(transport);
        let same_site = self.same_site(secure);
        let expires = max_age.map(|max_age| {
            let at = if max_age.is_zero() {
                SystemTime::UNIX_EPOCH
            } else {
                now.checked_add(max_age).unwrap_or(now)
            };
            (max_age.as_secs(), at)
        });
        // No formatter machinery: this runs for every new session.
        out.push_str(&self.name);
        out.push('=');
        for piece in value {
            push_encoded(out, piece);
        }
        let domain = self.domain.as_deref();
        let priority = self.priority.map(Priority::as_str);
        if self.express_format {
            // express-session's order, and `Expires` without `Max-Age`.
            if let Some(domain) = domain {
                attribute(out, "Domain", domain);
            }
            attribute(out, "Path", &self.path);
            if let Some((_, at)) = expires {
                push_expires(out, at);
            }
            if self.http_only {
                attribute(out, "HttpOnly", "");
            }
            if secure {
                attribute(out, "Secure", "");
            }
            if self.partitioned {
                attribute(out, "Partitioned", "");
            }
            if let Some(priority) = priority {
                attribute(out, "Priority", priority);
            }
            attribute(out, "SameSite", same_site);
        } else {
            if self.http_only {
                attribute(out, "HttpOnly", "");
            }
            attribute(out, "SameSite", same_site);
            if self.partitioned {
                attribute(out, "Partitioned", "");
            }
            if secure {
                attribute(out, "Secure", "");
            }
            attribute(out, "Path", &self.path);
            if let Some(domain) = domain {
                attribute(out, "Domain", domain);
            }
            if let Some((secs, at)) = expires {
                out.push_str("; Max-Age=");
                push_number(out, secs, 1);
                push_expires(out, at);
            }
            if let Some(priority) = priority {
                attribute(out, "Priority", priority);
            }
        }
    }
}

/// Appends `; name=value`, or `; name` for a flag.
fn attribute(out: &mut String, name: &str, value: &str) {
    out.push_str("; ");
    out.push_str(name);
    if !value.is_empty() {
        out.push('=');
        out.push_str(value);
    }
}

thread_local! {
    /// The last date this thread wrote, and its second: the sessions a busy server creates
    /// within one second share their Expires date, and formatting it costs as much as the
    /// rest of the header.
    static LAST_DATE: RefCell<(Option<u64>, String)> = const { RefCell::new((None, String::new())) };
}

/// Appends `; Expires=` and an IMF-fixdate (RFC 9110): `Thu, 01 Jan 1970 00:00:00 GMT`.
fn push_expires(out: &mut String, at: SystemTime) {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    out.push_str("; Expires=");
    LAST_DATE.with_borrow_mut(|(second, date)| {
        if *second != Some(secs) {
            date.clear();
            push_date(date, secs);
            *second = Some(secs);
        }
        out.push_str(date);
    });
}

/// Appends the IMF-fixdate of `secs` after the epoch.
fn push_date(out: &mut String, secs: u64) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let at = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    out.push_str(DAYS[usize::from(at.weekday().number_days_from_monday())]);
    out.push_str(", ");
    push_number(out, u64::from(at.day()), 2);
    out.push(' ');
    out.push_str(MONTHS[usize::from(u8::from(at.month()) - 1)]);
    out.push(' ');
    // Years before 1 cannot come from a `SystemTime` after the epoch.
    push_number(out, u64::try_from(at.year()).unwrap_or(0), 4);
    out.push(' ');
    push_number(out, u64::from(at.hour()), 2);
    out.push(':');
    push_number(out, u64::from(at.minute()), 2);
    out.push(':');
    push_number(out, u64::from(at.second()), 2);
    out.push_str(" GMT");
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_number(out: &mut String, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = n;
    while at > 0 && (rest > 0 || digits.len() - at < width.max(1)) {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "Low",
            Priority::Medium => "Medium",
            Priority::High => "High",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &str) -> CookieConfig {
        CookieConfig::default().with_path(path).unwrap()
    }

    #[test]
    fn path_matching_follows_rfc_6265() {
        assert!(config("/").path_matches("/"));
        assert!(config("/").path_matches("/anything"));
        assert!(config("/admin").path_matches("/admin"));
        assert!(config("/admin").path_matches("/admin/x"));
        assert!(!config("/admin").path_matches("/administrator"));
        assert!(!config("/admin").path_matches("/"));
        assert!(config("/admin/").path_matches("/admin/x"));
        assert!(!config("/admin/").path_matches("/admin"));
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(CookieConfig::default().with_name("").is_err());
        assert!(CookieConfig::default().with_name("a b").is_err());
        assert!(CookieConfig::default().with_name("a;b").is_err());
        assert!(CookieConfig::default().with_path("relative").is_err());
        assert!(CookieConfig::default().with_path("/a;b").is_err());
        assert!(CookieConfig::default().with_domain("a;b").is_err());
        assert!(CookieConfig::default().with_name("connect.sid").is_ok());
    }

    #[test]
    fn renders_secure_defaults() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let header = CookieConfig::default().set_cookie(
            &["s:a.b"],
            Transport::Unknown,
            now + Duration::from_secs(60),
            now,
        );
        assert_eq!(
            header,
            "id=s%3Aa.b; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=60; Expires=Tue, 14 Nov 2023 22:14:20 GMT"
        );
    }

    #[test]
    fn a_rendered_value_has_no_spare_capacity() {
        // So that the header takes its bytes over without allocating again.
        let now = SystemTime::UNIX_EPOCH;
        let cookie = CookieConfig::default();
        for value in [&[][..], &["s:a.b"], &["s:", &"x".repeat(300), ".", "sig"]] {
            let header = cookie.set_cookie(value, Transport::Unknown, now, now);
            assert_eq!(header.capacity(), header.len(), "{header}");
        }
        let cleared = cookie.clear_cookie(Transport::Unknown, now);
        assert_eq!(cleared.capacity(), cleared.len());
    }

    proptest::proptest! {
        #[test]
        fn pieces_render_as_their_join(pieces in proptest::collection::vec(".{0,12}", 0..5)) {
            let now = SystemTime::UNIX_EPOCH;
            let cookie = CookieConfig::default();
            let parts: Vec<&str> = pieces.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(
                cookie.set_cookie(&parts, Transport::Unknown, now, now),
                cookie.set_cookie(&[&pieces.concat()], Transport::Unknown, now, now)
            );
        }
    }

    #[test]
    fn a_cookie_renders_while_its_thread_exits() {
        struct RendersOnDrop;
        impl Drop for RendersOnDrop {
            fn drop(&mut self) {
                let now = SystemTime::UNIX_EPOCH;
                let header = CookieConfig::default()
                    .with_lifetime(CookieLifetime::BrowserSession)
                    .set_cookie(&["s:a.b"], Transport::Unknown, now, now);
                assert_eq!(header, "id=s%3Aa.b; HttpOnly; SameSite=Lax; Secure; Path=/");
            }
        }
        thread_local! {
            static GUARD: RendersOnDrop = const { RendersOnDrop };
        }
        std::thread::spawn(|| {
            // Destructors run in the reverse order of first use: the guard's runs after the
            // rendering buffer's.
            GUARD.with(|_| {});
            let now = SystemTime::UNIX_EPOCH;
            let _ = CookieConfig::default()
                .with_lifetime(CookieLifetime::BrowserSession)
                .set_cookie(&[], Transport::Unknown, now, now);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn renders_every_attribute() {
        let now = SystemTime::UNIX_EPOCH;
        let header = CookieConfig::default()
            .with_domain("example.com")
            .unwrap()
            .with_same_site(SameSite::Auto)
            .with_partitioned(true)
            .with_priority(Priority::High)
            .with_lifetime(CookieLifetime::BrowserSession)
            .set_cookie(&["v"], Transport::Unknown, now, now);
        assert_eq!(
            header,
            "id=v; HttpOnly; SameSite=None; Partitioned; Secure; Path=/; Domain=example.com; Priority=High"
        );
    }

    #[test]
    fn secure_is_the_default_and_auto_believes_only_a_trusted_proxy() {
        let cookie = CookieConfig::default();
        for transport in [Transport::Https, Transport::Http, Transport::Unknown] {
            assert!(cookie.is_secure(transport));
        }
        let auto = CookieConfig::default().with_secure(SecurePolicy::Auto);
        assert!(auto.is_secure(Transport::Https));
        assert!(!auto.is_secure(Transport::Unknown));
        // SameSite=None forces Secure.
        assert!(auto
            .with_same_site(SameSite::None)
            .is_secure(Transport::Unknown));
    }

    #[test]
    fn the_nearest_proxys_scheme_counts_and_only_when_trusted() {
        let trusted = CookieConfig::default().with_trust_proxy(TrustProxy::XForwardedProto);
        let transport = |config: &CookieConfig, lines: &[&str]| {
            config.transport(|| lines.iter().map(|line| line.as_bytes()))
        };
        assert_eq!(transport(&trusted, &["https"]), Transport::Https);
        assert_eq!(transport(&trusted, &[" HTTP "]), Transport::Http);
        // A client's own value comes first; the proxy appends its own.
        assert_eq!(transport(&trusted, &["https, http"]), Transport::Http);
        assert_eq!(transport(&trusted, &["https", "http"]), Transport::Http);
        assert_eq!(transport(&trusted, &["http", "https"]), Transport::Https);
        assert_eq!(transport(&trusted, &["ftp"]), Transport::Unknown);
        assert_eq!(transport(&trusted, &[]), Transport::Unknown);
        assert_eq!(
            transport(&CookieConfig::default(), &["https"]),
            Transport::Unknown
        );
    }

    #[test]
    fn prefix_rules_are_checked() {
        let host = CookieConfig::default().with_name("__Host-id").unwrap();
        assert_eq!(host.check(), Ok(()));
        assert!(matches!(
            host.clone().with_domain("example.com").unwrap().check(),
            Err(CookieConfigError::HostPrefixWithDomain { .. })
        ));
        assert!(matches!(
            host.clone().with_path("/app").unwrap().check(),
            Err(CookieConfigError::HostPrefixWithPath { .. })
        ));
        for policy in [SecurePolicy::Never, SecurePolicy::Auto] {
            for name in ["__Host-id", "__Secure-id", "__host-id", "__SECURE-id"] {
                let config = CookieConfig::default()
                    .with_name(name)
                    .unwrap()
                    .with_secure(policy);
                assert!(
                    matches!(
                        config.check(),
                        Err(CookieConfigError::PrefixNeedsSecure { .. })
                    ),
                    "{name} with {policy:?}"
                );
            }
        }
        // __Secure- allows a Domain and a path; names without a prefix have no rules.
        let secure = CookieConfig::default()
            .with_name("__Secure-id")
            .unwrap()
            .with_domain("example.com")
            .unwrap()
            .with_path("/app")
            .unwrap();
        assert_eq!(secure.check(), Ok(()));
        let plain = CookieConfig::default()
            .with_secure(SecurePolicy::Never)
            .with_domain("example.com")
            .unwrap();
        assert_eq!(plain.check(), Ok(()));
        let message = host.with_secure(SecurePolicy::Never).check().unwrap_err();
        assert_eq!(
            message.to_string(),
            "cookie \"__Host-id\" needs SecurePolicy::Always: browsers refuse a __Host- cookie without Secure"
        );
    }

    #[test]
    fn express_format_matches_express_session() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut cookie = CookieConfig::default().with_name("connect.sid").unwrap();
        cookie.express_format = true;
        assert_eq!(
            cookie.set_cookie(&["s:a.b"], Transport::Unknown, now + Duration::from_secs(60), now),
            "connect.sid=s%3Aa.b; Path=/; Expires=Tue, 14 Nov 2023 22:14:20 GMT; HttpOnly; Secure; SameSite=Lax"
        );
        let mut full = CookieConfig::default()
            .with_domain("example.com")
            .unwrap()
            .with_partitioned(true)
            .with_priority(Priority::High)
            .with_lifetime(CookieLifetime::BrowserSession);
        full.express_format = true;
        assert_eq!(
            full.set_cookie(&["v"], Transport::Https, now, now),
            "id=v; Domain=example.com; Path=/; HttpOnly; Secure; Partitioned; Priority=High; SameSite=Lax"
        );
        let mut expires = String::new();
        push_expires(&mut expires, SystemTime::UNIX_EPOCH);
        assert_eq!(expires, "; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn dates_and_numbers_render_like_the_formatter() {
        // Every weekday and month, leap days, and the years the cookie can reach.
        for days in (0..=4_000_000_u64).step_by(997) {
            let secs = days * 86_400 / 97 + days % 86_400;
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let date = OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
            let expected = format!(
                "; Expires={}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                &date.weekday().to_string()[..3],
                date.day(),
                &date.month().to_string()[..3],
                date.year(),
                date.hour(),
                date.minute(),
                date.second()
            );
            let mut rendered = String::new();
            push_expires(&mut rendered, at);
            assert_eq!(rendered, expected);
            // Again within the same second (the thread's cached date), then after another.
            let mut again = String::new();
            push_expires(&mut again, at + Duration::from_millis(999));
            push_expires(&mut again, SystemTime::UNIX_EPOCH);
            push_expires(&mut again, at);
            assert_eq!(
                again,
                format!("{expected}; Expires=Thu, 01 Jan 1970 00:00:00 GMT{expected}")
            );
        }
        for n in [0, 1, 9, 10, 59, 86_400, 604_800, u64::MAX] {
            let mut rendered = String::new();
            push_number(&mut rendered, n, 1);
            assert_eq!(rendered, n.to_string());
        }
        let mut padded = String::new();
        push_number(&mut padded, 7, 2);
        assert_eq!(padded, "07");
    }

    #[test]
    fn clearing_matches_the_attributes() {
        let header = config("/app").clear_cookie(Transport::Https, SystemTime::UNIX_EPOCH);
        assert_eq!(
            header,
            "id=; HttpOnly; SameSite=Lax; Secure; Path=/app; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
