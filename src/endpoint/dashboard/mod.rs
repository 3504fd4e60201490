//! The live dashboard (`/tether/dashboard`) and the Prometheus endpoint (`/metrics`), both
//! behind HTTP Basic (user `admin`, `endpoint.dashboard_password`, env
//! `TETHER_DASHBOARD_PASSWORD`). Off by default: without a password neither route exists.
//!
//! The dashboard is a commander page built with tether itself: a sampler reads the metrics
//! and presence once a second ([`history`]), and every open dashboard page re-renders its
//! view of that sample on the server and morphs it in. It shows the cluster's nodes (up or
//! down, last heard), the topics with their users and connections (sortable, filterable, the
//! top N), frames and bytes per second, outbox depth percentiles, slow-consumer closes,
//! presence gossip, and a chart of throughput over the last five minutes.
//!
//! Contract (the examples' tests rely on it): `<table id="topics">` holds one
//! `<tr data-topic="<topic>">` per topic with presence, with `<td class="users">` and
//! `<td class="connections">`; `<table id="nodes">` one `<tr data-node="<name>">` per node with
//! `<td class="status">` reading `up` or `down` and `<td class="connections">` with the node's
//! open WebSocket connections (`–` for a node whose dashboard is off, or that stopped
//! reporting). Both change within 3 s without a reload.
//!
//! It must never track its own viewers in presence, nor expose anything without the
//! password.

mod auth;
mod history;
mod reports;
mod view;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    channel::BoxError,
    commander::{Broadcasting, Commander, Commanders, Handlers, Html, Info, Page, Sender},
    metrics::{CONTENT_TYPE, metrics},
    presence::Presence,
    transport::outbox::PushError,
};
use history::Snapshot;
use view::{Column, MAX_TOP, ViewSettings};

/// The dashboard commander's name.
pub(crate) const COMMANDER: &str = "tether_dashboard";

/// Where the dashboard page is served.
pub const DASHBOARD_PATH: &str = "/tether/dashboard";

/// Where the metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// The dashboard: its commander, its routes and its sampler share this.
#[derive(Clone)]
pub(crate) struct Dashboard {
    latest: Arc<watch::Sender<Arc<Snapshot>>>,
    presence: Presence,
    password: Arc<str>,
    node: Arc<str>,
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
    pub(crate) fn new(presence: Presence, password: &str, node: &str) -> Dashboard {
        Dashboard {
            latest: Arc::new(watch::Sender::new(Arc::new(Snapshot::default()))),
            presence,
            password: password.into(),
            node: node.into(),
        }
    }

    /// Starts the sampler on `tasks` until `stop`.
    pub(crate) fn start(&self, tasks: &TaskTracker, stop: &CancellationToken) {
        tasks.spawn(history::run(
            self.presence.clone(),
            self.latest.clone(),
            stop.clone(),
        ));
    }

    /// Adds `GET /tether/dashboard` and `GET /metrics`.
    pub(crate) fn mount(&self, cfg: &mut web::ServiceConfig, commanders: &Commanders) {
        let dashboard = self.clone();
        let commanders = commanders.clone();
        cfg.route(
            DASHBOARD_PATH,
            web::get().to(move |req: HttpRequest| {
                let (dashboard, commanders) = (dashboard.clone(), commanders.clone());
                async move { dashboard.page(&req, &commanders) }
            }),
        );
        let dashboard = self.clone();
        cfg.route(
            METRICS_PATH,
            web::get().to(move |req: HttpRequest| {
                let dashboard = dashboard.clone();
                async move { dashboard.metrics(&req) }
            }),
        );
    }

    fn page(&self, req: &HttpRequest, commanders: &Commanders) -> HttpResponse {
        if !auth::authorized(req, &self.password) {
            return auth::challenge();
        }
        let snapshot = self.latest.borrow().clone();
        let live = match view::render(&snapshot, &ViewSettings::default()) {
            Ok(live) => Html::trusted(live),
            Err(err) => Html::escape(&format!("cannot render the dashboard: {err}")),
        };
        let page = DashboardPage {
            node: &self.node,
            live,
            script: commanders.script(COMMANDER, req),
        };
        let mut response = super::render(&page);
        response.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        response
    }

    fn metrics(&self, req: &HttpRequest) -> HttpResponse {
        if !auth::authorized(req, &self.password) {
            return auth::challenge();
        }
        history::set_entries_gauge(&self.presence.nodes());
        HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .body(metrics().render())
    }

    /// Re-renders `page`'s live part from the latest sample and its own view settings.
    fn show(&self, page: &mut Page) -> Result<(), BoxError> {
        let snapshot = self.latest.borrow().clone();
        let settings = page.get_mut::<ViewSettings>().clone();
        let html = view::render(&snapshot, &settings)?;
        page.morph("#dashboard_live", Html::trusted(html))?;
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

impl Commander for Dashboard {
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
