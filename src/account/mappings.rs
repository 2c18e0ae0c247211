//! Subject mappings (nats-server's `mappings`): what a client publishes to a mapped subject is
//! routed to the mapping's destination instead, or, with weights, to one destination picked
//! at random per message. Applied before the publish permissions are checked, as by
//! nats-server, so a client's permissions speak of destinations.

use jetway_subject::{is_literal, is_valid_filter, validate_mapping, Transform};

use crate::config::{MapDestination, MappingConfig, MappingWeight, MappingsConfig};

/// An account's mappings, tried in order of their sources.
#[derive(Debug, Default)]
pub struct SubjectMappings {
    mappings: Vec<Mapping>,
}

#[derive(Debug)]
struct Mapping {
    source: Box<str>,
    literal: bool,
    /// By ascending cumulative weight (the last one's is at most 100).
    destinations: Vec<Destination>,
}

#[derive(Debug)]
struct Destination {
    /// As configured (for the source kept by what the weights leave: the source, its `*`s
    /// numbered `$1`, `$2`… as nats-server reports it).
    subject: Box<str>,
    transform: Transform,
    /// Percent of the messages up to and including this destination.
    upto: u8,
}

/// What a mapping makes of a published subject.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapped {
    /// No mapping takes it.
    Unchanged,
    To(String),
    /// Its mapping lists its source with weights adding up to less than 100, and this message
    /// fell in the gap: nobody gets it (nats-server's behaviour).
    Dropped,
}

/// Why a mapping of the configuration was refused (nats-server's words).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("Subject {0:?} is not a valid subject")]
    InvalidSource(String),
    #[error("Missing weight for mapping destination {0:?}")]
    MissingWeight(String),
    #[error("Invalid weight {0:?} for mapping destination")]
    InvalidWeight(String),
    #[error("Error adding mapping for {subject:?} : {reason}")]
    Refused { subject: String, reason: String },
}

