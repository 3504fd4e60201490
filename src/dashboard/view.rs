//! What a dashboard page shows: its own view settings (sort, filter, top N) applied to the
//! latest [`Snapshot`], rendered with askama. The chart is an SVG the browser draws (no
//! script, no CDN).
//!
//! Pure rendering: it must never read the clock, the metrics or presence itself.

use askama::Template;

use super::history::{HISTORY, Snapshot};
use crate::presence::{NodeStatus, TopicCount};

/// The column the topics table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Column {
    Topic,
    #[default]
    Users,
    Connections,
}

impl Column {
    pub(crate) fn parse(name: &str) -> Option<Column> {
        match name {
            "topic" => Some(Column::Topic),
            "users" => Some(Column::Users),
            "connections" => Some(Column::Connections),
            _ => None,
        }
    }
}

/// Most topics a page may ask to see at once.
pub(crate) const MAX_TOP: usize = 1_000;

/// One page's view of the topics table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewSettings {
    pub(crate) sort: Column,
    pub(crate) descending: bool,
    /// Case-insensitive substring of the topic name; empty shows every topic.
    pub(crate) filter: String,
    /// Largest topics shown (by the sort order), at most [`MAX_TOP`].
    pub(crate) top: usize,
}

impl Default for ViewSettings {
    fn default() -> ViewSettings {
        ViewSettings {
            sort: Column::Users,
            descending: true,
            filter: String::new(),
            top: 100,
        }
    }
}

impl ViewSettings {
    /// Sorts by `column`; the same column again flips the direction.
    pub(crate) fn sort_by(&mut self, column: Column) {
        if self.sort == column {
            self.descending = !self.descending;
        } else {
            self.sort = column;
            self.descending = column != Column::Topic;
        }
    }

    /// The topics to show: filtered, sorted, cut to `top`; and how many matched.
    fn select<'a>(&self, topics: &'a [TopicCount]) -> (Vec<&'a TopicCount>, usize) {
        let filter = self.filter.to_lowercase();
        let mut shown: Vec<&TopicCount> = topics
            .iter()
            .filter(|t| filter.is_empty() || t.topic.to_lowercase().contains(&filter))
            .collect();
        let matched = shown.len();
        shown.sort_by(|a, b| {
            let order = match self.sort {
                Column::Topic => a.topic.cmp(&b.topic),
                Column::Users => a.users.cmp(&b.users).then(a.topic.cmp(&b.topic)),
                Column::Connections => a
                    .connections
                    .cmp(&b.connections)
                    .then(a.topic.cmp(&b.topic)),
            };
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
        shown.truncate(self.top.min(MAX_TOP));
        (shown, matched)
    }
}

#[derive(Template)]
#[template(path = "tether/dashboard_live.html")]
struct Live<'a> {
    s: &'a Snapshot,
    nodes: Vec<NodeRow<'a>>,
    topics: Vec<&'a TopicCount>,
    matched: usize,
    settings: &'a ViewSettings,
    chart: Chart,
}

struct NodeRow<'a> {
    node: &'a NodeStatus,
    last_heard: String,
    /// Open connections and frames per second in and out, if known.
    figures: Option<(i64, f64, f64)>,
}

/// The throughput chart's polylines (SVG points) and scale.
struct Chart {
    frames_in: String,
    frames_out: String,
    max: f64,
}

const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 120.0;

impl Chart {
    fn of(throughput: &[(f64, f64)]) -> Chart {
        let max = throughput
            .iter()
            .map(|(a, b)| a.max(*b))
            .fold(1.0_f64, f64::max);
        let step = CHART_WIDTH / (HISTORY - 1) as f64;
        let offset = (HISTORY - throughput.len()) as f64 * step;
        let line = |pick: fn(&(f64, f64)) -> f64| {
            throughput
                .iter()
                .enumerate()
                .map(|(i, sample)| {
                    let x = offset + i as f64 * step;
                    let y = CHART_HEIGHT - pick(sample) / max * CHART_HEIGHT;
                    format!("{x:.1},{y:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        Chart {
            frames_in: line(|s| s.0),
            frames_out: line(|s| s.1),
            max,
        }
    }
}

/// `n` with one decimal, or an integer when large.
fn rate(n: &f64) -> String {
    if *n >= 100.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

/// Bytes per second in B, KiB or MiB.
fn bytes(n: &f64) -> String {
    if *n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if *n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

fn depth(q: &Option<f64>) -> String {
    match q {
        None => "–".to_string(),
        Some(v) if v.is_infinite() => "> 1024".to_string(),
        Some(v) if *v == 0.0 => "0".to_string(),
        Some(v) => format!("≤ {v}"),
    }
}

fn since(ms: u64) -> String {
    if ms < 1_000 {
        "now".to_string()
    } else if ms < 120_000 {
        format!("{} s ago", ms / 1_000)
    } else {
        format!("{} min ago", ms / 60_000)
    }
}

/// The live part of a dashboard page (`#dashboard_live`'s content).
pub(crate) fn render(
    snapshot: &Snapshot,
    settings: &ViewSettings,
) -> Result<String, askama::Error> {
    let (topics, matched) = settings.select(&snapshot.topics);
    let nodes = snapshot
        .nodes
        .iter()
        .map(|node| NodeRow {
            node,
            last_heard: if node.local {
                "this node".to_string()
            } else {
                since(node.silent_ms)
            },
            figures: if node.local {
                let rates = &snapshot.rates;
                Some((snapshot.connections, rates.frames_in, rates.frames_out))
            } else {
                snapshot
                    .reports
                    .get(&node.name)
                    .filter(|_| node.up)
                    .map(|r| (r.connections, r.frames_in, r.frames_out))
            },
        })
        .collect();
    Live {
        s: snapshot,
        nodes,
        topics,
        matched,
        settings,
        chart: Chart::of(&snapshot.throughput),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, users: usize, connections: usize) -> TopicCount {
        TopicCount {
            topic: name.to_string(),
            users,
            connections,
        }
    }

    #[test]
    fn topics_are_filtered_sorted_and_cut() {
        let topics = [
            topic("room:a", 3, 4),
            topic("room:b", 9, 9),
            topic("chat:c", 5, 12),
        ];
        let mut settings = ViewSettings::default();
        let names = |s: &ViewSettings| {
            let (shown, matched) = s.select(&topics);
            (
                shown.iter().map(|t| t.topic.clone()).collect::<Vec<_>>(),
                matched,
            )
        };
        assert_eq!(names(&settings).0, ["room:b", "chat:c", "room:a"]);
        settings.sort_by(Column::Connections);
        assert_eq!(names(&settings).0, ["chat:c", "room:b", "room:a"]);
        settings.sort_by(Column::Connections);
        assert_eq!(names(&settings).0, ["room:a", "room:b", "chat:c"]);
        settings.filter = "ROOM".into();
        settings.top = 1;
        assert_eq!(names(&settings), (vec!["room:a".to_string()], 2));
    }

    #[test]
    fn topic_names_are_escaped() {
        let snapshot = Snapshot {
            topics: vec![topic("<b>x</b>\"", 1, 1)],
            ..Snapshot::default()
        };
        let html = render(&snapshot, &ViewSettings::default()).unwrap();
        assert!(!html.contains("<b>x"), "{html}");
        assert!(
            html.contains("data-topic=\"&#60;b&#62;x&#60;/b&#62;&#34;\""),
            "{html}"
        );
    }
}
