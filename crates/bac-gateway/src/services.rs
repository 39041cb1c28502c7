//! gRPC channels from the gateway to the integration services, one per integration, connected
//! lazily (a service that is down makes its routes answer 503, not the gateway fail to start).
use std::{collections::HashMap, time::Duration};

use bac_runtime::ServiceKind;
use tonic::transport::{Channel, Endpoint};

/// Where each integration service listens (`BAC_<NAME>_GRPC_URL`).
#[derive(Debug, Clone)]
pub struct ServiceUrls(pub HashMap<ServiceKind, String>);

impl ServiceUrls {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut map = HashMap::new();
        for kind in ServiceKind::ALL {
            if kind == ServiceKind::Gateway {
                continue;
            }
            let var = Self::variable(kind);
            let url = lookup(&var)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", 50050 + kind.port_offset()));
            map.insert(kind, url);
        }
        ServiceUrls(map)
    }

    /// `BAC_ODOO_GRPC_URL`, `BAC_GOOGLE_WORKSPACE_GRPC_URL`, ...
    pub fn variable(kind: ServiceKind) -> String {
        format!("BAC_{}_GRPC_URL", kind.schema().to_ascii_uppercase())
    }
}

#[derive(Clone)]
pub struct Services {
    channels: HashMap<ServiceKind, Channel>,
}

/// Deadline of one gateway -> service call.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

impl Services {
    pub fn new(urls: &ServiceUrls) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for (kind, url) in &urls.0 {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| anyhow::anyhow!("{}={url}: {e}", ServiceUrls::variable(*kind)))?
                .connect_timeout(Duration::from_secs(3))
                .timeout(CALL_DEADLINE)
                .tcp_keepalive(Some(Duration::from_secs(30)));
            channels.insert(*kind, endpoint.connect_lazy());
        }
        Ok(Services { channels })
    }

    pub fn channel(&self, kind: ServiceKind) -> Option<Channel> {
        self.channels.get(&kind).cloned()
    }
}
