//! A record table for REST providers' sandboxes: records by id with the modification time
//! the sandbox's clock gave them, tombstones for deletions, and the "changed since" query
//! most REST APIs page incremental syncs with (Zoho's `If-Modified-Since`, Google's
//! `updatedMin`), ordered by (modified time, id) so a page boundary never skips or repeats.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::clock::SandboxClock;

/// One stored record (or its tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: String,
    /// Seconds since the epoch on the sandbox clock.
    pub modified: i64,
    /// `None` once deleted.
    pub fields: Option<Map<String, Value>>,
}

/// Records of one resource (a Zoho module, a Google calendar).
#[derive(Debug, Clone)]
pub struct RecordTable {
    clock: SandboxClock,
    rows: BTreeMap<String, Stored>,
    next_id: u64,
    /// Prefix of generated ids (Zoho ids are long numbers; a prefix keeps sandboxes apart).
    prefix: String,
}

impl RecordTable {
    pub fn new(clock: SandboxClock, prefix: &str) -> RecordTable {
        RecordTable {
            clock,
            rows: BTreeMap::new(),
            next_id: 1,
            prefix: prefix.to_string(),
        }
    }

    /// Stores a new record; its id.
    pub fn create(&mut self, fields: Map<String, Value>) -> String {
        let id = format!("{}{}", self.prefix, self.next_id);
        self.next_id += 1;
        self.rows.insert(
            id.clone(),
            Stored {
                id: id.clone(),
                modified: self.clock.now(),
                fields: Some(fields),
            },
        );
        id
    }

    /// Merges `changes` into a live record; false when there is none.
    pub fn update(&mut self, id: &str, changes: Map<String, Value>) -> bool {
        let now = self.clock.now();
        match self.rows.get_mut(id) {
            Some(Stored {
                fields: Some(fields),
                modified,
                ..
            }) => {
                fields.extend(changes);
                *modified = now;
                true
            }
            _ => false,
        }
    }

    /// Deletes a live record, leaving its tombstone; false when there is none.
    pub fn delete(&mut self, id: &str) -> bool {
        let now = self.clock.now();
        match self.rows.get_mut(id) {
            Some(row) if row.fields.is_some() => {
                row.fields = None;
                row.modified = now;
                true
            }
            _ => false,
        }
    }

    /// A live record.
    pub fn get(&self, id: &str) -> Option<&Map<String, Value>> {
        self.rows.get(id).and_then(|r| r.fields.as_ref())
    }

    /// A record or its tombstone.
    pub fn row(&self, id: &str) -> Option<&Stored> {
        self.rows.get(id)
    }

    /// Records (tombstones included when `deleted`) modified at or after `since`, after the
    /// position `(modified, id)` of the previous page, at most `limit`; ordered by
    /// (modified, id).
    pub fn changed_since(
        &self,
        since: i64,
        after: Option<(i64, &str)>,
        limit: usize,
        deleted: bool,
    ) -> Vec<&Stored> {
        let mut rows: Vec<&Stored> = self
            .rows
            .values()
            .filter(|r| r.modified >= since && (deleted || r.fields.is_some()))
            .filter(|r| after.is_none_or(|(m, id)| (r.modified, r.id.as_str()) > (m, id)))
            .collect();
        rows.sort_by(|a, b| (a.modified, &a.id).cmp(&(b.modified, &b.id)));
        rows.truncate(limit);
        rows
    }

    /// Live records.
    pub fn len(&self) -> usize {
        self.rows.values().filter(|r| r.fields.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn changes_page_by_time_and_id_with_tombstones() {
        let clock = SandboxClock::default();
        let mut t = RecordTable::new(clock.clone(), "z");
        let start = clock.now();
        let a = t.create(fields(json!({"Last_Name": "A"})));
        let b = t.create(fields(json!({"Last_Name": "B"})));
        clock.advance(10);
        let c = t.create(fields(json!({"Last_Name": "C"})));
        assert_eq!(t.len(), 3);
        // Two records share a second: paging by (time, id) returns each once.
        let page1 = t.changed_since(start, None, 1, false);
        assert_eq!(page1.len(), 1);
        let after = (page1[0].modified, page1[0].id.as_str());
        let page2: Vec<&str> = t
            .changed_since(start, Some(after), 10, false)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(page2.len(), 2);
        assert!(!page2.contains(&page1[0].id.as_str()));
        clock.advance(10);
        assert!(t.update(&a, fields(json!({"Phone": "1"}))));
        assert!(t.delete(&b));
        assert!(!t.delete(&b), "deleted once");
        let since = clock.now();
        let changed: Vec<(&str, bool)> = t
            .changed_since(since, None, 10, true)
            .iter()
            .map(|r| (r.id.as_str(), r.fields.is_some()))
            .collect();
        assert_eq!(changed, vec![(a.as_str(), true), (b.as_str(), false)]);
        assert_eq!(t.changed_since(since, None, 10, false).len(), 1);
        assert_eq!(t.get(&a).unwrap()["Last_Name"], "A");
        assert!(t.get(&b).is_none());
        assert!(t.get(&c).is_some());
    }
}
