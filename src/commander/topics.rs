//! Topic naming: where pages that broadcast to each other meet. One place builds every
//! commander topic name, so pages, counters and app code agree. Pure.

/// Pages sharing broadcasts (and presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcasting {
    /// Every page with the same request path.
    SamePath,
    /// Every page of the same commander.
    SameCommander,
    /// Every page of every commander that names this topic.
    Named(String),
}

/// The topic shared by pages broadcasting [`Broadcasting::Named`]`(name)`.
pub fn same_topic(name: &str) -> String {
    format!("tether:topic:{name}")
}

/// The topic shared by pages of `path` ([`Broadcasting::SamePath`]).
pub fn same_path(path: &str) -> String {
    format!("tether:path:{path}")
}

/// The topic shared by pages of commander `name` ([`Broadcasting::SameCommander`]).
pub fn same_commander(name: &str) -> String {
    format!("tether:commander:{name}")
}
