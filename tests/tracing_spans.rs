//! The `tracing` spans of a page's work (issue 25, item 8): one per handler run and per
//! browser round trip, with the commander, what ran, its duration and outcome, caught by a
//! subscriber layer of the test's own. Run with
//! `cargo test --features testing --test tracing_spans`.
#![cfg(feature = "testing")]

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use tether::{
    Endpoint,
    channel::BoxError,
    commander::{Commander, Handlers, Page, Sender},
    testing::{self, TestApp},
};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

/// A closed span: its name and fields.
type Closed = (String, BTreeMap<String, String>);

fn closed() -> &'static Mutex<Vec<Closed>> {
    static CLOSED: OnceLock<Mutex<Vec<Closed>>> = OnceLock::new();
    CLOSED.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// Keeps the fields of every span of tether's and hands them over when it closes.
struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
            if span.name().starts_with("tether.") {
                closed()
                    .lock()
                    .expect("the capture lock")
                    .push((span.name().to_string(), fields.0));
            }
        }
    }
}

struct Traced;

impl Traced {
    async fn fine(&self, _: &mut Page, _: Sender) -> Result<(), BoxError> {
        Ok(())
    }

    async fn broken(&self, _: &mut Page, _: Sender) -> Result<(), BoxError> {
        Err("nope".into())
    }

    async fn measure(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.query_one("#fine", &["textContent"]).await?;
        Ok(())
    }

    async fn search(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.push_patch("/?q=secret")?;
        Ok(())
    }
}

impl Commander for Traced {
    fn name(&self) -> &'static str {
        "traced"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("fine", Self::fine)
            .on("broken", Self::broken)
            .on("measure", Self::measure)
            .on("search", Self::search)
    }
}

const BODY: &str = r#"<button id="fine" tether-click="fine">fine</button>
<button id="broken" tether-click="broken">broken</button>
<button id="measure" tether-click="measure">measure</button>
<button id="search" tether-click="search">search</button>"#;

fn spans_named(name: &str) -> Vec<BTreeMap<String, String>> {
    closed()
        .lock()
        .expect("the capture lock")
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, fields)| fields.clone())
        .collect()
}

#[tokio::test]
async fn every_handler_round_trip_and_navigation_has_a_span_with_its_duration_and_outcome() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
        .expect("the only subscriber of this test binary");
    let endpoint = Endpoint::builder(testing::config())
        .and_then(|builder| builder.commander(Traced).build())
        .expect("the endpoint builds");
    let app = TestApp::serve_page(endpoint, "traced", |_| BODY.to_string());
    let mut page = app.open("/").await;
    page.click("#fine").await;
    page.allow_errors();
    page.click("#broken").await;
    page.click("#measure").await;
    page.click("#search").await;
    assert_eq!(page.path(), "/?q=secret");

    let handlers = spans_named("tether.handler");
    let outcome = |handler: &str| {
        handlers
            .iter()
            .find(|f| f.get("handler").map(String::as_str) == Some(handler))
            .and_then(|f| f.get("outcome").cloned())
    };
    assert_eq!(outcome("fine").as_deref(), Some("ok"), "{handlers:?}");
    assert_eq!(outcome("broken").as_deref(), Some("error"), "{handlers:?}");
    assert_eq!(outcome("measure").as_deref(), Some("ok"), "{handlers:?}");
    for fields in &handlers {
        assert_eq!(fields.get("commander").map(String::as_str), Some("traced"));
        let ms: f64 = fields["duration_ms"].parse().expect("a duration in ms");
        assert!(ms >= 0.0, "{fields:?}");
    }

    let trips = spans_named("tether.round_trip");
    assert_eq!(trips.len(), 1, "{trips:?}");
    assert_eq!(trips[0].get("op").map(String::as_str), Some("query"));
    assert_eq!(trips[0].get("outcome").map(String::as_str), Some("ok"));
    assert_eq!(
        trips[0].get("commander").map(String::as_str),
        Some("traced")
    );
    assert!(trips[0].contains_key("duration_ms"), "{trips:?}");

    // handle_params at the join and after the patch: the path only, never the query.
    let navigations = spans_named("tether.navigation");
    assert_eq!(navigations.len(), 2, "{navigations:?}");
    for fields in &navigations {
        assert_eq!(fields.get("kind").map(String::as_str), Some("patch"));
        assert_eq!(fields.get("path").map(String::as_str), Some("/"));
        assert_eq!(fields.get("outcome").map(String::as_str), Some("ok"));
        assert!(!format!("{fields:?}").contains("secret"), "{fields:?}");
    }
}
