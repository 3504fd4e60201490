//! Who may see the dashboard and `/metrics`, and how fast a client may guess.
//!
//! - The dashboard (page and socket): HTTP Basic, user `admin` and
//!   `endpoint.dashboard_password`.
//! - `/metrics`: the same, or `Authorization: Bearer <endpoint.metrics_token>`.
//!
//! Secrets are compared in constant time (both sides are hashed first, so neither the content
//! nor the length of a secret leaks through timing).
//!
//! Guessing is throttled per client address ([`Throttle`]; an IPv6 client is its /64): the
//! first [`FREE_FAILURES`] wrong credentials cost nothing; every further one (also one sent
//! while locked out) locks the client out for [`FIRST_LOCKOUT`], doubling up to
//! [`MAX_LOCKOUT`], from that guess on. A locked-out client is answered
//! `429 Too Many Requests` with `Retry-After`, **whatever it sends, the right password
//! included**, until the lockout ends; a right password afterwards clears its record. A
//! request without credentials is not a guess (a browser's first request has none). At most
//! [`MAX_CLIENTS`] clients are remembered; past that, new clients share one record, so
//! memory stays bounded and a guesser spread over many addresses is still slowed down. The
//! address is the TCP peer's: behind a reverse proxy every client is the proxy's address and
//! shares its record.
//!
//! Every answer of these routes carries [`harden`]'s headers: they may not be framed.
//!
//! It must never log or echo the credentials it is given.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The one user name the dashboard accepts.
pub(crate) const USER: &str = "admin";

/// Wrong credentials a client may send before it is locked out.
pub(crate) const FREE_FAILURES: u32 = 20;

/// The first lockout, after [`FREE_FAILURES`] wrong credentials; each further wrong
/// credential doubles it.
pub(crate) const FIRST_LOCKOUT: Duration = Duration::from_secs(1);

/// The longest lockout.
pub(crate) const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// A client with no wrong credential for this long (and no lockout running) is forgotten.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Most clients whose failures are remembered at once.
pub(crate) const MAX_CLIENTS: usize = 10_000;

/// What a request asks to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The dashboard page or its socket: the password only.
    Dashboard,
    /// `/metrics`: the password or the metrics token.
    Metrics,
}

/// The credentials and the throttle of the dashboard and `/metrics`.
pub(crate) struct Guard {
    password: Option<String>,
    metrics_token: Option<String>,
    throttle: Throttle,
}

impl Guard {
    pub(crate) fn new(password: Option<&str>, metrics_token: Option<&str>) -> Guard {
        Guard {
            password: password.map(str::to_string),
            metrics_token: metrics_token.map(str::to_string),
            throttle: Throttle::default(),
        }
    }

    /// `None` when `req` may have `access`; else the answer: 429 (locked out) or 401.
    pub(crate) fn refuse(&self, req: &HttpRequest, access: Access) -> Option<HttpResponse> {
        let client = Client::of(req);
        let now = Instant::now();
        let given = Credentials::of(req);
        let ok = match (&given, access) {
            (Credentials::Basic(given), _) => self
                .password
                .as_deref()
                .is_some_and(|password| basic_matches(given, password)),
            (Credentials::Bearer(given), Access::Metrics) => self
                .metrics_token
                .as_deref()
                .is_some_and(|token| same_secret(given.as_bytes(), token.as_bytes())),
            _ => false,
        };
        let locked = self.throttle.check(client, now);
        // A wrong credential counts, also while locked out (it extends the lockout).
        if !ok && given != Credentials::None {
            self.throttle.failed(client, now);
        }
        if let Err(wait) = locked {
            return Some(too_many(
                self.throttle.check(client, now).err().unwrap_or(wait),
            ));
        }
        if ok {
            self.throttle.succeeded(client);
            return None;
        }
        Some(self.challenge(access))
    }

    /// 401 with a challenge: Basic wherever the password opens the route, else Bearer.
    fn challenge(&self, access: Access) -> HttpResponse {
        let challenge = if access == Access::Metrics && self.password.is_none() {
            r#"Bearer realm="tether""#
        } else {
            r#"Basic realm="tether", charset="UTF-8""#
        };
        let mut response = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, challenge))
            .body("authentication required");
        harden(&mut response);
        response
    }
}

