//! `bac-bench grpc`: the load of `load`, over gRPC: `OdooService.ListLeads` (one page of five
//! leads) at a constant rate or at maximum throughput, through the gateway's gRPC edge (with
//! `--key`) or straight to bac-odoo (with `--tenant`: the call context is signed with the
//! fleet's key, read from Vault as a fleet process does). One HTTP/2 connection per
//! `--connections`, each carrying its share of the schedule one call at a time.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bac_proto::{
    common::v1::PageRequest,
    odoo::v1::{odoo_service_client::OdooServiceClient, ListLeadsRequest},
};
use bac_runtime::RequestContext;
use serde_json::Value;

use crate::{due, phase_with, report, start_at, Tally};
use tonic::{metadata::MetadataValue, transport::Channel, Request};

pub struct GrpcOpts {
    target: String,
    key: Option<String>,
    tenant: Option<String>,
    rate: Option<f64>,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    label: String,
}

impl GrpcOpts {
    pub fn parse(flags: &[(&str, Option<&str>)]) -> anyhow::Result<GrpcOpts> {
        let mut o = GrpcOpts {
            target: String::new(),
            key: None,
            tenant: None,
            rate: None,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 32,
            label: String::new(),
        };
        let mut max = false;
        for (flag, value) in flags {
            let v = value.unwrap_or_default();
            match *flag {
                "--target" => o.target = v.to_string(),
                "--key" => o.key = Some(v.to_string()),
                "--tenant" => o.tenant = Some(v.to_string()),
                "--rate" => o.rate = Some(v.parse().context("--rate")?),
                "--max" => max = true,
                "--duration" => {
                    o.duration = Duration::from_secs_f64(v.parse().context("--duration")?)
                }
                "--warmup" => o.warmup = Duration::from_secs_f64(v.parse().context("--warmup")?),
                "--connections" => o.connections = v.parse().context("--connections")?,
                "--label" => o.label = v.to_string(),
                other => bail!("unknown flag {other}"),
            }
        }
        if o.target.is_empty() || o.key.is_some() == o.tenant.is_some() {
            bail!("give --target and exactly one of --key (the edge) and --tenant (direct)");
        }
        if max == o.rate.is_some() || o.connections == 0 {
            bail!("give exactly one of --rate N and --max, and --connections > 0");
        }
        Ok(o)
    }

    fn request(&self) -> anyhow::Result<Request<ListLeadsRequest>> {
        let msg = ListLeadsRequest {
            page: Some(PageRequest {
                limit: 5,
                offset: 0,
            }),
            ..Default::default()
        };
        if let Some(key) = &self.key {
            let mut req = Request::new(msg);
            let v: MetadataValue<_> = format!("Bearer {key}").parse()?;
            req.metadata_mut().insert("authorization", v);
            return Ok(req);
        }
        let ctx = RequestContext {
            tenant_id: self.tenant.clone().unwrap_or_default(),
            principal: "bac-bench".into(),
            request_id: uuid::Uuid::now_v7().to_string(),
            traceparent: None,
        };
        Ok(ctx.request(msg))
    }
}

/// One connection's share of the schedule (as `load`'s worker), one call at a time.
async fn worker(
    idx: usize,
    opts: Arc<GrpcOpts>,
    mut client: OdooServiceClient<Channel>,
    t0: Instant,
    end: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut i: u64 = 0;
    while let Some(due) = due(opts.rate, opts.connections, idx, i, t0, end) {
        i += 1;
        let start = start_at(due).await;
        let req = match opts.request() {
            Ok(r) => r,
            Err(e) => {
                t.failed(format!("{e:#}"));
                continue;
            }
        };
        match client.list_leads(req).await {
            Ok(_) => t.done(start, true),
            Err(s) => t.failed(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    t
}

async fn phase(
    opts: &Arc<GrpcOpts>,
    channels: &[Channel],
    length: Duration,
) -> anyhow::Result<(Tally, Duration)> {
    phase_with(opts.connections, length, |idx, t0, end| {
        let client = OdooServiceClient::new(channels[idx].clone());
        worker(idx, opts.clone(), client, t0, end)
    })
    .await
}

pub async fn run(opts: GrpcOpts) -> anyhow::Result<Value> {
    if opts.tenant.is_some() {
        let config = bac_runtime::Config::from_env(bac_runtime::ServiceKind::Odoo)?;
        let vault = bac_runtime::vault::Vault::new(config.vault)?;
        bac_runtime::context::load_signing_key(&vault).await?;
    }
    let opts = Arc::new(opts);
    let mut channels = Vec::new();
    for _ in 0..opts.connections {
        channels.push(
            Channel::from_shared(opts.target.clone())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", opts.target))?,
        );
    }
    if !opts.warmup.is_zero() {
        phase(&opts, &channels, opts.warmup).await?;
    }
    let (t, took) = phase(&opts, &channels, opts.duration).await?;
    Ok(report(
        &opts.label,
        &opts.target,
        opts.rate,
        opts.connections,
        took,
        t,
    ))
}
