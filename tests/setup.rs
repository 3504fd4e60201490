//! Wiring goes through `Endpoint::builder`, which puts the commanders and presence on one bus
//! and follows `[presence] enabled`. (The crate-private commanders' builder refuses a
//! contradictory setup; its refusals are unit-tested in `src/commander/wiring_tests.rs`.)

use tether::{
    Config, Endpoint,
    commander::{Commander, Count},
};

struct Page;

impl Commander for Page {
    fn name(&self) -> &'static str {
        "page"
    }
}

fn config(presence_enabled: bool) -> Config {
    let mut config = Config::from_toml_str("").unwrap();
    config.presence.enabled = presence_enabled;
    config
}

#[test]
fn the_endpoint_builder_wires_one_bus_and_follows_presence_enabled() {
    for enabled in [true, false] {
        let endpoint = Endpoint::builder(config(enabled))
            .and_then(|builder| builder.commander(Page).build())
            .unwrap_or_else(|err| panic!("enabled = {enabled}: {err}"));
        // A counter renders either way (a disabled presence logs that it will not change),
        // counting the page being served.
        let counter = endpoint.commanders().counter("t", Count::Users);
        assert!(counter.as_str().contains(">1<"), "{}", counter.as_str());
    }
}
