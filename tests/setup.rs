//! A contradictory setup is refused at `build()` with an error that says what to change,
//! instead of running with counts that stay 0 or broadcasts on a second bus.

use std::sync::Arc;

use tether::{
    Config, Endpoint,
    commander::{BuildError, Commander, Commanders, Count},
    presence::Presence,
    pubsub::{LocalPubSub, PubSub},
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

fn builder(config: &Config, pubsub: Arc<dyn PubSub>) -> tether::commander::CommandersBuilder {
    Commanders::builder(
        &config.commander,
        &config.presence,
        &config.endpoint.secret_key_base,
        pubsub,
    )
    .commander(Page)
}

#[test]
fn a_presence_with_presence_disabled_is_refused_and_says_what_to_set() {
    let config = config(false);
    let pubsub: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
    let presence = Presence::new("n", &config.presence, pubsub.clone());
    let err = builder(&config, pubsub)
        .presence(presence)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::PresenceDisabled), "{err}");
    assert!(err.to_string().contains("presence.enabled = true"), "{err}");
}

#[test]
fn a_presence_on_another_pubsub_is_refused() {
    let config = config(true);
    let ours: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
    let other: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
    let presence = Presence::new("n", &config.presence, other);
    let err = builder(&config, ours.clone())
        .presence(presence)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::TwoPubSubs), "{err}");
    assert!(err.to_string().contains("one pub/sub"), "{err}");
    // On the same pub/sub it builds.
    let presence = Presence::new("n", &config.presence, ours.clone());
    assert!(builder(&config, ours).presence(presence).build().is_ok());
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
