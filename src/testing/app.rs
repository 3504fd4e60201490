//! The app under test and its browsers: the app's endpoint and routes served on an ephemeral
//! loopback port from a thread of their own, and browsers that keep what a browser keeps for a
//! site (cookies, `localStorage`) and fetch pages through the app's own routes.
//!
//! For: tests, through [`TestApp`] and [`Browser`]; [`super::page`] joins what they fetch.
//! Never: listens anywhere but 127.0.0.1, waits without a bound, or shares a browser's cookies
//! or storage with another browser.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, cookie::Cookie, web};
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, body::Bytes, header};
use hyper_util::rt::TokioIo;

use super::{page::TestPage, wait::Deadline};
use crate::{Endpoint, commander::Commanders};

/// How long the kit waits for anything by default (a page, a reply, a condition):
/// [`TestApp::wait_timeout`] changes it.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Most redirects [`Browser::open`] follows for one page.
const MAX_REDIRECTS: usize = 10;

/// The config a test starts from: [`Config::default`](crate::Config::default) with a fresh
/// random `secret_key_base` (so tokens of one test mean nothing to another) and `[commander]
/// debug_errors` on (a failing callback's page is told its message, which the test shows).
///
/// ```
/// let config = tether::testing::config();
/// assert_eq!(config.endpoint.secret_key_base.len(), 64);
/// ```
pub fn config() -> crate::Config {
    use rand::Rng;
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let mut config = crate::Config::default().with_secret_key_base(secret);
    config.commander.debug_errors = true;
    config
}

