//! The gateway's own settings, read from `BAC_*` variables next to `bac_runtime::Config`
//! (the service URLs are in [`crate::ServiceUrls`]). A bad value stops the gateway at start
//! with the variable's name.
use std::time::Duration;

use crate::{ratelimit::RateQuota, services::GrpcSettings};

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `BAC_RATE_LIMIT_PER_KEY` requests/s (0 = off), `BAC_RATE_LIMIT_PER_KEY_BURST`.
    pub rate_per_key: Option<RateQuota>,
    /// `BAC_RATE_LIMIT_PER_TENANT` requests/s (0 = off), `BAC_RATE_LIMIT_PER_TENANT_BURST`.
    pub rate_per_tenant: Option<RateQuota>,
    /// `BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE` failed authentications/s per source
    /// address (0 = off), `..._BURST` (see `ratelimit::SourceGuard`).
    pub rate_unauthenticated: Option<RateQuota>,
    /// `BAC_RATE_LIMIT_SCOPE`: `fleet` (default: the limits hold for all replicas together,
    /// each enforcing its share) or `replica` (each replica enforces the whole limit, for a
    /// load balancer that keeps each client on one replica).
    pub rate_limit_per_replica: bool,
    /// `BAC_TRUSTED_PROXIES`: CIDRs of the proxies (ingress) whose `X-Forwarded-For` is
    /// believed; from anyone else the socket's address is the source.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `BAC_CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`) or
    /// `*`; empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// `BAC_HTTP_TIMEOUT_DATA_SECS`: deadline of `/api/v1/<integration>/...` requests and
    /// of connection tests.
    pub data_timeout: Duration,
    /// `BAC_HTTP_TIMEOUT_MANAGEMENT_SECS`: deadline of every other route.
    pub management_timeout: Duration,
    pub grpc: GrpcSettings,
    /// `BAC_PUBLIC_URL`: the gateway's URL as browsers reach it (`https://bac.example.com`);
    /// OAuth callbacks are registered at `<it>/api/v1/integrations/oauth/callback`. Unset: the
    /// URL a request came to (a laptop).
    pub public_url: Option<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            rate_per_key: Some(RateQuota {
                per_second: 200,
                burst: 400,
            }),
            rate_per_tenant: Some(RateQuota {
                per_second: 1000,
                burst: 2000,
            }),
            rate_unauthenticated: Some(RateQuota {
                per_second: 5,
                burst: 20,
            }),
            rate_limit_per_replica: false,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            data_timeout: Duration::from_secs(30),
            management_timeout: Duration::from_secs(10),
            grpc: GrpcSettings::default(),
            public_url: None,
        }
    }
}

