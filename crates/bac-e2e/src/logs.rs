//! Captures every log line of the in-process services (nextest runs each test in its own
//! process, so one global subscriber per test is enough).
use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub struct CaptureWriter(Captured);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.clone())
    }
}

/// Installs (once) a JSON subscriber at debug level that records into memory.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let c = Captured::default();
            let _ = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_env_filter(EnvFilter::new(
                    "debug,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info,tokio_postgres=info,reqwest=info",
                ))
                .with_writer(c.clone())
                .try_init();
            c
        })
        .clone()
}