/// What a request's `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    None,
    /// The decoded `user:password`.
    Basic(Vec<u8>),
    Bearer(String),
    /// Anything else (another scheme, undecodable, not ASCII): a wrong credential.
    Other,
}

impl Credentials {
    fn of(req: &HttpRequest) -> Credentials {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Credentials::None;
        };
        let Ok(value) = value.to_str() else {
            return Credentials::Other;
        };
        if let Some(encoded) = value.strip_prefix("Basic ") {
            return base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_or(Credentials::Other, Credentials::Basic);
        }
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Credentials::Bearer(token.trim().to_string());
        }
        Credentials::Other
    }
}

/// Whether the decoded Basic credentials `given` are [`USER`] and `password`.
fn basic_matches(given: &[u8], password: &str) -> bool {
    let expected = format!("{USER}:{password}");
    same_secret(given, expected.as_bytes())
}

/// Whether `req` carries `Authorization: Basic` credentials for [`USER`] and `password`
/// (no throttle).
#[cfg(test)]
pub(crate) fn authorized(req: &HttpRequest, password: &str) -> bool {
    matches!(Credentials::of(req), Credentials::Basic(given) if basic_matches(&given, password))
}

/// Constant-time equality of two secrets of any lengths (compares their SHA-256 digests).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// Adds the headers every dashboard answer carries: it may not be framed
/// (`Content-Security-Policy: frame-ancestors 'none'`, `X-Frame-Options: DENY`) nor
/// sniffed as another type (`X-Content-Type-Options: nosniff`).
pub(crate) fn harden(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// 429 with `Retry-After` (whole seconds, rounded up).
fn too_many(wait: Duration) -> HttpResponse {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, seconds.max(1).to_string()))
        .body("too many wrong credentials from this address: retry later");
    harden(&mut response);
    response
}

/// Whose failures a request counts toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    /// An IPv4 address, or an IPv6 /64 (one host usually has a whole /64).
    Ip(IpAddr),
    /// No peer address known.
    Unknown,
    /// Every new client while [`MAX_CLIENTS`] are remembered.
    Overflow,
}

impl Client {
    fn of(req: &HttpRequest) -> Client {
        req.peer_addr()
            .map_or(Client::Unknown, |peer| Client::from_ip(peer.ip()))
    }