/// An app served for a test: the endpoint and the app's routes, as [`crate::serve`] serves
/// them, on `127.0.0.1` and a free port, in a thread of their own (an actix system with its
/// own runtime, so the test may use any runtime, a paused clock included). Dropping it stops
/// the server.
///
/// ```
/// # async fn demo(endpoint: tether::Endpoint) {
/// use tether::testing::TestApp;
/// let app = TestApp::serve(endpoint, |routes| {
///     routes.route("/", actix_web::web::get().to(|| async { "hello" }));
/// });
/// assert_eq!(app.get("/").await.body, "hello");
/// # }
/// ```
pub struct TestApp {
    shared: Arc<AppShared>,
    endpoint: Endpoint,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What every browser of one app needs: where the app listens and how long to wait.
pub(crate) struct AppShared {
    pub(crate) addr: SocketAddr,
    pub(crate) wait: Mutex<Duration>,
}

impl AppShared {
    pub(crate) fn wait(&self) -> Duration {
        *self.wait.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `http://127.0.0.1:<port>`: the origin of the app's pages.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl TestApp {
    /// Serves `endpoint` and the app's `routes` (what [`crate::serve`] takes) on a free port
    /// of 127.0.0.1. Panics when the server cannot start within [`DEFAULT_WAIT`].
    pub fn serve(
        endpoint: Endpoint,
        routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> TestApp {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|err| panic!("tether::testing: cannot bind 127.0.0.1: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("tether::testing: no local address: {err}"));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = endpoint.clone();
        let thread = std::thread::Builder::new()
            .name("tether-test-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = match crate::endpoint::server(&served, listener, routes) {
                        Ok(server) => server,
                        Err(err) => {
                            let _ = started_tx.send(Err(err.to_string()));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    tokio::select! {
                        _ = server => {}
                        _ = stopped => {}
                    }
                })
            })
            .unwrap_or_else(|err| panic!("tether::testing: cannot start the server thread: {err}"));
        match started_rx.recv_timeout(DEFAULT_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("tether::testing: the server did not start: {err}"),
            Err(_) => panic!("tether::testing: the server did not start within {DEFAULT_WAIT:?}"),
        }
        TestApp {
            shared: Arc::new(AppShared {
                addr,
                wait: Mutex::new(DEFAULT_WAIT),
            }),
            endpoint,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Serves `endpoint` with one route of its own, `GET /`: a page of `commander` whose
    /// `<body>` is what `body` renders (given the endpoint's [`Commanders`], for counters and
    /// presence lists), followed by the commander's script tag. For testing a commander
    /// without an app's routes.
    ///
    /// ```
    /// # async fn demo(endpoint: tether::Endpoint) {
    /// use tether::testing::TestApp;
    /// let app = TestApp::serve_page(endpoint, "lab", |_| {
    ///     r#"<button id="go" tether-click="go">go</button>"#.to_string()
    /// });
    /// let page = app.open("/").await;
    /// # }
    /// ```
    pub fn serve_page(
        endpoint: Endpoint,
        commander: &'static str,
        body: impl Fn(&Commanders) -> String + Send + Sync + 'static,
    ) -> TestApp {
        let commanders = endpoint.commanders().clone();
        let body = Arc::new(body);
        TestApp::serve(endpoint, move |routes| {
            let (commanders, body) = (commanders.clone(), Arc::clone(&body));
            routes.route(
                "/",
                web::get().to(move |req: HttpRequest| {
                    let (commanders, body) = (commanders.clone(), Arc::clone(&body));
                    async move {
                        let script = commanders.script(commander, &req);
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(format!(
                                "<!doctype html><html><head><title>{commander}</title></head>\
                                 <body>{}{}</body></html>",
                                body(&commanders),
                                script.as_str()
                            ))
                    }
                }),
            );
        })
    }

    /// The endpoint under test: its presence, commanders and pub/sub, to act on or read
    /// from the test.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Where the app listens (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// How long each wait of the kit may take (a page, a reply, [`TestPage::wait_until`]):
    /// [`DEFAULT_WAIT`] unless set here. Measured on the wall clock, so a test with a paused
    /// tokio clock still fails after it.
    pub fn wait_timeout(&self, timeout: Duration) {
        *self
            .shared
            .wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = timeout;
    }

    /// A new browser: its own cookies and storage (so its own browser id and store).
    pub fn browser(&self) -> Browser {
        Browser {
            app: Arc::clone(&self.shared),
            state: Arc::new(Mutex::new(BrowserState::default())),
        }
    }

    /// Opens `path` in a new browser: [`Browser::open`].
    pub async fn open(&self, path: &str) -> TestPage {
        self.browser().open(path).await
    }

    /// `GET path` from a new browser, redirects not followed: [`Browser::get`].
    pub async fn get(&self, path: &str) -> Response {
        self.browser().get(path).await
    }
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP response the app sent.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A cookie the browser keeps.
#[derive(Debug, Clone)]
struct StoredCookie {
    value: String,
    path: String,
    http_only: bool,
}

#[derive(Default)]
struct BrowserState {
    /// By (name, path).
    cookies: HashMap<(String, String), StoredCookie>,
    /// `localStorage` of the app's origin.
    storage: HashMap<String, String>,
}

/// A browser: the cookies and `localStorage` of the app's origin, shared by the pages it
/// opens (two pages of one browser are two tabs: one browser id, one session, one store).
#[derive(Clone)]
pub struct Browser {
    pub(crate) app: Arc<AppShared>,
    state: Arc<Mutex<BrowserState>>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("app", &self.app.addr)
            .finish_non_exhaustive()
    }
}

impl Browser {
    fn state(&self) -> std::sync::MutexGuard<'_, BrowserState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads `path` as a tab of this browser would: `GET` through the app's routes (with
    /// this browser's cookies, following redirects), then, on a commander's page, joins its
    /// page channel as tether.js does and waits for the join. Panics when the page does not
    /// answer 200, or its join is refused.
    pub async fn open(&self, path: &str) -> TestPage {
        let (path, response) = self.follow(path).await;
        match response.status {
            200 => TestPage::load(self.clone(), path, response.body).await,
            status @ (301 | 302 | 303 | 307 | 308) => panic!(
                "tether::testing: GET {path}: {status} to {:?} not followed (no Location, off \
                 the app, or more than {MAX_REDIRECTS} redirects)",
                response.header("location")
            ),
            status => panic!(
                "tether::testing: GET {path} answered {status}, not a page: {}",
                response.body
            ),
        }
    }

    /// `GET path`, following the app's redirects (at most [`MAX_REDIRECTS`]) as a browser
    /// does: the URL it ended at and its response (a redirect it could not follow, without a
    /// `Location` or off the app, is the response).
    pub(crate) async fn follow(&self, path: &str) -> (String, Response) {
        let mut path = path.to_string();
        let mut response = self.get(&path).await;
        for _ in 0..MAX_REDIRECTS {
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                break;
            }
            let Some(next) = response
                .header("location")
                .and_then(|location| self.same_origin_path(location))
            else {
                break;
            };
            path = next;
            response = self.get(&path).await;
        }
        (path, response)
    }

    /// The path of `url` when it is on the app's origin (or a path already).
    pub(crate) fn same_origin_path(&self, url: &str) -> Option<String> {
        if url.starts_with('/') && !url.starts_with("//") {
            return Some(url.to_string());
        }
        let rest = url.strip_prefix(&self.app.origin())?;
        (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then(|| {
            if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            }
        })
    }

    /// `GET path` with this browser's cookies; keeps the cookies the response sets;
    /// redirects are not followed. Panics when the app does not answer in time.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path).await
    }

    /// `POST path` with an empty body, as [`Browser::get`] otherwise (an app's own form
    /// posts and development endpoints).
    pub async fn post(&self, path: &str) -> Response {
        self.send(Method::POST, path).await
    }

    async fn send(&self, method: Method, path: &str) -> Response {
        let wait = self.app.wait();
        let deadline = Deadline::after(wait);
        match deadline.bound(self.request(method.clone(), path)).await {
            Some(Ok(response)) => response,
            Some(Err(err)) => panic!("tether::testing: {method} {path}: {err}"),
            None => panic!("tether::testing: {method} {path}: no answer within {wait:?}"),
        }
    }

    async fn request(&self, method: Method, path: &str) -> Result<Response, String> {
        let stream = tokio::net::TcpStream::connect(self.app.addr)
            .await
            .map_err(|err| err.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| err.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.app.addr.to_string());
        if let Some(cookies) = self.cookie_header(path) {
            request = request.header(header::COOKIE, cookies);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|err| err.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        driver.abort();
        for (name, value) in &headers {
            if name == "set-cookie" {
                self.keep_cookie(value, path);
            }
        }
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Keeps (or, expired, drops) the cookie of a `Set-Cookie` header.
    fn keep_cookie(&self, header: &str, request_path: &str) {
        let Ok(cookie) = Cookie::parse(header.to_string()) else {
            return;
        };
        let path = cookie
            .path()
            .map_or_else(|| default_cookie_path(request_path), str::to_string);
        let expired = cookie
            .max_age()
            .is_some_and(|age| age.is_zero() || age.is_negative())
            || cookie
                .expires_datetime()
                .is_some_and(|at| at <= actix_web::cookie::time::OffsetDateTime::now_utc());
        let kept = (!expired).then(|| StoredCookie {
            value: cookie.value().to_string(),
            path: path.clone(),
            http_only: cookie.http_only().unwrap_or(false),
        });
        self.put_cookie(cookie.name(), &path, kept);
    }

    /// Stores the cookie `name` at `path`, or removes it (`None`).
    fn put_cookie(&self, name: &str, path: &str, cookie: Option<StoredCookie>) {
        let key = (name.to_string(), path.to_string());
        let mut state = self.state();
        match cookie {
            Some(cookie) => state.cookies.insert(key, cookie),
            None => state.cookies.remove(&key),
        };
    }

    /// The cookies a request of (or a script at) `path` sees, `(name, value)`, the more
    /// specific path first as browsers send them; HttpOnly ones only when `http_only`.
    fn cookies_at(&self, path: &str, http_only: bool) -> Vec<(String, String)> {
        let path = path.split('?').next().unwrap_or("/");
        let state = self.state();
        let mut seen: Vec<(&String, &StoredCookie)> = state
            .cookies
            .iter()
            .filter(|(_, cookie)| {
                (http_only || !cookie.http_only) && path_matches(&cookie.path, path)
            })
            .map(|((name, _), cookie)| (name, cookie))
            .collect();
        seen.sort_by(|a, b| b.1.path.len().cmp(&a.1.path.len()).then(a.0.cmp(b.0)));
        seen.into_iter()
            .map(|(name, cookie)| (name.clone(), cookie.value.clone()))
            .collect()
    }

    /// The `Cookie` header for a request of `path`, or `None` without cookies.
    pub(crate) fn cookie_header(&self, path: &str) -> Option<String> {
        let header: Vec<String> = self
            .cookies_at(path, true)
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        (!header.is_empty()).then(|| header.join("; "))
    }

    /// `document.cookie` of a page at `path` as `{name: value}`: the cookies script can read
    /// (not HttpOnly), the first of two same-named ones (the more specific path) winning.
    pub(crate) fn script_cookies(&self, path: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut cookies = serde_json::Map::new();
        for (name, value) in self.cookies_at(path, false) {
            cookies
                .entry(name)
                .or_insert(serde_json::Value::String(value));
        }
        cookies
    }

    /// What a `cookie` patch does (`document.cookie = …`): sets, or with `None` deletes,
    /// a script cookie at `path` (the page's directory when the patch names none:
    /// [`default_cookie_path`]).
    pub(crate) fn set_script_cookie(&self, name: &str, value: Option<&str>, path: &str) {
        let cookie = value.map(|value| StoredCookie {
            value: value.to_string(),
            path: path.to_string(),
            http_only: false,
        });
        self.put_cookie(name, path, cookie);
    }

    /// The value of cookie `name` this browser keeps (any path), HttpOnly ones included.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.state()
            .cookies
            .iter()
            .find(|((n, _), _)| n == name)
            .map(|(_, cookie)| cookie.value.clone())
    }

    /// `localStorage.getItem(key)` of the app's origin (tether.js keeps `tether_browser_id`
    /// and `tether_store` there).
    pub fn storage(&self, key: &str) -> Option<String> {
        self.state().storage.get(key).cloned()
    }

    pub(crate) fn set_storage(&self, key: &str, value: Option<&str>) {
        let mut state = self.state();
        match value {
            Some(value) => state.storage.insert(key.to_string(), value.to_string()),
            None => state.storage.remove(key),
        };
    }
}

/// A cookie's default path (RFC 6265): the path of `url` (a path and query) up to its last
/// slash, or `/`.
pub(crate) fn default_cookie_path(url: &str) -> String {
    let path = url.split('?').next().unwrap_or("/");
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(end) => path[..end].to_string(),
    }
}

/// RFC 6265's path match: `cookie_path` is `path`, or a prefix of it ending at a `/`.
fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::{default_cookie_path, path_matches};

    #[test]
    fn a_cookies_default_path_is_the_directory_of_the_url() {
        assert_eq!(default_cookie_path("/lists/a?x=/y"), "/lists");
        assert_eq!(default_cookie_path("/lists"), "/");
        assert_eq!(default_cookie_path("/"), "/");
    }

    #[test]
    fn cookie_paths_match_whole_segments() {
        assert!(path_matches("/", "/lists/a"));
        assert!(path_matches("/lists", "/lists/a"));
        assert!(path_matches("/lists", "/lists"));
        assert!(!path_matches("/lists", "/listsx"));
        assert!(!path_matches("/lists/a", "/lists"));
    }
}
