//! The live dashboard ([`DASHBOARD_PATH`], `/tether/dashboard`) and the Prometheus endpoint
//! ([`METRICS_PATH`], `/metrics`). The dashboard (page and socket) takes HTTP Basic, user
//! `admin` and `endpoint.dashboard_password` (env `TETHER_DASHBOARD_PASSWORD`); `/metrics`
//! takes the same or `Authorization: Bearer <endpoint.metrics_token>` (env
//! `TETHER_METRICS_TOKEN`), which never opens the dashboard. Wrong guesses are throttled per
//! client (`auth`). Off by default: without a password there is no dashboard, and without a
//! password or a metrics token no `/metrics` (404).
//!
//! # Layering
//!
//! The dashboard sits beside the [`endpoint`](crate::endpoint) and **below** it: the endpoint
//! builds it (`EndpointBuilder::build`), starts its tasks and mounts its routes
//! ([`Endpoint::configure_dashboard`](crate::Endpoint::configure_dashboard), which [`serve`](crate::serve)
//! calls), handing it the upgrade of its socket as a function. The dashboard builds on the
//! commander, presence, pub/sub, channel and metrics layers and on [`render`](crate::render);
//! it must never import the endpoint. An app never wires it itself: setting the password (or
//! the token) in [`Config`] is all.
//!
//! The dashboard is a commander page built with tether itself: a sampler reads the metrics
//! and presence once a second (`history`), and every open dashboard page re-renders its
//! view of that sample on the server and morphs it in. It shows the cluster's nodes (up or
//! down, last heard), the topics with their users and connections (sortable, filterable, the
//! top N), frames and bytes per second, outbox depth percentiles, slow-consumer closes,
//! presence gossip, and a chart of throughput over the last five minutes.
//!
//! Its page token is no bearer capability: the dashboard has commanders and a socket of its
//! own (`SOCKET_PATH`, `/tether/dashboard/socket`, mounted next to the page), whose upgrade takes the same Basic
//! credentials as the page (browsers resend them to the same origin and realm); its tokens
//! are signed with keys derived from `secret_key_base` **and the password**, so a password
//! change voids them, and live `TOKEN_MAX_AGE_S` (300) seconds (a page that rejoins later reloads
//! itself once and gets a fresh one). The app's commander socket knows no dashboard.
//!
//! Contract (the examples' tests rely on it): `<table id="topics">` holds one
//! `<tr data-topic="<topic>">` per topic with presence, with `<td class="users">` and
//! `<td class="connections">`; `<table id="nodes">` one `<tr data-node="<name>">` per node with
//! `<td class="status">` reading `up` or `down` and `<td class="connections">` with the node's
//! open WebSocket connections (`–` for a node whose dashboard is off, or that stopped
//! reporting). Both change within 3 s without a reload. Every answer of the page (and its
//! refusals) forbids framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`).
//!
//! It must never track its own viewers in presence, nor expose anything without the
//! password (or, for `/metrics`, the metrics token).

mod auth;
mod history;
mod reports;
mod view;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use hmac::Mac;
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    channel::{BoxError, SocketRoute, socket_route_name},
    commander::{
        Broadcasting, BuildError, Commander, Commanders, Handlers, Html, Info, Page, Sender,
    },
    config::Config,
    metrics::{CONTENT_TYPE, metrics},
    presence::Presence,
    pubsub::PubSub,
    transport::outbox::PushError,
};
use auth::{Access, Guard};
use history::Snapshot;
use view::{Column, MAX_TOP, ViewSettings};

/// The dashboard commander's name.
pub(crate) const COMMANDER: &str = "tether_dashboard";

/// Where the dashboard page is served.
pub const DASHBOARD_PATH: &str = "/tether/dashboard";

/// Where the metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// Where dashboard pages connect (`<SOCKET_PATH>/websocket`), next to the page, so that a
/// browser that logged in to the page sends the same credentials.
pub(crate) const SOCKET_PATH: &str = "/tether/dashboard/socket";

/// Most seconds a dashboard page token is accepted (less when
/// `commander.page_token_max_age_s` is less).
pub(crate) const TOKEN_MAX_AGE_S: u64 = 300;

/// The dashboard and `/metrics`: their routes, credentials and sampler share this.
#[derive(Clone)]
pub(crate) struct Dashboard {
    panel: Panel,
    presence: Presence,
    guard: Arc<Guard>,
    /// The dashboard's own commanders and socket, with a password.
    site: Option<Site>,
}