impl SubjectMappings {
    /// Compiles the `mappings` block of an account.
    pub fn from_config(config: &MappingsConfig) -> Result<SubjectMappings, MappingError> {
        let mut mappings = Vec::with_capacity(config.len());
        for (source, value) in config {
            if !is_valid_filter(source) {
                return Err(MappingError::InvalidSource(source.clone()));
            }
            let destinations: Vec<(&str, u8)> = match value {
                MappingConfig::Subject(dest) => vec![(dest.as_str(), 100)],
                MappingConfig::One(dest) => weighted(dest)?.into_iter().collect(),
                MappingConfig::Weighted(dests) => {
                    dests.iter().map(weighted).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect()
                }
            };
            let refused = |reason: String| MappingError::Refused { subject: source.clone(), reason };
            mappings.push(Mapping {
                source: source.as_str().into(),
                literal: is_literal(source),
                destinations: destinations_of(source, &destinations).map_err(refused)?,
            });
        }
        Ok(SubjectMappings { mappings })
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// Each source with its destinations and their cumulative weights (as `/accountz` shows
    /// them).
    pub fn describe(&self) -> impl Iterator<Item = (&str, Vec<(&str, u8)>)> {
        self.mappings
            .iter()
            .map(|m| (&*m.source, m.destinations.iter().map(|d| (&*d.subject, d.upto)).collect()))
    }

    /// Where a message published to `subject` goes.
    pub fn map(&self, subject: &str) -> Mapped {
        self.map_with(subject, || rand::random_range(0..100))
    }

    /// [`map`](Self::map) with the weighted pick (0 to 99) from `pick`.
    fn map_with(&self, subject: &str, pick: impl FnOnce() -> u8) -> Mapped {
        let found = self.mappings.iter().find(|m| {
            if m.literal {
                *m.source == *subject
            } else {
                jetway_subject::matches(&m.source, subject)
            }
        });
        let Some(mapping) = found else { return Mapped::Unchanged };
        let destination = match mapping.destinations.as_slice() {
            [only] if only.upto == 100 => only,
            all => {
                let at = pick();
                let Some(d) = all.iter().find(|d| at < d.upto) else { return Mapped::Dropped };
                d
            }
        };
        Mapped::To(destination.transform.apply(subject))
    }
}

/// A weighted destination's subject and percent; `None` for a destination of another
/// cluster, which is not this server's (no clustering), once its weight is checked.
fn weighted(dest: &MapDestination) -> Result<Option<(&str, u8)>, MappingError> {
    let weight = dest.weight.as_ref().ok_or_else(|| MappingError::MissingWeight(dest.destination.clone()))?;
    let (percent, text) = match weight {
        MappingWeight::Number(n) => (u8::try_from(*n).ok(), n.to_string()),
        MappingWeight::Text(text) => (text.trim_end_matches('%').parse::<u8>().ok(), text.clone()),
    };
    let percent = percent.filter(|p| *p <= 100).ok_or(MappingError::InvalidWeight(text))?;
    Ok(dest.cluster.is_none().then_some((dest.destination.as_str(), percent)))
}

/// The checks and cumulative weights of nats-server's `AddWeightedMappings`.
fn destinations_of(source: &str, dests: &[(&str, u8)]) -> Result<Vec<Destination>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut total: u32 = 0;
    let mut kept = Vec::new();
    for &(subject, weight) in dests {
        if !seen.insert(subject) {
            return Err(format!("duplicate entry for {subject:?}"));
        }
        total += u32::from(weight);
        if total > 100 {
            return Err("total weight needs to be <= 100".into());
        }
        validate_mapping(source, subject).map_err(|e| e.to_string())?;
        let transform = Transform::new(source, subject).map_err(|e| e.to_string())?;
        kept.push((Box::from(subject), transform, weight));
    }
    // What the weights leave goes on to the source itself, unless the source is listed (then
    // it is dropped).
    if total != 100 && !seen.contains(source) {
        let rest = if kept.is_empty() { 100 } else { 100 - total as u8 };
        let transform = Transform::new(source, "").map_err(|e| e.to_string())?;
        kept.push((numbered_wildcards(source).into(), transform, rest));
    }
    kept.sort_by_key(|(_, _, weight)| *weight);
    let mut upto = 0u8;
    Ok(kept
        .into_iter()
        .map(|(subject, transform, weight)| {
            upto = upto.saturating_add(weight);
            Destination { subject, transform, upto }
        })
        .collect())
}

