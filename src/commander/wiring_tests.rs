//! The commanders' builder refuses a contradictory setup at `build()` with an error that says
//! what to change, instead of running with counts that stay 0 or broadcasts on a second bus.
//! The builder is crate-private (apps wire through `Endpoint::builder`, which cannot make
//! these mistakes), so its refusals are tested here, where it is reachable.

use std::sync::Arc;

use super::{BuildError, Commander, Commanders, CommandersBuilder};
use crate::{
    config::Config,
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

fn builder(config: &Config, pubsub: Arc<dyn PubSub>) -> CommandersBuilder {
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
fn a_secret_too_short_for_keys_is_an_error_not_a_panic() {
    let pubsub: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
    let config = Config::default(); // empty secret
    let err = builder(&config, pubsub)
        .build()
        .expect_err("an empty secret must be refused");
    assert!(
        err.to_string().contains("endpoint.secret_key_base"),
        "{err}"
    );
}
