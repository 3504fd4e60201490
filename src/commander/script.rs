//! The `<script>` tag a page of a commander includes: tether.js, where the endpoint is
//! mounted, and a signed page token naming the commander, the request's path, this page load
//! (a random number), and what the controller added ([`PageOptions`]: shared commanders,
//! assigns, live regions — whose tokens are made here, for this page load).
//!
//! It must never render anything but that tag.

use actix_web::HttpRequest;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    Html,
    hub::{Hub, PageClaims},
    token::unix_now,
};
use crate::channel::{TETHER_JS_ROUTE, socket_route_name};

/// What a controller adds to a page's token ([`Commanders::script_with`](super::Commanders::script_with)): shared commanders
/// the page may call, and assigns its commander can read ([`Page::assign`](super::Page::assign)).
/// The token is signed, not encrypted: the browser can read assigns but not change them.
///
/// ```
/// use tether::commander::PageOptions;
/// let options = PageOptions::new().shared("cart").assign("product_id", 42);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PageOptions {
    shared: Vec<String>,
    assigns: Map<String, Value>,
    /// Live regions, in the order given (a later one of the same name wins).
    live: Vec<super::LiveRegion>,
    /// Event types `tether-on` may listen for beyond the user gestures.
    events: Vec<String>,
}

impl PageOptions {
    /// Nothing added.
    pub fn new() -> PageOptions {
        PageOptions::default()
    }

    /// Lets regions `tether-commander="<name>"` of the page call the shared commander `name`
    /// (one registered with `SHARED = true`).
    pub fn shared(mut self, name: &str) -> PageOptions {
        self.shared.push(name.to_string());
        self
    }

    /// Gives the page the assigns of a live region rendered with
    /// [`Commanders::live`](super::Commanders::live), so its commander can
    /// [`peek`](super::Page::peek) and [`poke`](super::Page::poke) it.
    pub fn live(mut self, region: &super::LiveRegion) -> PageOptions {
        self.live.push(region.clone());
        self
    }

    /// Signs `key = value` into the page's token.
    pub fn assign(mut self, key: &str, value: impl Serialize) -> PageOptions {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.assigns.insert(key.to_string(), value);
        self
    }

    /// Lets `tether-on` on this page listen for event types beyond the user gestures it
    /// takes by default (`load`, `error`, `toggle`, a custom event, …), as
    /// `data-tether-events` on the script tag, which markup inserted later cannot change.
    /// Any element of the page may then use them, markup the page does not vouch for
    /// included: keep such markup in `tether-ignore` subtrees, or sanitize it. A type that is
    /// empty or holds whitespace is ignored.
    ///
    /// ```
    /// use tether::commander::PageOptions;
    /// let options = PageOptions::new().events(&["load", "app:saved"]);
    /// # let _ = options;
    /// ```
    pub fn events(mut self, types: &[&str]) -> PageOptions {
        let valid = types
            .iter()
            .filter(|t| !t.is_empty() && !t.chars().any(char::is_whitespace));
        self.events.extend(valid.map(|t| t.to_string()));
        self
    }
}

/// The tags a page of `commander` includes (see [`Commanders::script_with`](super::Commanders::script_with)).
pub(crate) fn render(
    hub: &Hub,
    commander: &str,
    request: &HttpRequest,
    options: &PageOptions,
) -> Html {
    assert!(
        hub.commanders.contains_key(commander),
        "commander `{commander}` is not registered"
    );
    let claims = PageClaims {
        commander: commander.to_string(),
        path: request.path().to_string(),
        shared: options.shared.clone(),
        assigns: options.assigns.clone(),
        load: PageClaims::new_load(),
    };
    let token = hub.keys.sign("page", &claims, unix_now());
    // The live regions' tokens, made for this page load only.
    let mut tokens = Map::new();
    for region in &options.live {
        let whom = super::live::LiveFor::Load(claims.load);
        let token = hub.live_token(&region.commander, &region.name, &region.assigns, whom);
        if token.len() > hub.config.max_live_bytes {
            // Checked by `Commanders::live` with the largest load: cannot happen.
            tracing::warn!(region = %region.name, "live region over max_live_bytes left out");
            continue;
        }
        tokens.insert(region.name.clone(), Value::String(token));
    }
    // Where the endpoint is mounted (under a scope, say), as actix knows it.
    let path_of = |name: &str| {
        request
            .url_for_static(name)
            .ok()
            .map(|url| url.path().to_string())
    };
    let socket_path = &hub.config.socket_path;
    let src = path_of(TETHER_JS_ROUTE).unwrap_or_else(|| "/tether.js".to_string());
    let socket = path_of(&socket_route_name(socket_path))
        .and_then(|p| p.strip_suffix("/websocket").map(str::to_string))
        .unwrap_or_else(|| socket_path.clone());
    let live = if tokens.is_empty() {
        String::new()
    } else {
        let tokens = Value::Object(tokens).to_string();
        format!(r#" data-tether-live="{}""#, Html::escape(&tokens))
    };
    let events = if options.events.is_empty() {
        String::new()
    } else {
        format!(
            r#" data-tether-events="{}""#,
            Html::escape(&options.events.join(" "))
        )
    };
    Html::trusted(format!(
        r#"<script src="{}" data-tether-socket="{}" data-tether-commander="{}" data-tether-token="{}"{live}{events} defer></script>"#,
        Html::escape(&src),
        Html::escape(&socket),
        Html::escape(commander),
        Html::escape(&token),
    ))
}
