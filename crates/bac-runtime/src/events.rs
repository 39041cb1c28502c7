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