impl GatewaySettings {
    /// Every variable [`GatewaySettings::from_lookup`] reads.
    pub const VARIABLES: &'static [&'static str] = &[
        "BAC_RATE_LIMIT_PER_KEY",
        "BAC_RATE_LIMIT_PER_KEY_BURST",
        "BAC_RATE_LIMIT_PER_TENANT",
        "BAC_RATE_LIMIT_PER_TENANT_BURST",
        "BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE",
        "BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE_BURST",
        "BAC_RATE_LIMIT_SCOPE",
        "BAC_TRUSTED_PROXIES",
        "BAC_CORS_ALLOWED_ORIGINS",
        "BAC_HTTP_TIMEOUT_DATA_SECS",
        "BAC_HTTP_TIMEOUT_MANAGEMENT_SECS",
        "BAC_GRPC_DEADLINE_MS",
        "BAC_GRPC_DNS_REFRESH_SECS",
        "BAC_GRPC_PROBE_INTERVAL_MS",
        "BAC_PUBLIC_URL",
    ];

    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let num = |k: &str, default: u64| -> anyhow::Result<u64> {
            match get(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| anyhow::anyhow!("{k}={v}: not a non-negative integer")),
            }
        };
        let d = GatewaySettings::default();
        let quota = |rate_var: &str,
                     burst_var: &str,
                     default: Option<RateQuota>|
         -> anyhow::Result<Option<RateQuota>> {
            let dflt = default.map_or(0, |q| q.per_second);
            let rate = u32::try_from(num(rate_var, u64::from(dflt))?)
                .map_err(|_| anyhow::anyhow!("{rate_var}: too large"))?;
            if rate == 0 {
                return Ok(None);
            }
            // The burst defaults to two seconds' worth, or the default's if the rate is the default.
            let default_burst = match default {
                Some(q) if q.per_second == rate => q.burst,
                _ => rate.saturating_mul(2),
            };
            let burst = u32::try_from(num(burst_var, u64::from(default_burst))?)
                .map_err(|_| anyhow::anyhow!("{burst_var}: too large"))?;
            if burst == 0 {
                anyhow::bail!("{burst_var}=0: the burst must be at least 1");
            }
            Ok(Some(RateQuota {
                per_second: rate,
                burst,
            }))
        };
        let secs = |k: &str, default: Duration| -> anyhow::Result<Duration> {
            let v = num(k, default.as_secs())?;
            if v == 0 {
                anyhow::bail!("{k}=0: must be at least 1");
            }
            Ok(Duration::from_secs(v))
        };
        let millis = |k: &str, default: Duration| -> anyhow::Result<Duration> {
            let v = num(k, default.as_millis() as u64)?;
            if v == 0 {
                anyhow::bail!("{k}=0: must be at least 1");
            }
            Ok(Duration::from_millis(v))
        };
        let mut origins = Vec::new();
        for o in get("BAC_CORS_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o
                        .trim_end_matches('/')
                        .contains(|c: char| c.is_whitespace())
                    && o.parse::<axum::http::HeaderValue>().is_ok());
            if !ok {
                anyhow::bail!(
                    "BAC_CORS_ALLOWED_ORIGINS: {o:?} is not an origin (https://host[:port]) or *"
                );
            }
            origins.push(o.trim_end_matches('/').to_string());
        }
        let mut trusted_proxies = Vec::new();
        for item in get("BAC_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "BAC_TRUSTED_PROXIES: {item:?} is not a CIDR such as 10.0.0.0/8"
                    )
                })?;
            trusted_proxies.push(net);
        }
        let public_url = match get("BAC_PUBLIC_URL") {
            None => None,
            Some(u) => {
                let parsed = url::Url::parse(&u)
                    .map_err(|e| anyhow::anyhow!("BAC_PUBLIC_URL={u}: not a URL ({e})"))?;
                if !matches!(parsed.scheme(), "http" | "https")
                    || parsed.host().is_none()
                    || parsed.query().is_some()
                {
                    anyhow::bail!("BAC_PUBLIC_URL={u}: expected http(s)://host[:port][/path]");
                }
                Some(u.trim_end_matches('/').to_string())
            }
        };
        Ok(GatewaySettings {
            public_url,
            rate_per_key: quota(
                "BAC_RATE_LIMIT_PER_KEY",
                "BAC_RATE_LIMIT_PER_KEY_BURST",
                d.rate_per_key,
            )?,
            rate_per_tenant: quota(
                "BAC_RATE_LIMIT_PER_TENANT",
                "BAC_RATE_LIMIT_PER_TENANT_BURST",
                d.rate_per_tenant,
            )?,
            rate_unauthenticated: quota(
                "BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE",
                "BAC_RATE_LIMIT_UNAUTHENTICATED_PER_SOURCE_BURST",
                d.rate_unauthenticated,
            )?,
            rate_limit_per_replica: match get("BAC_RATE_LIMIT_SCOPE").as_deref() {
                None | Some("fleet") => false,
                Some("replica") => true,
                Some(other) => {
                    anyhow::bail!("BAC_RATE_LIMIT_SCOPE={other}: expected fleet or replica")
                }
            },
            trusted_proxies,
            cors_allowed_origins: origins,
            data_timeout: secs("BAC_HTTP_TIMEOUT_DATA_SECS", d.data_timeout)?,
            management_timeout: secs("BAC_HTTP_TIMEOUT_MANAGEMENT_SECS", d.management_timeout)?,
            grpc: GrpcSettings {
                deadline: millis("BAC_GRPC_DEADLINE_MS", d.grpc.deadline)?,
                dns_refresh: secs("BAC_GRPC_DNS_REFRESH_SECS", d.grpc.dns_refresh)?,
                probe_interval: millis("BAC_GRPC_PROBE_INTERVAL_MS", d.grpc.probe_interval)?,
                ..d.grpc
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> anyhow::Result<GatewaySettings> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GatewaySettings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let d = from(&[]).unwrap();
        assert_eq!(d.rate_per_key.unwrap().per_second, 200);
        assert!(d.cors_allowed_origins.is_empty());
        let s = from(&[
            ("BAC_RATE_LIMIT_PER_KEY", "5"),
            ("BAC_RATE_LIMIT_PER_TENANT", "0"),
            (
                "BAC_CORS_ALLOWED_ORIGINS",
                "https://app.example.com, http://localhost:3000/",
            ),
            ("BAC_HTTP_TIMEOUT_DATA_SECS", "7"),
        ])
        .unwrap();
        assert_eq!(
            s.rate_per_key,
            Some(RateQuota {
                per_second: 5,
                burst: 10
            })
        );
        assert_eq!(s.rate_per_tenant, None);
        assert_eq!(
            s.cors_allowed_origins,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(s.data_timeout, Duration::from_secs(7));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("BAC_RATE_LIMIT_PER_KEY", "fast"),
            ("BAC_RATE_LIMIT_PER_KEY_BURST", "0"),
            ("BAC_CORS_ALLOWED_ORIGINS", "example.com"),
            ("BAC_HTTP_TIMEOUT_MANAGEMENT_SECS", "0"),
            ("BAC_GRPC_DEADLINE_MS", "-1"),
        ] {
            let e = from(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
