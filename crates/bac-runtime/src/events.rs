//! CloudEvents 1.0 in Kafka binary content mode: attributes as `ce_*` headers, the data as the
//! message value. Every event the fleet publishes is built here.
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// One event, ready for the outbox.
#[derive(Debug, Clone)]
pub struct CloudEvent {
    pub id: Uuid,
    /// `/bac/<integration>` (the producing service).
    pub source: String,
    /// `bac.<integration>.<entity>.<op>`, e.g. `bac.odoo.crm_lead.created`.
    pub ty: String,
    /// `<entity>/<id>`.
    pub subject: Option<String>,
    pub time: DateTime<Utc>,
    pub tenant_id: String,
    pub connection_id: Option<String>,
    pub traceparent: Option<String>,
    /// JSON (proto3 JSON mapping of a `bac.events.v1` message).
    pub data: Vec<u8>,
    pub topic: String,
    /// `<tenant>/<entity>/<id>`, so one record's events stay in one partition, in order.
    pub key: String,
}

impl CloudEvent {
    /// Header list in the order they are written to Kafka.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            ("ce_specversion".into(), "1.0".into()),
            ("ce_id".into(), self.id.to_string()),
            ("ce_source".into(), self.source.clone()),
            ("ce_type".into(), self.ty.clone()),
            (
                "ce_time".into(),
                self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            ("content-type".into(), "application/json".into()),
            ("ce_tenantid".into(), self.tenant_id.clone()),
        ];
        if let Some(s) = &self.subject {
            h.push(("ce_subject".into(), s.clone()));
        }
        if let Some(c) = &self.connection_id {
            h.push(("ce_connectionid".into(), c.clone()));
        }
        if let Some(t) = &self.traceparent {
            h.push(("traceparent".into(), t.clone()));
        }
        h
    }
}

/// The largest event (key, headers and data) the outbox takes as it is: under librdkafka's
/// `message.max.bytes` (1,000,000) and Kafka's broker default (1,048,588) with room for the
/// record's framing. A larger event is published with its largest fields left out
/// ([`CloudEvent::fitted_data`]), so one huge record can never be a message no broker takes.
pub const MAX_EVENT_BYTES: usize = 900 * 1024;

impl CloudEvent {
    /// Key, header and data bytes: what the broker's message limit counts.
    pub fn encoded_len(&self) -> usize {
        self.key.len()
            + self
                .headers()
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.data.len()
    }

    /// The data as published: unchanged when the event fits [`MAX_EVENT_BYTES`]; otherwise the
    /// JSON object without its largest top-level fields (largest first, until it fits) and with
    /// `"omitted": {"fields", "bytes", "limit", "reason"}` saying what was left out. The
    /// subject still names the record, which the API serves whole.
    pub fn fitted_data(&self) -> std::borrow::Cow<'_, [u8]> {
        // The headers are well under 2 KiB: most events need no exact count (which allocates).
        if self.data.len() + self.key.len() + 2048 <= MAX_EVENT_BYTES {
            return std::borrow::Cow::Borrowed(&self.data);
        }
        let total = self.encoded_len();
        if total <= MAX_EVENT_BYTES {
            return std::borrow::Cow::Borrowed(&self.data);
        }
        let overhead = total - self.data.len();
        let budget = MAX_EVENT_BYTES.saturating_sub(overhead + 512);
        let mut object = match serde_json::from_slice::<serde_json::Value>(&self.data) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let mut sizes: Vec<(String, usize)> = object
            .iter()
            .map(|(k, v)| (k.clone(), k.len() + v.to_string().len()))
            .collect();
        sizes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut left: usize = sizes.iter().map(|(_, n)| n + 2).sum();
        let mut omitted = Vec::new();
        for (field, size) in sizes {
            if left <= budget {
                break;
            }
            object.remove(&field);
            left = left.saturating_sub(size + 2);
            omitted.push(field);
        }
        object.insert(
            "omitted".into(),
            serde_json::json!({
                "fields": omitted,
                "bytes": self.data.len(),
                "limit": MAX_EVENT_BYTES,
                "reason": "the event exceeded the message size limit; read the record through the API",
            }),
        );
        metrics::counter!("bac_outbox_events_trimmed_total", "topic" => self.topic.clone())
            .increment(1);
        tracing::warn!(topic = %self.topic, subject = ?self.subject, bytes = self.data.len(), "event too large for the broker: published without its largest fields");
        std::borrow::Cow::Owned(serde_json::Value::Object(object).to_string().into_bytes())
    }
}

/// Topic of an integration's entity: `bac.<integration>.<entity>.v1`.
pub fn topic(integration_schema: &str, entity: &str) -> String {
    format!("bac.{integration_schema}.{entity}.v1")
}

/// Stable hash of a record's content, to tell a real change from a repeat.
pub fn content_hash(v: &serde_json::Value) -> String {
    // serde_json keeps object keys sorted (no preserve_order), so equal records hash equally.
    text_hash(&v.to_string())
}

/// [`content_hash`] of a value already serialized with `Value::to_string`.
pub fn text_hash(json: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_too_large_for_the_broker_loses_its_largest_fields() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let data = serde_json::json!({
            "op": "updated", "record_id": "42",
            "before": {"name": big.clone()}, "after": {"name": big},
        });
        let e = CloudEvent {
            id: Uuid::nil(),
            source: "/bac/odoo".into(),
            ty: "bac.odoo.crm_lead.updated".into(),
            subject: Some("crm_lead/42".into()),
            time: Utc::now(),
            tenant_id: "demo".into(),
            connection_id: None,
            traceparent: None,
            data: data.to_string().into_bytes(),
            topic: "bac.odoo.crm_lead.v1".into(),
            key: "demo/crm_lead/42".into(),
        };
        let fitted = e.fitted_data();
        assert!(fitted.len() < MAX_EVENT_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&fitted).unwrap();
        assert_eq!(v["op"], "updated");
        assert_eq!(v["record_id"], "42");
        assert!(v.get("before").is_none() && v.get("after").is_none());
        let mut fields: Vec<_> = v["omitted"]["fields"].as_array().unwrap().clone();
        fields.sort_by_key(|f| f.to_string());
        assert_eq!(fields, vec!["after", "before"]);
        assert_eq!(v["omitted"]["bytes"], e.data.len());
        // A small event passes untouched.
        let small = CloudEvent {
            data: b"{}".to_vec(),
            ..e
        };
        assert!(matches!(small.fitted_data(), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn headers_carry_every_required_attribute() {
        let e = CloudEvent {
            id: Uuid::nil(),
            source: "/bac/odoo".into(),
            ty: "bac.odoo.crm_lead.created".into(),
            subject: Some("crm_lead/7".into()),
            time: DateTime::from_timestamp(0, 0).unwrap(),
            tenant_id: "demo".into(),
            connection_id: Some("con_1".into()),
            traceparent: None,
            data: b"{}".to_vec(),
            topic: topic("odoo", "crm_lead"),
            key: "demo/crm_lead/7".into(),
        };
        let names: Vec<String> = e.headers().into_iter().map(|(k, _)| k).collect();
        for want in [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_subject",
            "ce_time",
            "ce_specversion",
            "content-type",
            "ce_tenantid",
            "ce_connectionid",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
        assert_eq!(e.topic, "bac.odoo.crm_lead.v1");
    }
}