    fn from_ip(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Client::Ip(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// One client's wrong credentials.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Wrong credentials since it was last let in (or forgotten).
    failures: u32,
    /// The last wrong credential.
    last: Instant,
    /// Locked out until then (`None`: not locked out).
    locked_until: Option<Instant>,
}

impl Record {
    fn forgettable(&self, now: Instant) -> bool {
        let quiet_since = self
            .locked_until
            .map_or(self.last, |until| until.max(self.last));
        now.saturating_duration_since(quiet_since) >= FORGET_AFTER
    }
}

/// Wrong credentials per client, and the lockouts they earn; see the module docs.
#[derive(Default)]
pub(crate) struct Throttle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clients: HashMap<Client, Record>,
    /// When the records were last swept for forgettable ones (a sweep scans them all, so a
    /// full map is swept at most once per [`SWEEP_EVERY`]).
    swept: Option<Instant>,
}

/// How often a full map of clients may be swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Throttle {
    /// `Err(wait)` while `client` is locked out.
    fn check(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let clients = &state.clients;
        let client = Throttle::slot(clients, client);
        match clients.get(&client).and_then(|record| record.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// `client` sent wrong credentials at `now`.
    fn failed(&self, client: Client, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { clients, swept } = &mut *state;
        let due = swept.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
        if due && !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, record| !record.forgettable(now));
            *swept = Some(now);
        }
        let client = Throttle::slot(clients, client);
        let record = clients.entry(client).or_insert(Record {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if record.forgettable(now) {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
        if let Some(beyond) = record.failures.checked_sub(FREE_FAILURES + 1) {
            let lockout = FIRST_LOCKOUT
                .saturating_mul(1u32 << beyond.min(20))
                .min(MAX_LOCKOUT);
            record.locked_until = Some(now + lockout);
        }
    }

    /// `client` was let in: its failures are forgotten (not those of the shared overflow
    /// record).
    fn succeeded(&self, client: Client) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clients.remove(&client);
    }

    /// Where `client`'s failures are kept: its own record, or, when it has none and
    /// [`MAX_CLIENTS`] are remembered, the shared overflow record.
    fn slot(clients: &HashMap<Client, Record>, client: Client) -> Client {
        if clients.contains_key(&client) || clients.len() < MAX_CLIENTS {
            client
        } else {
            Client::Overflow
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clients
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use actix_web::test::TestRequest;

    use super::*;

    fn basic(credentials: &str) -> HttpRequest {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Basic {encoded}")))
            .to_http_request()
    }

    #[test]
    fn only_admin_with_the_password_passes() {
        assert!(authorized(&basic("admin:s3cret"), "s3cret"));
        assert!(!authorized(&basic("admin:s3cre"), "s3cret"));
        assert!(!authorized(&basic("admin:s3cret2"), "s3cret"));
        assert!(!authorized(&basic("root:s3cret"), "s3cret"));
        assert!(!authorized(&basic("admin"), "s3cret"));
        assert!(!authorized(
            &TestRequest::default().to_http_request(),
            "s3cret"
        ));
        let garbage = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic %%%"))
            .to_http_request();
        assert!(!authorized(&garbage, "s3cret"));
        let bearer = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer admin:s3cret"))
            .to_http_request();
        assert!(!authorized(&bearer, "s3cret"));
    }

    fn ip(n: u32) -> Client {
        Client::from_ip(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn lockouts_start_after_the_free_failures_and_double_up_to_the_cap() {
        let throttle = Throttle::default();
        let (client, start) = (ip(1), Instant::now());
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.check(client, start), Ok(()));
            throttle.failed(client, start);
        }
        assert_eq!(throttle.check(client, start), Ok(()));
        throttle.failed(client, start);
        assert_eq!(throttle.check(client, start), Err(FIRST_LOCKOUT));
        assert_eq!(throttle.check(ip(2), start), Ok(()), "another client");
        throttle.failed(client, start);
        assert_eq!(throttle.check(client, start), Err(2 * FIRST_LOCKOUT));
        for _ in 0..40 {
            throttle.failed(client, start);
        }
        assert_eq!(throttle.check(client, start), Err(MAX_LOCKOUT));
        assert_eq!(throttle.check(client, start + MAX_LOCKOUT), Ok(()));
        // Let in: forgotten.
        throttle.succeeded(client);
        throttle.failed(client, start);
        assert_eq!(throttle.check(client, start), Ok(()));
    }

    #[test]
    fn quiet_clients_are_forgotten() {
        let throttle = Throttle::default();
        let (client, start) = (ip(1), Instant::now());
        for _ in 0..FREE_FAILURES {
            throttle.failed(client, start);
        }
        let later = start + FORGET_AFTER;
        throttle.failed(client, later);
        assert_eq!(
            throttle.check(client, later),
            Ok(()),
            "counting starts over"
        );
    }

    #[test]
    fn memory_stays_bounded_and_new_clients_share_a_record_when_full() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 * 3) {
            throttle.failed(ip(n), start);
            assert!(throttle.len() <= MAX_CLIENTS + 1);
        }
        assert_eq!(throttle.len(), MAX_CLIENTS + 1);
        // The overflow record took 2 × MAX_CLIENTS failures: new clients are locked out.
        let newcomer = ip(u32::MAX);
        assert!(throttle.check(newcomer, start).is_err());
        // A remembered client keeps its own record.
        assert_eq!(throttle.check(ip(0), start), Ok(()));
        // Once the records are old, room is made for new clients again.
        let later = start + MAX_LOCKOUT + FORGET_AFTER;
        throttle.failed(newcomer, later);
        assert_eq!(throttle.len(), 1);
        assert_eq!(throttle.check(newcomer, later), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        let from = |v6: Ipv6Addr| Client::from_ip(IpAddr::V6(v6));
        assert_eq!(from(a), from(b));
        assert_ne!(from(a), from(c));
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped();
        assert_eq!(
            from(mapped),
            Client::from_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
    }
}