#[derive(Clone)]
struct Site {
    node: Arc<str>,
    commanders: Commanders,
    socket: Arc<SocketRoute>,
}

/// The dashboard's commander: every page's view of the latest sample.
#[derive(Clone)]
struct Panel {
    latest: Arc<watch::Sender<Arc<Snapshot>>>,
}

/// A new sample is ready: re-render.
struct Tick;

#[derive(Template)]
#[template(path = "tether/dashboard.html")]
struct DashboardPage<'a> {
    node: &'a str,
    live: Html,
    script: Html,
}

impl Dashboard {
    /// The dashboard and `/metrics` of `config`: `None` without a dashboard password and
    /// without a metrics token.
    pub(crate) fn new(
        config: &Config,
        presence: Presence,
        pubsub: Arc<dyn PubSub>,
    ) -> Result<Option<Dashboard>, BuildError> {
        let e = &config.endpoint;
        if e.dashboard_password.is_none() && e.metrics_token.is_none() {
            return Ok(None);
        }
        let panel = Panel {
            latest: Arc::new(watch::Sender::new(Arc::new(Snapshot::default()))),
        };
        let site = match &e.dashboard_password {
            None => None,
            Some(password) => {
                let mut commander = config.commander.clone();
                commander.socket_path = SOCKET_PATH.to_string();
                commander.page_token_max_age_s =
                    commander.page_token_max_age_s.min(TOKEN_MAX_AGE_S);
                commander.exec_js = false;
                commander.session_keys = Vec::new();
                let secret = site_secret(&e.secret_key_base, password);
                let commanders = Commanders::builder(&commander, &config.presence, &secret, pubsub)
                    .commander(panel.clone())
                    .build()?;
                let socket = Arc::new(commanders.socket_route());
                Some(Site {
                    node: config.pubsub.node_name().into(),
                    commanders,
                    socket,
                })
            }
        };
        Ok(Some(Dashboard {
            panel,
            presence,
            guard: Arc::new(Guard::new(
                e.dashboard_password.as_deref(),
                e.metrics_token.as_deref(),
            )),
            site,
        }))
    }

    /// Starts the sampler (with a dashboard) on `tasks` until `stop`.
    pub(crate) fn start(&self, tasks: &TaskTracker, stop: &CancellationToken) {
        if let Some(site) = &self.site {
            site.commanders.start(tasks, stop);
            tasks.spawn(history::run(
                self.presence.clone(),
                self.panel.latest.clone(),
                stop.clone(),
            ));
        }
    }

    /// Adds `GET /metrics`, and with a password `GET /tether/dashboard` and its socket,
    /// whose upgrades pass the credentials check and then go to `upgrade`.
    pub(crate) fn mount<U>(&self, cfg: &mut web::ServiceConfig, upgrade: U)
    where
        U: Fn(&SocketRoute, HttpRequest, web::Payload) -> Result<HttpResponse, actix_web::Error>
            + Clone
            + 'static,
    {
        if let Some(site) = &self.site {
            let dashboard = self.clone();
            cfg.route(
                DASHBOARD_PATH,
                web::get().to(move |req: HttpRequest| {
                    let dashboard = dashboard.clone();
                    async move { dashboard.page(&req) }
                }),
            );
            let (guard, route) = (self.guard.clone(), site.socket.clone());
            cfg.service(
                web::resource(format!("{SOCKET_PATH}/websocket"))
                    .name(&socket_route_name(SOCKET_PATH))
                    .route(web::get().to(move |req: HttpRequest, body: web::Payload| {
                        let refused = guard.refuse(&req, Access::Dashboard);
                        let answer = match refused {
                            Some(refusal) => Ok(refusal),
                            None => upgrade(&route, req, body),
                        };
                        async move { answer }
                    })),
            );
        }
        let dashboard = self.clone();
        cfg.route(
            METRICS_PATH,
            web::get().to(move |req: HttpRequest| {
                let dashboard = dashboard.clone();
                async move { dashboard.metrics(&req) }
            }),
        );
    }

    fn page(&self, req: &HttpRequest) -> HttpResponse {
        if let Some(refusal) = self.guard.refuse(req, Access::Dashboard) {
            return refusal;
        }
        let Some(site) = &self.site else {
            return HttpResponse::NotFound().finish();
        };
        let snapshot = self.panel.latest.borrow().clone();
        let live = match view::render(&snapshot, &ViewSettings::default()) {
            Ok(live) => Html::trusted(live),
            Err(err) => Html::escape(&format!("cannot render the dashboard: {err}")),
        };
        let page = DashboardPage {
            node: &site.node,
            live,
            script: site.commanders.script(COMMANDER, req),
        };
        let mut response = crate::render::render(&page);
        response.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        auth::harden(&mut response);
        response
    }

