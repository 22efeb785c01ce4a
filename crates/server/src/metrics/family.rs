//! `Family`: one metric family whose samples were read at scrape time,
//! registered in a per-scrape `prometheus_client` registry as a
//! `Collector`, so the crate's text encoder writes the names, `# HELP`,
//! `# TYPE`, the `_total` / `_bucket` / `_sum` / `_count` suffixes and the
//! label escaping.
//!
//! Invariant: a family holds samples of its own type only (the
//! constructors take the type; [`Family::add`] takes the matching value).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::histogram::Snapshot;

/// Label pairs of one sample.
pub type Labels = Vec<(String, String)>;

/// One sample's value.
#[derive(Debug)]
pub enum Value {
    Gauge(i64),
    Counter(u64),
    Histogram(Snapshot),
}

impl Value {
    fn metric_type(&self) -> MetricType {
        match self {
            Value::Gauge(_) => MetricType::Gauge,
            Value::Counter(_) => MetricType::Counter,
            Value::Histogram(_) => MetricType::Histogram,
        }
    }
}

/// A family of samples (module docs).
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Family::new(name, help, MetricType::Gauge)
    }
    pub fn counter(name: &'static str, help: &'static str) -> Family {
        Family::new(name, help, MetricType::Counter)
    }
    pub fn histogram(name: &'static str, help: &'static str) -> Family {
        Family::new(name, help, MetricType::Histogram)
    }

    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample; `value` must be of the family's type.
    pub fn add(&mut self, labels: &[(&str, &str)], value: Value) {
        assert!(
            std::mem::discriminant(&value.metric_type()) == std::mem::discriminant(&self.kind),
            "{}: a {:?} sample in a {:?} family",
            self.name,
            value.metric_type(),
            self.kind
        );
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.push((labels, value));
    }

    /// Hands the family to `reg` (to be encoded with the registry).
    pub fn register(self, reg: &mut Registry) {
        reg.register_collector(Box::new(self));
    }
}

impl Collector for Family {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            if labels.is_empty() {
                write(&mut metric, value)?;
            } else {
                write(&mut metric.encode_family(labels)?, value)?;
            }
        }
        Ok(())
    }
}

fn write(m: &mut MetricEncoder, value: &Value) -> Result<(), std::fmt::Error> {
    match value {
        Value::Gauge(v) => m.encode_gauge(v),
        Value::Counter(v) => m.encode_counter::<NoLabelSet, u64, f64>(v, None),
        Value::Histogram(h) => {
            m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
        }
    }
}
