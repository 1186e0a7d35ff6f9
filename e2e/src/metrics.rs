//! Reading a daemon's `/metrics` the way Prometheus does: fetched, checked for the OpenMetrics
//! content type, and parsed by a standard parser (which fails the test on anything it rejects).

use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

pub type Scrape = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// `GET url`: the text and its parse.
pub async fn scrape(url: &str) -> (String, Scrape) {
    let resp = reqwest::get(url).await.expect("metrics answer");
    assert_eq!(resp.status(), 200, "{url}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let parsed = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e:?}: {text}"));
    (text, parsed)
}

/// The value of family `name`'s first sample with `labels` (a histogram's: its count), if any.
pub fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = scrape.families.get(name)?;
    family
        .iter_samples()
        .find(|s| {
            let set = s.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(v) | OpenMetricsValue::Unknown(v) => v.as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap_or_default() as f64,
            other => panic!("{name}: unexpected {other:?}"),
        })
}