    fn metrics(&self, req: &HttpRequest) -> HttpResponse {
        if let Some(refusal) = self.guard.refuse(req, Access::Metrics) {
            return refusal;
        }
        history::set_entries_gauge(&self.presence.nodes());
        HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .body(metrics().render())
    }
}

/// The secret the dashboard's tokens are signed with: `secret_key_base` and the password,
/// so that a token made under another password (or another secret) is refused.
fn site_secret(secret_key_base: &str, password: &str) -> String {
    let parts: [&[u8]; 2] = [b"tether dashboard tokens\0", password.as_bytes()];
    let digest = crate::mac::mac(secret_key_base.as_bytes(), &parts)
        .finalize()
        .into_bytes();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Panel {
    /// Re-renders `page`'s live part from the latest sample and its own view settings.
    fn show(&self, page: &mut Page) -> Result<(), BoxError> {
        let snapshot = self.latest.borrow().clone();
        let settings = page.get_mut::<ViewSettings>().clone();
        let html = view::render(&snapshot, &settings)?;
        page.apply(crate::commander::Patch::morph(
            "#dashboard_live",
            Html::trusted(html),
        ))?;
        Ok(())
    }

    async fn sort(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let column = sender
            .arg
            .as_str()
            .and_then(Column::parse)
            .ok_or("sort by topic, users or connections")?;
        page.get_mut::<ViewSettings>().sort_by(column);
        self.show(page)
    }

    async fn filter(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.get_mut::<ViewSettings>().filter = sender.value.chars().take(200).collect();
        self.show(page)
    }

    async fn top(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let top: usize = sender
            .value
            .trim()
            .parse()
            .map_err(|_| "top takes a number")?;
        page.get_mut::<ViewSettings>().top = top.clamp(1, MAX_TOP);
        self.show(page)
    }
}

impl Commander for Panel {
    fn name(&self) -> &'static str {
        COMMANDER
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("sort", Self::sort)
            .on("filter", Self::filter)
            .on("top", Self::top)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        Vec::new()
    }

    fn presence(&self, _: &Page, _: &str) -> Option<(String, serde_json::Value)> {
        None
    }

    /// Shows the latest sample, then one more after every sample until the page is gone.
    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        self.show(page)?;
        let handle = page.handle();
        let mut samples = self.latest.subscribe();
        actix_web::rt::spawn(async move {
            loop {
                tokio::select! {
                    _ = handle.gone() => return,
                    changed = samples.changed() => {
                        // A page whose queue is full skips this sample; a closed one is gone.
                        if changed.is_err() || handle.send(Tick) == Err(PushError::Closed) {
                            return;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    async fn handle_info(&self, page: &mut Page, info: Info) -> Result<(), BoxError> {
        match info.message::<Tick>() {
            Some(Tick) => self.show(page),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(adjust: impl FnOnce(&mut Config)) -> Site {
        let mut config = Config::default().with_secret_key_base("s".repeat(64));
        config.endpoint.dashboard_password = Some("a-dashboard-password".into());
        adjust(&mut config);
        let pubsub =
            crate::pubsub::from_config(&config.pubsub, &config.endpoint.secret_key_base).unwrap();
        let presence = Presence::new("n", &config.presence, pubsub.clone());
        let dashboard = Dashboard::new(&config, presence, pubsub).unwrap().unwrap();
        dashboard.site.unwrap()
    }

    #[test]
    fn dashboard_tokens_live_five_minutes_at_most_and_on_their_own_socket() {
        let config = &site(|_| {}).commanders.hub.config;
        assert_eq!(config.page_token_max_age_s, TOKEN_MAX_AGE_S);
        assert_eq!(config.socket_path, SOCKET_PATH);
        assert!(!config.exec_js);
        let shorter = site(|c| c.commander.page_token_max_age_s = 60);
        assert_eq!(shorter.commanders.hub.config.page_token_max_age_s, 60);
    }

    #[test]
    fn the_token_secret_depends_on_the_secret_and_the_password() {
        let a = site_secret(&"s".repeat(64), "password-one-is-long");
        assert_eq!(a.len(), 64);
        assert_ne!(a, site_secret(&"s".repeat(64), "password-two-is-long"));
        assert_ne!(a, site_secret(&"t".repeat(64), "password-one-is-long"));
        assert!(!a.contains("password"));
    }
}
