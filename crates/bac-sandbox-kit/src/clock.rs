//! The sandbox's clock: the machine's time plus an offset a test moves
//! (`POST /_sandbox/clock {"advance_secs": n}`), so expiry is tested without waiting.
use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, routing::post, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Default)]
pub struct SandboxClock {
    offset: Arc<AtomicI64>,
}

impl SandboxClock {
    /// Seconds since the Unix epoch, as the sandbox sees them.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real + self.offset.load(Ordering::Acquire)
    }

    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::AcqRel);
    }

    /// `POST /_sandbox/clock`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/_sandbox/clock", post(advance))
            .with_state(self.clone())
    }
}

#[derive(Deserialize)]
struct Advance {
    advance_secs: i64,
}

async fn advance(State(clock): State<SandboxClock>, Json(a): Json<Advance>) -> Json<Value> {
    clock.advance(a.advance_secs);
    Json(json!({ "now": clock.now() }))
}
