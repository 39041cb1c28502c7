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

use crate::{due, phase_with, report, start_at, Schedule, Tally};
use tonic::{metadata::MetadataValue, transport::Channel, Request};

pub struct GrpcOpts {
    target: String,
    key: Option<String>,
    tenant: Option<String>,
    sched: Schedule,
}

impl GrpcOpts {
    pub fn parse(flags: &[(&str, Option<&str>)]) -> anyhow::Result<GrpcOpts> {
        let mut o = GrpcOpts {
            target: String::new(),
            key: None,
            tenant: None,
            sched: Schedule::default(),
        };
        for (flag, value) in flags {
            let v = value.unwrap_or_default();
            if o.sched.take(flag, v)? {
                continue;
            }
            match *flag {
                "--target" => o.target = v.to_string(),
                "--key" => o.key = Some(v.to_string()),
                "--tenant" => o.tenant = Some(v.to_string()),
                other => bail!("unknown flag {other}"),
            }
        }
        if o.target.is_empty() || o.key.is_some() == o.tenant.is_some() {
            bail!("give --target and exactly one of --key (the edge) and --tenant (direct)");
        }
        o.sched.check()?;
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
    while let Some(due) = due(opts.sched.rate, opts.sched.connections, idx, i, t0, end) {
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
            // An answered refusal is an answer (as a non-2xx is for `load`); only a call
            // that got no status (transport) is an error.
            Err(s) if is_answer(&s) => t.done(start, false),
            Err(s) => t.failed(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    t
}

/// A refusal the service decided (a code a transport failure never maps to), as opposed to
/// a lost connection, a protocol error or a dead backend, which are errors.
fn is_answer(s: &tonic::Status) -> bool {
    use tonic::Code::{Cancelled, Internal, Unavailable, Unknown};
    !matches!(s.code(), Unavailable | Unknown | Cancelled | Internal)
}

async fn phase(
    opts: &Arc<GrpcOpts>,
    channels: &[Channel],
    length: Duration,
) -> anyhow::Result<(Tally, Duration)> {
    phase_with(opts.sched.connections, length, |idx, t0, end| {
        let client = OdooServiceClient::new(channels[idx].clone());
        worker(idx, opts.clone(), client, t0, end)
    })
    .await
}

pub async fn run(opts: GrpcOpts) -> anyhow::Result<Value> {
    if opts.tenant.is_some() {
        crate::sign_as_fleet().await?;
    }
    let opts = Arc::new(opts);
    let mut channels = Vec::new();
    for _ in 0..opts.sched.connections {
        channels.push(
            Channel::from_shared(opts.target.clone())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", opts.target))?,
        );
    }
    if !opts.sched.warmup.is_zero() {
        phase(&opts, &channels, opts.sched.warmup).await?;
    }
    let (t, took) = phase(&opts, &channels, opts.sched.duration).await?;
    Ok(report(
        &opts.sched.label,
        &opts.target,
        opts.sched.rate,
        opts.sched.connections,
        took,
        t,
    ))
}