/// `a.*.b.*` as `a.$1.b.$2`.
fn numbered_wildcards(source: &str) -> String {
    let mut n = 0;
    let tokens: Vec<String> = source
        .split('.')
        .map(|t| {
            if t == "*" {
                n += 1;
                format!("${n}")
            } else {
                t.to_string()
            }
        })
        .collect();
    tokens.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(entries: &[(&str, MappingConfig)]) -> Result<SubjectMappings, MappingError> {
        SubjectMappings::from_config(&entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn to(subject: &str) -> MappingConfig {
        MappingConfig::Subject(subject.into())
    }

    fn to_subject(subject: &str) -> Mapped {
        Mapped::To(subject.into())
    }

    fn dest(subject: &str, weight: i64) -> MapDestination {
        MapDestination {
            destination: subject.into(),
            weight: Some(MappingWeight::Number(weight)),
            cluster: None,
        }
    }

    #[test]
    fn literal_and_wildcard_sources_map_their_subjects() {
        let m =
            mappings(&[("foo", to("bar")), ("orders.*.*", to("shipped.$2.$1")), ("all.>", to("moved.>"))])
                .unwrap();
        assert_eq!(m.map("foo"), to_subject("bar"));
        assert_eq!(m.map("orders.eu.42"), to_subject("shipped.42.eu"));
        assert_eq!(m.map("all.a.b"), to_subject("moved.a.b"));
        assert_eq!(m.map("orders.eu"), Mapped::Unchanged);
        assert_eq!(m.map("other"), Mapped::Unchanged);
    }

    #[test]
    fn weights_split_the_messages_and_the_rest_stays_on_the_source() {
        let split = MappingConfig::Weighted(vec![dest("a", 20), dest("b", 30)]);
        let m = mappings(&[("src", split)]).unwrap();
        // Cumulative by ascending weight: a below 20, b below 50, the source below 100.
        let at = |n: u8| m.map_with("src", || n);
        assert_eq!(at(0), to_subject("a"));
        assert_eq!(at(19), to_subject("a"));
        assert_eq!(at(20), to_subject("b"));
        assert_eq!(at(49), to_subject("b"));
        assert_eq!(at(50), to_subject("src"));
        assert_eq!(at(99), to_subject("src"));
        let described: Vec<_> = m.describe().collect();
        assert_eq!(described, vec![("src", vec![("a", 20), ("b", 50), ("src", 100)])]);
        let wild = mappings(&[("w.*.x.*", MappingConfig::One(dest("v.$2", 40)))]).unwrap();
        let described: Vec<_> = wild.describe().collect();
        assert_eq!(described, vec![("w.*.x.*", vec![("v.$2", 40), ("w.$1.x.$2", 100)])]);
    }

    #[test]
    fn the_source_among_the_destinations_drops_what_the_weights_leave() {
        let m = mappings(&[("src", MappingConfig::Weighted(vec![dest("src", 10), dest("b", 10)]))]).unwrap();
        assert_eq!(m.map_with("src", || 5), to_subject("src"));
        assert_eq!(m.map_with("src", || 15), to_subject("b"));
        assert_eq!(m.map_with("src", || 50), Mapped::Dropped);
    }

    #[test]
    fn a_destination_for_a_cluster_is_not_used() {
        let mut other = dest("elsewhere", 100);
        other.cluster = Some("east".into());
        let m = mappings(&[("src", MappingConfig::Weighted(vec![dest("here", 100), other]))]).unwrap();
        assert_eq!(m.map_with("src", || 99), to_subject("here"));
    }

    #[test]
    fn bad_mappings_are_refused_with_nats_servers_words() {
        let refused = |entries: &[(&str, MappingConfig)]| mappings(entries).unwrap_err().to_string();
        assert_eq!(refused(&[("foo..bar", to("x"))]), "Subject \"foo..bar\" is not a valid subject");
        assert_eq!(
            refused(&[("src", MappingConfig::Weighted(vec![dest("a", 60), dest("b", 50)]))]),
            "Error adding mapping for \"src\" : total weight needs to be <= 100"
        );
        assert_eq!(
            refused(&[("src", MappingConfig::Weighted(vec![dest("a", 10), dest("a", 10)]))]),
            "Error adding mapping for \"src\" : duplicate entry for \"a\""
        );
        assert_eq!(
            refused(&[("src", MappingConfig::One(dest("a", 101)))]),
            "Invalid weight \"101\" for mapping destination"
        );
        let unweighted = MapDestination { destination: "a".into(), weight: None, cluster: None };
        assert_eq!(
            refused(&[("src", MappingConfig::One(unweighted))]),
            "Missing weight for mapping destination \"a\""
        );
        assert!(refused(&[("orders.*", to("x.$2"))]).starts_with("Error adding mapping for \"orders.*\" : "));
        assert!(refused(&[("orders.*", to("x.{{nope(1)}}"))])
            .starts_with("Error adding mapping for \"orders.*\" : "));
    }

    #[test]
    fn text_weights_take_a_percent_sign() {
        let text = |t: &str| MapDestination {
            destination: "a".into(),
            weight: Some(MappingWeight::Text(t.into())),
            cluster: None,
        };
        assert!(mappings(&[("src", MappingConfig::One(text("40%")))]).is_ok());
        assert!(mappings(&[("src", MappingConfig::One(text("40")))]).is_ok());
        assert!(mappings(&[("src", MappingConfig::One(text("x%")))]).is_err());
    }
}
